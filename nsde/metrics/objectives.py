"""The objectives: one `ObjectiveSpec` per objective, in one registry.

An objective is a statistic of per-example values that one stage of `evaluate` writes
(`EvalReport.per_example[spec.stage]`, rows = examples), so one rule gives its interval
(bootstrap over examples), its summary over training seeds (a two-level bootstrap) and its
paired comparison with another model scored on the same examples. Everything else that knows
the objectives reads them here: `EvalReport.objectives`, the search's `--objectives` and
their directions (`record.METRICS`), the hypervolume's bounds, the study's metrics and the
tables of `python -m nsde.metrics`.

    register_objective(ObjectiveSpec("clean_accuracy", "max", "clean", ("correct",), ...))
    objective("apgd_accuracy").direction           # "max"; an unknown name lists the known ones
    objective_samples(report.per_example, name)    # (indices, values, statistic)

Two families are named rather than registered: `sweep_area@<kind>` (one sweep kind's area,
e.g. `sweep_area@fbm:0.1`) and `location_acc_<location>` (clean accuracy on one sensor
location's examples). They pair and replicate like the objectives; they are not searched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nsde.data.synthetic import LOCATIONS
from nsde.metrics.stages import list_stages
from nsde.metrics.stats import NAN_ESTIMATE, Estimate, auroc, bootstrap, bootstrap_mean, proportion
from nsde.registry import Registry
from nsde.rules import Rule

__all__ = [
    "FARTHEST",
    "KIND_SEPARATOR",
    "LOCATION_PREFIX",
    "OBJECTIVES",
    "OBJECTIVE_METRICS",
    "STUDY_METRICS",
    "LiveMapping",
    "ObjectiveSpec",
    "column_mean",
    "has_samples",
    "list_objectives",
    "location_objective",
    "objective",
    "objective_bounds",
    "objective_samples",
    "objective_specs",
    "register_objective",
    "sweep_kind_objective",
    "unregister_objective",
]

UNIT = (0.0, 1.0)  # the range of an accuracy, an area under a normalised accuracy curve, an AUROC
DIRECTION_RULE = Rule(str, choices=("max", "min"), what="direction")
STAGE_RULE = Rule(str, choices=list_stages, what="stage")


def column_mean(values: np.ndarray) -> float:
    """The mean of the first column: the statistic of an objective that is a mean over examples."""
    return float(values[:, 0].mean()) if len(values) else math.nan


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: what it is a statistic of, which way is better, and its range.

    Attributes:
        name: the objective's name (an `EvalReport.objectives` key, an MLflow metric, a
            `--objectives` item).
        direction: "max" or "min", whichever is better.
        stage: the `evaluate` stage whose per-example part holds its values (`nsde.metrics.stages`).
        columns: that part's columns, in the order `statistic` reads them.
        statistic: (n, len(columns)) per-example values -> the objective.
        bounds: (lowest, highest) possible value, None when it has none; the hypervolume's
            reference point sits at the worst bound.
        default: one of the search's default objectives (`OBJECTIVES`).
        binary: the values are per-example correctness: a Wilson interval, and McNemar's test
            in a paired comparison.
        reported: the report's own estimate of it, which its stage computed (ABC's and
            stability's intervals follow their own subsets); None: `statistic` bootstrapped
            over examples.
        rows: (column, value): only the examples whose `column` equals `value` (a location's).
        retention: the objectives that are this one relative to clean accuracy on the same
            examples, which tables show beside it (absolute robustness is capped by clean accuracy).
        doc: one line for listings and tables.
    """

    name: str
    direction: str
    stage: str
    columns: tuple[str, ...]
    statistic: Callable[[np.ndarray], float] = column_mean
    bounds: tuple[float, float] | None = None
    default: bool = False
    binary: bool = False
    reported: Callable[[Any], Estimate] | None = None
    rows: tuple[str, str] | None = None
    retention: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.columns:
            raise ValueError(f"an objective needs a name and at least one column, but got {self.name!r}, "
                             f"{self.columns!r}")
        DIRECTION_RULE.check(self.direction)
        STAGE_RULE.check(self.stage)
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"objective {self.name!r}: `low < high` must hold for its bounds, but got {self.bounds}")

    def samples(self, per_example: Mapping[str, Mapping[str, list]]
                ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], float]]:
        """(example indices, (n, len(columns)) values, statistic) from a report's `per_example`:
        the objective is statistic(values); rows of two reports with equal indices are the same
        examples. A report without a column (written before it existed) raises KeyError."""
        part = per_example[self.stage]
        index = np.asarray(part["index"])
        values = np.column_stack([np.asarray(part[c], dtype=np.float64) for c in self.columns])
        if self.rows is not None:
            keep = np.asarray(part[self.rows[0]]) == self.rows[1]
            index, values = index[keep], values[keep]
        return index, values, self.statistic

    def estimate(self, report: Any) -> Estimate:
        """This objective of an `EvalReport`, with its sample size and 95 % interval: the
        report's own (`reported`), Wilson for a binary objective, else a seeded percentile
        bootstrap over examples (bounded by the statistic's range). NaN when its stage did not
        run (a report without the SNR sweep) or wrote none of its columns (a report written
        before the column existed)."""
        if self.reported is not None:
            return self.reported(report)
        part = report.per_example.get(self.stage)
        if part is None or any(c not in part for c in self.columns):
            return NAN_ESTIMATE
        _, values, stat = self.samples(report.per_example)
        resamples, seed = int(report.settings.get("resamples", 2000)), int(report.settings.get("seed", 0))
        if self.binary:
            return proportion(values[:, 0] > 0.5)
        if stat is column_mean:
            return bootstrap_mean(values[:, 0], resamples=resamples, seed=seed)
        return bootstrap(lambda idx: stat(values[idx]), len(values), resamples=resamples, seed=seed)


