"""`EvalReport`: every number of an evaluation of one split, and the objectives read from it.

The report is frozen and JSON-serialisable (`to_dict`, `to_json`, `from_dict`), and holds
the settings, the adaptive-attack sanity checks, the seconds each stage took and each
stage's per-example values, from which every registered objective (`nsde.metrics.objectives`)
is computed with its interval.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nsde.metrics.objectives import list_objectives, objective, objective_samples
from nsde.metrics.stats import NAN_ESTIMATE, Estimate, bootstrap_seeds, seed_mean

__all__ = ["SEED_BOOTSTRAP_MIN", "EvalReport", "replicate_estimate", "seed_estimates"]

# From this many training seeds on, an objective replicated over seeds gets the two-level
# bootstrap (seeds, then examples); with fewer a bootstrap over seeds under-covers, and the
# interval is Student's t on the seeds (`nsde.metrics.stats.seed_mean`).
SEED_BOOTSTRAP_MIN = 5


def _estimate(d: Any) -> Any:
    return Estimate(**d) if isinstance(d, dict) and set(d) == {"value", "n", "low", "high"} else d


@dataclass(frozen=True)
class EvalReport:
    """Every number of an evaluation of one split. Estimates carry (value, n, 95 % interval).

    Attributes:
        split: "val" or "test": where every number of this report comes from.
        clean: accuracy on the whole split (Wilson interval).
        sweep: per kind, (intensity, accuracy) on the sweep's subset (image-domain noise).
        snr: (SNR in dB, accuracy) on the sweep's subset, noise added to the waveform before
            the STFT (the `snr` sweep; [] when not run).
        per_location: clean accuracy per sensor location (location name -> Estimate) on the
            whole split; {} when the data set does not record locations.
        apgd: per eps, robust accuracy on the attacked subset.
        abc: "mean_correct", "mean_incorrect", "auroc" (Estimates, bootstrap intervals) and
            "auroc_note" (why the AUROC is undefined, else None).
        attribution_stability: normalised IG change (lower = stabler).
        checks: the adaptive-attack sanity checks (`adaptive_checks`), {} when not run.
        per_example: per-example outcomes by stage, each part with "index": the examples'
            indices in the data set (all inside `split`'s indices).
    """

    split: str
    clean: Estimate
    sweep: dict[str, list[tuple[float, Estimate]]]
    apgd: dict[float, Estimate]
    abc: dict[str, Any]
    attribution_stability: Estimate
    checks: dict[str, dict]
    per_example: dict[str, dict[str, list]]
    stochastic: bool
    settings: dict
    seconds: dict[str, float] = field(default_factory=dict)
    snr: list[tuple[float, Estimate]] = field(default_factory=list)
    per_location: dict[str, Estimate] = field(default_factory=dict)
    smoothing: dict[float, Estimate] = field(default_factory=dict)  # L2 radius -> certified accuracy

    @property
    def objectives(self) -> dict[str, float]:
        """Every registered objective's value (`OBJECTIVE_METRICS`; `OBJECTIVES` are the default four)."""
        return {name: float(est.value) for name, est in self.objective_estimates().items()}

    def objective_estimates(self) -> dict[str, Estimate]:
        """Every registered objective with its sample size and 95 % interval
        (`ObjectiveSpec.estimate`); computed once per report."""
        return dict(self._objective_estimates)

    @functools.cached_property
    def _objective_estimates(self) -> dict[str, Estimate]:
        return {name: objective(name).estimate(self) for name in list_objectives()}

    @property
    def checks_passed(self) -> bool | None:
        """False if an applicable sanity check failed; None when none ran."""
        verdicts = [c.get("passed") for c in self.checks.values() if c.get("passed") is not None]
        return None if not verdicts else all(verdicts)

    def failed_checks(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.get("passed") is False]

    def to_dict(self) -> dict:
        def conv(v):
            if isinstance(v, Estimate):
                return dataclasses.asdict(v)
            if isinstance(v, dict):
                return {str(k): conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            if isinstance(v, np.generic):
                return v.item()
            return v

        out = {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["objectives"] = self.objectives
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> EvalReport:
        """The report `to_dict` wrote (JSON keys back to floats, Estimates back to objects)."""
        return cls(
            split=d["split"],
            clean=_estimate(d["clean"]),
            sweep={k: [(float(i), _estimate(e)) for i, e in pts] for k, pts in d["sweep"].items()},
            apgd={float(k): _estimate(e) for k, e in d["apgd"].items()},
            abc={k: _estimate(v) for k, v in d["abc"].items()},
            attribution_stability=_estimate(d["attribution_stability"]),
            checks=d.get("checks", {}),
            per_example=d["per_example"],
            stochastic=d["stochastic"],
            settings=d["settings"],
            seconds=d.get("seconds", {}),
            snr=[(float(level), _estimate(e)) for level, e in d.get("snr", [])],
            per_location={k: _estimate(e) for k, e in d.get("per_location", {}).items()},
            smoothing={float(k): _estimate(e) for k, e in d.get("smoothing", {}).items()},
        )


def seed_estimates(reports: list[EvalReport], names=None, *, resamples: int = 2000,
                   seed: int = 0) -> dict[str, Estimate]:
    """Objectives replicated over training seeds (one report a seed, same split and settings):
    the mean over seeds with an interval that counts both the seeds and the examples, n =
    seeds. From `SEED_BOOTSTRAP_MIN` seeds on, the two-level bootstrap (seeds, then examples);
    with 2 to 4, Student's t on the seeds (`seed_mean`), kept inside the objective's bounds;
    one seed is the example bootstrap. `names`: objectives or family members (default: every
    registered objective)."""
    return {name: replicate_estimate([r.per_example for r in reports], name, resamples=resamples, seed=seed)
            for name in names or list_objectives()}


def replicate_estimate(per_examples: list[dict], name: str, *, resamples: int = 2000, seed: int = 0) -> Estimate:
    """`seed_estimates` of one objective from the reports' `per_example` parts (one a seed); NaN
    when a report lacks its values (a stage the profile does not run, e.g. `smoothing`, or a report
    written before the column existed)."""
    try:
        parts = [objective_samples(p, name) for p in per_examples]
    except KeyError:
        return NAN_ESTIMATE
    values, stat = [p[1] for p in parts], parts[0][2]
    if 2 <= len(values) < SEED_BOOTSTRAP_MIN:
        return _within(seed_mean(values, stat, resamples=resamples, seed=seed), objective(name).bounds)
    return bootstrap_seeds(values, stat, resamples=resamples, seed=seed)


def _within(est: Estimate, bounds: tuple[float, float] | None) -> Estimate:
    """`est` with its interval cut to `bounds` (a t-interval of an accuracy near 1 passes 1)."""
    if bounds is None:
        return est
    return Estimate(est.value, est.n, max(est.low, bounds[0]), min(est.high, bounds[1]))
