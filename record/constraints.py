"""Constraints on a search's trials: `--constraint "clean_accuracy>=0.70"`, or relative to the
deterministic baseline, `--constraint "clean_accuracy>=baseline-0.02"`.

A constraint bounds one metric a trial reports (`record.METRICS`) from below (`>=`) or above
(`<=`), by a number or by the baseline's value of that metric plus an offset. The baseline is
the trial of the space's first point (the deterministic model every built-in space starts
with); `baseline_trial` finds it among a search's trials. A constraint's *violation* follows
Optuna's convention for `constraints_func`: <= 0 satisfied, > 0 violated (by that much). The
searcher hands violations to Optuna's samplers (search.searcher), and the analysis keeps
infeasible trials off the fronts and out of the hypervolume (analysis.load.Search.feasible):
one rule serves both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from record.objectives import METRICS
from record.trial import config_differences

__all__ = ["BASELINE", "Constraint", "baseline_trial", "feasible", "parse_constraints", "violations"]

BASELINE = "baseline"
_UNSIGNED = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*(\w+)\s*(>=|<=)\s*(?:(baseline)\s*(?:([-+])\s*({_UNSIGNED}))?|([-+]?{_UNSIGNED}))\s*$")
_VIOLATED = 1.0e6  # the violation of a trial without a value of the metric (NaN): violated, and finite for Optuna


@dataclass(frozen=True)
class Constraint:
    """`metric op bound`, the bound absolute or the baseline's value + `offset`."""

    metric: str
    op: str  # ">=" or "<="
    offset: float  # the bound itself, or the offset from the baseline's value
    relative: bool = False

    def __str__(self) -> str:
        if not self.relative:
            return f"{self.metric}{self.op}{self.offset:g}"
        offset = f"{self.offset:+g}" if self.offset else ""
        return f"{self.metric}{self.op}{BASELINE}{offset}"

    def bound(self, baseline: Mapping[str, float] | None) -> float | None:
        """The bound, or None for a relative constraint without a baseline value."""
        if not self.relative:
            return self.offset
        value = (baseline or {}).get(self.metric)
        return None if value is None or not math.isfinite(value) else float(value) + self.offset

    def violation(self, numbers: Mapping[str, float], baseline: Mapping[str, float] | None = None) -> float | None:
        """How far `numbers` miss the bound (> 0), or by how much they keep it (<= 0); None when
        the bound is unknown (a relative constraint before the baseline has a value)."""
        bound = self.bound(baseline)
        if bound is None:
            return None
        value = numbers.get(self.metric, math.nan)
        if value is None or not math.isfinite(value):
            return _VIOLATED
        return bound - float(value) if self.op == ">=" else float(value) - bound


def parse_constraints(texts: Iterable[str] | str | None) -> tuple[Constraint, ...]:
    """'clean_accuracy>=0.7', 'abc_incorrect<=0.6', 'clean_accuracy>=baseline-0.02' (one string
    each, or one comma-separated string).

    Raises:
        ValueError: naming the text and the rule it breaks.
    """
    if texts is None:
        return ()
    if isinstance(texts, str):
        texts = [t for t in texts.split(",") if t.strip()]
    out = []
    for text in texts:
        m = _PATTERN.match(text)
        if not m:
            raise ValueError(f"--constraint {text!r} must read METRIC>=BOUND or METRIC<=BOUND, the bound a number "
                             f"or baseline[+-]NUMBER (e.g. clean_accuracy>=0.7, clean_accuracy>=baseline-0.02)")
        metric, op, base, sign, offset, number = m.groups()
        if metric not in METRICS:
            raise ValueError(f"--constraint {text!r}: unknown metric {metric!r}; known metrics: {list(METRICS)}")
        if base:
            value = float(offset or 0.0) * (-1.0 if sign == "-" else 1.0)
            out.append(Constraint(metric, op, value, relative=True))
        else:
            out.append(Constraint(metric, op, float(number)))
    return tuple(out)


def violations(constraints: Sequence[Constraint], numbers: Mapping[str, float],
               baseline: Mapping[str, float] | None = None) -> list[float | None]:
    return [c.violation(numbers, baseline) for c in constraints]


def feasible(constraints: Sequence[Constraint], numbers: Mapping[str, float],
             baseline: Mapping[str, float] | None = None) -> bool | None:
    """Whether every constraint holds; None when one cannot be checked (no baseline value)
    and none is violated."""
    found = violations(constraints, numbers, baseline)
    if any(v is not None and v > 0 for v in found):
        return False
    return None if any(v is None for v in found) else True


def baseline_trial(configs: Mapping[str, Mapping[str, Any]], point_config: Mapping[str, Any] | None) -> str | None:
    """The trial (id -> flat config) that ran the space's first point (`point_config`: its flat
    config, `SearchSpace.config(points[0])`), the seed aside; the first such trial, or None."""
    if not point_config:
        return None
    return next((tid for tid, config in configs.items()
                 if not config_differences(config, point_config, keys=point_config)), None)