_REGISTRY: Registry[ObjectiveSpec] = Registry("objective")


def register_objective(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add `spec` to the registry (after the ones there); returns it. A name registers once."""
    return _REGISTRY.add(spec.name, spec)


def unregister_objective(name: str) -> None:
    """Remove a registered objective (a test's, or one a plugin replaces)."""
    _REGISTRY.remove(name)


def list_objectives() -> list[str]:
    """The registered objectives' names, in registration order."""
    return _REGISTRY.names()


def objective_specs() -> list[ObjectiveSpec]:
    """The registered objectives, in registration order."""
    return _REGISTRY.items()


# ------------------------------------------------------------------------ the families


KIND_SEPARATOR = "@"  # sweep_area@fbm:0.1: one sweep kind's area (per_example["sweep"]["area_fbm:0.1"])
LOCATION_PREFIX = "location_acc_"  # location_acc_panel: clean accuracy on one location's examples
_SWEEP_KIND = "sweep_area" + KIND_SEPARATOR


def sweep_kind_objective(kind: str) -> str:
    """The name of one sweep kind's area: 'sweep_area@fbm:0.1'."""
    return _SWEEP_KIND + kind


def location_objective(location: str) -> str:
    """The name of one sensor location's clean accuracy: 'location_acc_panel'."""
    return LOCATION_PREFIX + location


class _SweepKind(ObjectiveSpec):
    """One sweep kind's area; a report swept without the kind says which kinds it has."""

    def samples(self, per_example):
        part = per_example[self.stage]
        if self.columns[0] not in part:
            kind = self.name[len(_SWEEP_KIND):]
            raise ValueError(f"{self.name}: this report's sweep has no kind {kind!r}; its kinds: "
                             f"{[c[5:] for c in part if c.startswith('area_')]}")
        return super().samples(per_example)


def _family(name: str) -> ObjectiveSpec | None:
    if name.startswith(_SWEEP_KIND):
        kind = name[len(_SWEEP_KIND):]
        return _SweepKind(name, "max", "sweep", (f"area_{kind}",), bounds=UNIT,
                          doc=f"area under accuracy vs the intensity of input noise {kind}")
    if name.startswith(LOCATION_PREFIX):
        where = name[len(LOCATION_PREFIX):]
        return ObjectiveSpec(name, "max", "clean", ("correct",), bounds=UNIT, binary=True, rows=("location", where),
                             doc=f"clean accuracy at sensor location {where}")
    return None


def objective(name: str) -> ObjectiveSpec:
    """The spec of a registered objective or of a family member (`sweep_area@<kind>`,
    `location_acc_<location>`); an unknown name lists the registered ones."""
    if name in _REGISTRY:
        return _REGISTRY.get(name)
    spec = _family(name)
    if spec is None:
        raise ValueError(f"unknown objective {name!r}; known objectives: {_REGISTRY.names()}, "
                         f"'{_SWEEP_KIND}<kind>' and '{LOCATION_PREFIX}<location>'")
    return spec


def has_samples(name: str) -> bool:
    """Whether `name` is a statistic of per-example values (`objective` knows it): an objective,
    one sweep kind's area or one location's clean accuracy; not a training number such as
    val_accuracy."""
    return name in _REGISTRY or _family(name) is not None


def objective_samples(per_example: Mapping[str, Mapping[str, list]], name: str
                      ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], float]]:
    """(example indices, (n, c) per-example values, statistic) of objective `name`
    (`ObjectiveSpec.samples`)."""
    return objective(name).samples(per_example)


