"""What a search optimises: the metrics a trial reports, their directions and ranges, where
each number comes from (the validation split selects; the test split is scored once, `test_`),
and how an estimate becomes flat metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nsde.metrics.objectives import OBJECTIVE_METRICS, OBJECTIVES, LiveMapping, objective_bounds

__all__ = ["CHECKS_PASSED", "DEFAULT_OBJECTIVES", "EVALUATED", "FINAL_PREFIX", "METRICS", "METRIC_BOUNDS",
           "OBJECTIVE_SPLIT", "RUNG_EPOCH", "RUNG_PREFIX", "SCHEDULER_METRICS", "TEST_PREFIX", "TRAINING_METRICS",
           "Objective", "estimate_metrics", "parse_objectives", "profile_prefix"]

# The training's own numbers a trial reports at its end, with the direction that is better.
TRAINING_METRICS: dict[str, str] = {
    "val_accuracy": "max",  # last epoch's validation accuracy (single pass, as training measures it)
    "train_seconds": "min",
}
_TRAINING_BOUNDS = {"val_accuracy": (0.0, 1.0)}
# Scalar metrics a trial reports at its end, with the direction that is better: every
# registered objective of an evaluation (nsde.metrics.OBJECTIVE_METRICS, all on the validation
# split) and the training's own numbers; read from the registry at each use.
METRICS: Mapping[str, str] = LiveMapping(lambda: {**OBJECTIVE_METRICS, **TRAINING_METRICS})
# The metrics with a known range, (lowest, highest): the hypervolume's reference point.
METRIC_BOUNDS: Mapping[str, tuple[float, float]] = LiveMapping(lambda: {**objective_bounds(), **_TRAINING_BOUNDS})
# Per-epoch metrics a scheduler (ASHA) can compare; objectives exist only at a trial's end.
SCHEDULER_METRICS: dict[str, str] = {"val_accuracy": "max", "train_loss": "min"}
DEFAULT_OBJECTIVES = ",".join(f"{name}:{OBJECTIVE_METRICS[name]}" for name in OBJECTIVES)
# Selection (trials, both fronts) on validation only; the final front and the baseline are
# scored on test once, as `test_<metric>`; the final profile's re-scores (validation) are
# `final_<metric>`.
OBJECTIVE_SPLIT = "val"
TEST_PREFIX = "test_"
FINAL_PREFIX = "final_"


def profile_prefix(final: bool) -> str:
    """The prefix of a metric's column or MLflow name in the final profile's numbers ("final_")
    or the search profile's ("")."""
    return FINAL_PREFIX if final else ""


def estimate_metrics(name: str, estimate: Any) -> dict[str, float]:
    """An estimate (value, n, low, high) as flat metrics: `name`, `name_low`, `name_high`, `name_n`."""
    return {name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high,
            f"{name}_n": estimate.n}


# Flags of a trial's results: `evaluated` is True only on the last result, after the
# evaluation (per-epoch results hold NaN objectives); `checks_passed` is 1.0 when every
# applicable sanity check of the attack passed, 0.0 when one failed, NaN when none applied.
EVALUATED = "evaluated"
CHECKS_PASSED = "checks_passed"
# A rung result (`--scheduler moasha`): `rung_epoch` and every objective of the cheap rung
# evaluation as `rung_<objective>` (validation split); never taken for a trial's objectives.
RUNG_EPOCH = "rung_epoch"
RUNG_PREFIX = "rung_"


@dataclass(frozen=True)
class Objective:
    """One objective of a search: a metric (`METRICS`) and the direction the search takes it in."""

    name: str
    mode: str  # "max" or "min"


def parse_objectives(text: str | list | tuple | None) -> tuple[Objective, ...]:
    """'clean_accuracy:max,apgd_accuracy' (a bare name takes its usual direction), or
    (name, mode) pairs as `search.json` stores them, or None (the default objectives)."""
    if isinstance(text, (list, tuple)):
        return tuple(Objective(str(n), str(m)) for n, m in text)
    text = DEFAULT_OBJECTIVES if text is None else text
    out: list[Objective] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, _, mode = item.partition(":")
        if name not in METRICS:
            raise ValueError(f"unknown objective {name!r}; known objectives: {list(METRICS)}")
        mode = mode or METRICS[name]
        if mode not in ("max", "min"):
            raise ValueError(f"objective {name!r}: direction must be 'max' or 'min', but got {mode!r}")
        out.append(Objective(name, mode))
    names = [o.name for o in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"`--objectives` must name at least one objective, each once, but got {text!r}")
    return tuple(out)