# ------------------------------------------------------------------- derived tables


class LiveMapping(Mapping):
    """A read-only mapping rebuilt from `build()` at every use: a view of a registry that
    may grow after import (an objective registered by a test or a plugin shows up in it)."""

    def __init__(self, build: Callable[[], dict]) -> None:
        self._build = build

    def __getitem__(self, key: Any) -> Any:
        return self._build()[key]

    def __iter__(self) -> Iterator:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return repr(self._build())


# Every registered objective with the direction that is better.
OBJECTIVE_METRICS: Mapping[str, str] = LiveMapping(lambda: {s.name: s.direction for s in _REGISTRY.items()})


def objective_bounds() -> dict[str, tuple[float, float]]:
    """The registered objectives that have a range: name -> (lowest, highest)."""
    return {s.name: s.bounds for s in _REGISTRY.items() if s.bounds is not None}


# ------------------------------------------------------------------ the registry


def _ratio(values: np.ndarray) -> float:
    den = values[:, 1].mean()
    return float(values[:, 0].mean() / den) if den > 0 else math.nan


def _above_chance(values: np.ndarray) -> float:
    """(robust - chance) / (clean - chance): the share of the above-chance accuracy that survives."""
    chance = values[:, 2].mean()
    den = values[:, 1].mean() - chance
    return float((values[:, 0].mean() - chance) / den) if den > 0 else math.nan


def _abc_auroc(values: np.ndarray) -> float:
    return auroc(values[:, 0], values[:, 1] > 0.5)


def _abc_mean(values: np.ndarray, correct: bool) -> float:
    group = values[values[:, 1] > 0.5, 0] if correct else values[values[:, 1] <= 0.5, 0]
    return float(group.mean()) if group.size else math.nan


def _abc_correct(values: np.ndarray) -> float:
    return _abc_mean(values, True)


def _abc_incorrect(values: np.ndarray) -> float:
    return _abc_mean(values, False)


def _nanmean(values: np.ndarray) -> float:
    # an example whose clean IG is zero has no relative change (nan): left out, as in the report
    return float(np.nanmean(values[:, 0]))


# The reports' own estimates: ABC's (its subset, bootstrapped by `abc_summary`) and stability's.
def _reported_auroc(report: Any) -> Estimate:
    return report.abc["auroc"]


def _reported_abc_correct(report: Any) -> Estimate:
    return report.abc["mean_correct"]


def _reported_abc_incorrect(report: Any) -> Estimate:
    return report.abc["mean_incorrect"]


def _reported_stability(report: Any) -> Estimate:
    return report.attribution_stability


for _spec in (
    ObjectiveSpec("clean_accuracy", "max", "clean", ("correct",), bounds=UNIT, default=True, binary=True,
                  doc="accuracy on the whole split"),
    ObjectiveSpec("sweep_area", "max", "sweep", ("area",), bounds=UNIT, default=True,
                  retention=("sweep_retention", "sweep_retention_cc"),
                  doc="area under accuracy vs input-noise intensity (<= sweep_area_max)"),
    ObjectiveSpec("sweep_retention", "max", "sweep", ("area", "clean"), _ratio,
                  doc="sweep_area / clean accuracy on the sweep's examples"),
    ObjectiveSpec("sweep_retention_cc", "max", "sweep", ("area", "clean", "chance"), _above_chance,
                  doc="sweep retention above chance: (sweep_area - 1/K) / (clean accuracy - 1/K)"),
    ObjectiveSpec("snr_accuracy", "max", "snr", ("area",), bounds=UNIT, retention=("snr_retention", "snr_retention_cc"),
                  doc="area under accuracy vs SNR (noise in the waveform before the STFT)"),
    ObjectiveSpec("snr_retention", "max", "snr", ("area", "clean"), _ratio,
                  doc="snr_accuracy / clean accuracy on the sweep's examples"),
    ObjectiveSpec("snr_retention_cc", "max", "snr", ("area", "clean", "chance"), _above_chance,
                  doc="SNR retention above chance: (snr_accuracy - 1/K) / (clean accuracy - 1/K)"),
    ObjectiveSpec("apgd_accuracy", "max", "apgd", ("robust_mean",), bounds=UNIT, default=True,
                  retention=("apgd_retention", "apgd_retention_cc"), doc="APGD-CE L2 robust accuracy, mean over eps"),
    ObjectiveSpec("apgd_retention", "max", "apgd", ("robust_mean", "clean"), _ratio, bounds=UNIT,
                  doc="apgd_accuracy / clean accuracy on the attacked examples"),
    ObjectiveSpec("apgd_retention_cc", "max", "apgd", ("robust_mean", "clean", "chance"), _above_chance,
                  doc="APGD retention above chance: (apgd_accuracy - 1/K) / (clean accuracy - 1/K)"),
    ObjectiveSpec("abc_auroc", "max", "abc", ("score", "correct"), _abc_auroc, bounds=UNIT, default=True,
                  reported=_reported_auroc, doc="AUROC of ABC as a predictor of a correct prediction"),
    ObjectiveSpec("abc_correct", "max", "abc", ("score", "correct"), _abc_correct, bounds=UNIT,
                  reported=_reported_abc_correct, doc="mean ABC on correct predictions (the study's Table 4)"),
    ObjectiveSpec("abc_incorrect", "min", "abc", ("score", "correct"), _abc_incorrect, bounds=UNIT,
                  reported=_reported_abc_incorrect, doc="mean ABC on incorrect predictions (the study's Table 4)"),
    ObjectiveSpec("attribution_stability", "min", "stability", ("value",), _nanmean, reported=_reported_stability,
                  doc="L1 change of IG under small input noise / L1 of IG"),
    ObjectiveSpec("certified_accuracy", "max", "smoothing", ("certified",), bounds=UNIT, binary=True,
                  doc="randomized smoothing: correct and certified at L2 radius smoothing_radius (Cohen et al.)"),
):
    register_objective(_spec)

# The search's default objectives (all maximised), in registration order.
OBJECTIVES: tuple[str, ...] = tuple(s.name for s in _REGISTRY.items() if s.default)

# What the designed study compares (docs/study.md, analysis.study), with the better direction:
# clean accuracy, the SNR sweep's and the image-domain sweep's areas, APGD robust accuracy, ABC
# as a predictor of correctness, attribution stability, clean accuracy at the two sensors
# farthest from the injection point (LOCATIONS run from the injection point outwards), and the
# three robustness numbers as retention above chance (absolute robustness is capped by clean
# accuracy; reports written before the chance column lack these).
FARTHEST: tuple[str, ...] = tuple(loc.name for loc in LOCATIONS[-2:])
STUDY_METRICS: tuple[tuple[str, str], ...] = tuple(
    (name, objective(name).direction) for name in (
        "clean_accuracy", "snr_accuracy", "sweep_area", "apgd_accuracy", "abc_auroc", "attribution_stability",
        *(location_objective(n) for n in FARTHEST), "snr_retention_cc", "sweep_retention_cc", "apgd_retention_cc"))
