"""`evaluate(model, data, cfg, split="val" | "test") -> EvalReport`: every objective, with n and intervals.

One call scores one split: a search selects on `split="val"` and touches `split="test"`
once, for what it selected. Clean accuracy runs on the whole split; the noise sweep, APGD,
ABC and attribution stability on seeded subsets of it (`sweep_subset`, `attack_subset`,
`abc_subset`, `stability_subset`). The subsets depend only on the split's size and the
seed, so two models evaluated with the same settings are scored on the same examples and
can be compared pairwise (`per_example` holds each model's per-example outcomes, and
`analysis.compare` pairs them). Every prediction is the model's own evaluation-mode
prediction (`predict_labels`: one pass, the Monte-Carlo mean, or the majority vote).

The report is frozen and JSON-serialisable (`to_dict`, `to_json`, `from_dict`), and holds
the settings, the adaptive-attack sanity checks and the seconds each metric took.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nsde.data import SpectrogramData
from nsde.data.snr import SNR_LEVELS_DB, snr_spectrograms
from nsde.data.synthetic import LOCATIONS
from nsde.metrics.explain import abc_scores, abc_summary, attribution_stability
from nsde.metrics.robustness import (
    SWEEP_KINDS,
    adaptive_checks,
    apgd_attack,
    correct_predictions,
    is_stochastic,
    parse_sweep_kind,
    sweep_area,
    sweep_correct,
)
from nsde.metrics.stats import Estimate, auroc, bootstrap, bootstrap_mean, bootstrap_seeds, proportion

__all__ = [
    "EVAL_PROFILES",
    "FARTHEST",
    "LOCATION_PREFIX",
    "OBJECTIVES",
    "OBJECTIVE_METRICS",
    "SPLITS",
    "STUDY_METRICS",
    "EvalConfig",
    "EvalReport",
    "eval_config",
    "evaluate",
    "has_samples",
    "objective_samples",
    "seed_estimates",
]

SPLITS = ("val", "test")
# Per-location clean accuracy as flat metrics (MLflow, Tune): location_acc_<location name>.
LOCATION_PREFIX = "location_acc_"
# The four default objectives of the search (all maximised), keys of EvalReport.objectives.
OBJECTIVES = ("clean_accuracy", "sweep_area", "apgd_accuracy", "abc_auroc")
# Every objective an evaluation produces, with the direction that is better.
OBJECTIVE_METRICS: dict[str, str] = {
    "clean_accuracy": "max",  # the model's evaluation-mode prediction on the whole split
    "sweep_area": "max",  # normalised area under accuracy vs input-noise intensity (<= sweep_area_max)
    "sweep_retention": "max",  # sweep_area / clean accuracy on the sweep's examples
    "snr_accuracy": "max",  # normalised area under accuracy vs SNR (noise added to the waveform before the STFT)
    "apgd_accuracy": "max",  # APGD-CE L2 robust accuracy, mean over eps
    "apgd_retention": "max",  # apgd_accuracy / clean accuracy on the attacked examples
    "abc_auroc": "max",  # AUROC of ABC as a predictor of a correct prediction
    "abc_correct": "max",  # mean ABC on correct predictions (the study's Table 4)
    "abc_incorrect": "min",  # mean ABC on incorrect predictions (the study's Table 4)
    "attribution_stability": "min",  # L1 change of IG under small input noise / L1 of IG
}


# What the designed study compares (docs/study.md, analysis.study), with the better direction:
# clean accuracy, the SNR sweep's and the image-domain sweep's areas, APGD robust accuracy, ABC
# as a predictor of correctness, attribution stability, and clean accuracy at the two sensors
# farthest from the injection point (LOCATIONS run from the injection point outwards).
FARTHEST: tuple[str, ...] = tuple(loc.name for loc in LOCATIONS[-2:])
STUDY_METRICS: tuple[tuple[str, str], ...] = (
    ("clean_accuracy", "max"), ("snr_accuracy", "max"), ("sweep_area", "max"), ("apgd_accuracy", "max"),
    ("abc_auroc", "max"), ("attribution_stability", "min"), *((f"{LOCATION_PREFIX}{n}", "max") for n in FARTHEST))


@dataclass(frozen=True)
class EvalConfig:
    """Settings of every metric. Defaults follow the study; `EVAL_PROFILES` names cheaper ones.

    Attributes:
        sweep_intensities / sweep_kinds / sweep_hurst: the noise sweep (inputs clipped to [0, 1]);
            kinds "gaussian", "fbm" (at `sweep_hurst`) and "fbm:<H>" (at H). `sweep_area` is
            the mean over kinds; per_example["sweep"] keeps each kind's area (`area_<kind>`).
        sweep_area_max: the sweep objective is the area under the accuracy curve over the
            intensities <= this (above 0.25 every model of the default search is at chance).
        sweep_subset: examples in the sweep and the SNR sweep (seeded subset; 0 = the whole split).
        snr_levels: the SNR sweep, dB: white noise added to the waveforms before the STFT
            (`nsde.data.snr`); its objective `snr_accuracy` is the normalised area under
            accuracy vs SNR over these levels. () = no SNR sweep.
        apgd_eps / apgd_steps / eot_iter: APGD-CE L2; eot_iter applies to stochastic models.
        attack_subset: examples attacked (seeded subset; 0 = the whole split).
        abc_subset / abc_samples / abc_mutate / ig_steps: ABC (S samples, features mutated
            per sample as a fraction of all features, IG steps).
        stability_subset / stability_draws / stability_stdev: attribution stability.
        checks: run the adaptive-attack sanity checks (`adaptive_checks`) on the attacked subset.
        check_small_eps / check_large_rms / check_eot_factor: their settings (eps -> 0; a large
            eps as an RMS change per pixel; the larger EOT as a multiple of eot_iter).
        resamples: bootstrap resamples of every interval.
        seed: seeds the subsets, the sweep noise, the attack, the ABC sampling, the bootstrap.
    """

    sweep_intensities: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0)
    sweep_kinds: tuple[str, ...] = SWEEP_KINDS
    sweep_hurst: float = 0.5
    sweep_area_max: float = 0.25
    sweep_subset: int = 0
    snr_levels: tuple[float, ...] = SNR_LEVELS_DB
    apgd_eps: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2)
    apgd_steps: int = 100
    eot_iter: int = 4
    attack_subset: int = 256
    abc_subset: int = 256
    abc_samples: int = 64
    abc_mutate: float = 0.01
    ig_steps: int = 32
    stability_subset: int = 64
    stability_draws: int = 4
    stability_stdev: float = 0.01
    checks: bool = True
    check_small_eps: float = 1e-4
    check_large_rms: float = 0.25
    check_eot_factor: int = 4
    resamples: int = 2000
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("apgd_steps", "eot_iter", "abc_samples", "ig_steps", "stability_draws", "batch_size",
                     "check_eot_factor", "resamples"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name} >= 1` must hold, but got {name}={getattr(self, name)}")
        for name in ("attack_subset", "abc_subset", "stability_subset", "sweep_subset"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name} >= 0` must hold (0 = the whole split), but got {getattr(self, name)}")
        if not self.sweep_kinds or len(set(self.sweep_kinds)) != len(self.sweep_kinds):
            raise ValueError(f"`sweep_kinds` must name distinct kinds, at least one, but got {list(self.sweep_kinds)}")
        for kind in self.sweep_kinds:
            parse_sweep_kind(kind, self.sweep_hurst)
        if not 0 < self.abc_mutate < 1:
            raise ValueError(f"`0 < abc_mutate < 1` (a fraction of the features) must hold, but got {self.abc_mutate}")
        if not any(i <= self.sweep_area_max for i in self.sweep_intensities):
            raise ValueError(f"`sweep_area_max` must be >= the smallest sweep intensity "
                             f"{min(self.sweep_intensities)}, but got {self.sweep_area_max}")
        if any(not math.isfinite(level) for level in self.snr_levels) or len(set(self.snr_levels)) < len(
                self.snr_levels):
            raise ValueError(f"`snr_levels` must be distinct finite dB values, but got {self.snr_levels}")
        if not 0 < self.check_small_eps < min(self.apgd_eps):
            raise ValueError(f"`0 < check_small_eps < min(apgd_eps)` must hold, but got {self.check_small_eps}")
        if not self.check_large_rms > 0:
            raise ValueError(f"`check_large_rms > 0` must hold, but got {self.check_large_rms}")

    @classmethod
    def fast(cls, **overrides) -> EvalConfig:
        """A cheaper profile for search trials (fewer steps, smaller subsets)."""
        return cls(**{**EVAL_PROFILES["fast"], **overrides})


# Named evaluation profiles: overrides of EvalConfig's defaults (the study's settings).
# A search scores every trial with a cheap profile and re-scores its Pareto-optimal
# trials with a full-strength one (docs/metrics.md, "Evaluation profiles").
EVAL_PROFILES: dict[str, dict] = {
    # search trials: 20 APGD steps, EOT 2, subsets of 64
    "fast": dict(apgd_steps=20, eot_iter=2, attack_subset=64, abc_subset=64, abc_samples=32, ig_steps=16,
                 stability_subset=16, stability_draws=2),
    # the study's settings: 100 APGD steps, EOT 4, subsets of 256, the sweep on the whole split
    "full": {},
    # The pair the CPU-sized `default` space uses. At 64x64 on 2 cores, 100-step APGD on 64
    # examples already costs about 2/3 of a 5-epoch training run (docs/search.md). ABC runs on
    # 64 examples so that a subset without an incorrect (or correct) prediction, where the
    # AUROC is undefined, is rare (a model at 90 % accuracy: 0.9^64 = 0.1 %).
    "cpu-search": dict(apgd_steps=20, eot_iter=2, attack_subset=32, abc_subset=64, abc_samples=32, ig_steps=16,
                       stability_subset=16, stability_draws=2, sweep_subset=128, resamples=1000),
    "cpu-final": dict(attack_subset=64, abc_subset=128, stability_subset=32),  # full strength, smaller subsets
    # The designed study (docs/study.md). Its test profile: the image-domain sweep with white
    # noise and fBm at three Hurst exponents (is the protection shape-matched?) up to the area's
    # largest intensity and the SNR sweep, on 256 examples; APGD with 20 steps and its checks
    # on 64; ABC 64 x 32; sized with the training for 45 trials in ~90 min on 2 cores (the
    # study took 108 min: docs/study.md, Sizing)
    "study": dict(sweep_kinds=("gaussian", "fbm:0.1", "fbm:0.5", "fbm:0.9"),
                  sweep_intensities=(0.05, 0.1, 0.15, 0.2, 0.25), sweep_subset=256, apgd_steps=20,
                  attack_subset=64, abc_subset=64, abc_samples=32, ig_steps=16, stability_subset=16,
                  stability_draws=2),
    # ... and its validation profile: nothing is selected on it (the cells are fixed), it only
    # feeds the report, the importance and the choice of the cells a figure singles out
    "study-val": dict(sweep_subset=128, apgd_steps=10, eot_iter=1, attack_subset=16, checks=False, abc_subset=32,
                      abc_samples=8, ig_steps=8, stability_subset=8, stability_draws=1, resamples=200),
    # MOASHA's rung evaluation (--scheduler moasha): a ranking signal part-way through
    # training, not a number to report: 10 APGD steps without EOT or sanity checks on 32
    # examples, ABC 64 x 16, the sweeps on 128 examples, few bootstrap resamples
    "rung": dict(apgd_steps=10, eot_iter=1, attack_subset=32, abc_subset=64, abc_samples=16, ig_steps=8,
                 stability_subset=8, stability_draws=1, checks=False, sweep_subset=128, resamples=200),
}


def eval_config(profile: str, **overrides) -> EvalConfig:
    """The named evaluation profile (`EVAL_PROFILES`), with `overrides` (None = keep)."""
    if profile not in EVAL_PROFILES:
        raise ValueError(f"unknown evaluation profile {profile!r}; known profiles: {sorted(EVAL_PROFILES)}")
    return EvalConfig(**{**EVAL_PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})


# ---------------------------------------------------------------- per-example objectives


def _ratio(a: np.ndarray) -> float:
    den = a[:, 1].mean()
    return float(a[:, 0].mean() / den) if den > 0 else math.nan


def _abc_mean(correct: bool) -> Callable[[np.ndarray], float]:
    def stat(a: np.ndarray) -> float:
        group = a[a[:, 1] > 0.5, 0] if correct else a[a[:, 1] <= 0.5, 0]
        return float(group.mean()) if group.size else math.nan

    return stat


def _abc_auroc(a: np.ndarray) -> float:
    return auroc(a[:, 0], a[:, 1] > 0.5)


# objective -> (per_example key, columns, statistic of the (n, columns) array). Every objective
# is a statistic of per-example values, so one rule gives its interval (bootstrap over
# examples), its replicate summary (two-level bootstrap over seeds) and its paired comparison.
_STATISTICS: dict[str, tuple[str, tuple[str, ...], Callable[[np.ndarray], float]]] = {
    "clean_accuracy": ("clean", ("correct",), lambda a: float(a[:, 0].mean())),
    "sweep_area": ("sweep", ("area",), lambda a: float(a[:, 0].mean())),
    "sweep_retention": ("sweep", ("area", "clean"), _ratio),
    "snr_accuracy": ("snr", ("area",), lambda a: float(a[:, 0].mean())),
    "apgd_accuracy": ("apgd", ("robust_mean",), lambda a: float(a[:, 0].mean())),
    "apgd_retention": ("apgd", ("robust_mean", "clean"), _ratio),
    "abc_auroc": ("abc", ("score", "correct"), _abc_auroc),
    "abc_correct": ("abc", ("score", "correct"), _abc_mean(True)),
    "abc_incorrect": ("abc", ("score", "correct"), _abc_mean(False)),
    # nan: an example whose clean IG is zero has no relative change; left out, as in the report
    "attribution_stability": ("stability", ("value",), lambda a: float(np.nanmean(a[:, 0]))),
}


KIND_SEPARATOR = "@"  # sweep_area@fbm:0.1: one sweep kind's area (per_example["sweep"]["area_fbm:0.1"])


def has_samples(name: str) -> bool:
    """Whether `objective_samples` knows `name`: an objective (`OBJECTIVE_METRICS`), one sweep
    kind's area (`sweep_area@<kind>`) or one location's clean accuracy (`location_acc_<name>`)."""
    return name in _STATISTICS or name.startswith("sweep_area" + KIND_SEPARATOR) or name.startswith(LOCATION_PREFIX)


def _mean(a: np.ndarray) -> float:
    return float(a[:, 0].mean()) if len(a) else math.nan


def objective_samples(per_example: dict[str, dict[str, list]], name: str
                      ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], float]]:
    """(example indices, (n, c) per-example values, statistic) of objective `name`: the
    objective is statistic(values); rows of two reports with equal indices are the same examples.

    Besides the objectives, `sweep_area@<kind>` is one sweep kind's area (e.g.
    `sweep_area@fbm:0.1`) and `location_acc_<location>` the clean accuracy on one sensor
    location's examples (reports written before these existed lack their columns: KeyError).
    """
    if name.startswith("sweep_area" + KIND_SEPARATOR):
        part = per_example["sweep"]
        column = "area_" + name.split(KIND_SEPARATOR, 1)[1]
        if column not in part:
            raise ValueError(f"{name}: this report's sweep has no kind {column[5:]!r}; its kinds: "
                             f"{[c[5:] for c in part if c.startswith('area_')]}")
        return np.asarray(part["index"]), np.asarray(part[column], dtype=np.float64)[:, None], _mean
    if name.startswith(LOCATION_PREFIX):
        part = per_example["clean"]
        rows = np.asarray(part["location"]) == name[len(LOCATION_PREFIX):]
        return (np.asarray(part["index"])[rows], np.asarray(part["correct"], dtype=np.float64)[rows][:, None], _mean)
    if name not in _STATISTICS:
        raise ValueError(f"unknown objective {name!r}; known objectives: {list(_STATISTICS)}, "
                         f"'sweep_area{KIND_SEPARATOR}<kind>' and '{LOCATION_PREFIX}<location>'")
    key, columns, stat = _STATISTICS[name]
    part = per_example[key]
    values = np.column_stack([np.asarray(part[c], dtype=np.float64) for c in columns])
    return np.asarray(part["index"]), values, stat


def seed_estimates(reports: list[EvalReport], names=None, *, resamples: int = 2000,
                   seed: int = 0) -> dict[str, Estimate]:
    """Objectives replicated over training seeds (one report a seed, same split and settings):
    the mean over seeds, with a two-level bootstrap interval (seeds, then examples); n = seeds."""
    names = names or list(_STATISTICS)
    out = {}
    for name in names:
        parts = [objective_samples(r.per_example, name) for r in reports]
        stat = parts[0][2]
        out[name] = bootstrap_seeds([p[1] for p in parts], stat, resamples=resamples, seed=seed)
    return out


# ------------------------------------------------------------------------- the report


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
        per_example: per-example outcomes, each part with "index": the examples' indices in
            the data set (all inside `split`'s indices).
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

    @property
    def objectives(self) -> dict[str, float]:
        """Every objective's value (`OBJECTIVE_METRICS`; `OBJECTIVES` are the default four)."""
        return {name: float(est.value) for name, est in self.objective_estimates().items()}

    def objective_estimates(self) -> dict[str, Estimate]:
        """Every objective with its sample size and 95 % interval: Wilson for clean accuracy, a
        seeded percentile bootstrap over examples for the rest (bounded by their ranges). ABC and
        attribution stability are the report's own estimates; computed once per report."""
        return dict(self._objective_estimates)

    @functools.cached_property
    def _objective_estimates(self) -> dict[str, Estimate]:
        resamples = int(self.settings.get("resamples", 2000))
        seed = int(self.settings.get("seed", 0))
        out = {"clean_accuracy": self.clean, "abc_auroc": self.abc["auroc"], "abc_correct": self.abc["mean_correct"],
               "abc_incorrect": self.abc["mean_incorrect"], "attribution_stability": self.attribution_stability}
        for name in ("sweep_area", "sweep_retention", "snr_accuracy", "apgd_accuracy", "apgd_retention"):
            if _STATISTICS[name][0] not in self.per_example:  # a report without the SNR sweep
                out[name] = Estimate(math.nan, 0, math.nan, math.nan)
                continue
            _, values, stat = objective_samples(self.per_example, name)
            if values.shape[1] == 1:
                out[name] = bootstrap_mean(values[:, 0], resamples=resamples, seed=seed)
            else:
                out[name] = bootstrap(lambda idx, v=values, s=stat: s(v[idx]), len(values), resamples=resamples,
                                      seed=seed)
        return {name: out[name] for name in _STATISTICS}

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
        )


def _subset(n_total: int, size: int, seed: int) -> np.ndarray:
    if size == 0 or size >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng([seed, 7]).choice(n_total, size=size, replace=False))


def evaluate(model: torch.nn.Module, data: SpectrogramData, cfg: EvalConfig | None = None, *,
             split: str = "val") -> EvalReport:
    """Run every metric on `model` (which stays in eval mode) and `data`'s `split` ("val" or "test")."""
    cfg = cfg or EvalConfig()
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, but got {split!r}")
    model.eval()
    device = next(model.parameters()).device
    # The injected noise draws from a generator of its own, seeded here: reproducible, and
    # immune to torchattacks' torch.manual_seed calls.
    previous_gen = getattr(model, "generator", None)
    if hasattr(model, "set_noise_generator"):
        model.set_noise_generator(torch.Generator(device=device).manual_seed(cfg.seed + 17))
    seconds: dict[str, float] = {}
    per_example: dict[str, dict[str, list]] = {}
    try:
        part = data.split(split)
        x, y = part.x, part.y
        where = np.asarray(data.indices(split))  # per-example records name data-set indices
        start = time.perf_counter()
        correct = correct_predictions(model, x, y, cfg.batch_size, seed=cfg.seed + 5)
        clean = proportion(correct)
        locations = _location_names(data, where)
        per_example["clean"] = {"index": where.tolist(), "correct": correct.tolist(), "location": locations}
        per_location = _per_location(locations, correct, data.location_names)
        seconds["clean"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(y), cfg.sweep_subset, cfg.seed + 3)
        sweep_ok = sweep_correct(model, x[idx], y[idx], kinds=cfg.sweep_kinds, intensities=cfg.sweep_intensities,
                                 hurst=cfg.sweep_hurst, seed=cfg.seed, batch_size=cfg.batch_size)
        sweep = {kind: [(float(i), proportion(row)) for i, row in zip(cfg.sweep_intensities, rows)]
                 for kind, rows in sweep_ok.items()}
        keep = [i for i, level in enumerate(cfg.sweep_intensities) if level <= cfg.sweep_area_max]
        levels = [cfg.sweep_intensities[i] for i in keep]
        areas = {kind: sweep_area(levels, rows[keep]) for kind, rows in sweep_ok.items()}
        per_example["sweep"] = {"index": where[idx].tolist(), "area": np.mean(list(areas.values()), axis=0).tolist(),
                                "clean": correct[idx].tolist(),
                                **{f"area_{kind}": a.tolist() for kind, a in areas.items()}}
        seconds["sweep"] = time.perf_counter() - start

        snr: list[tuple[float, Estimate]] = []
        if cfg.snr_levels:
            start = time.perf_counter()
            snr_ok = _snr_correct(model, data, split, idx, y[idx], cfg)  # (L, n), levels as in cfg
            snr = [(float(level), proportion(row)) for level, row in zip(cfg.snr_levels, snr_ok)]
            per_example["snr"] = {"index": where[idx].tolist(), "area": sweep_area(cfg.snr_levels, snr_ok).tolist(),
                                  **{f"correct_{level:g}": row.tolist() for level, row in zip(cfg.snr_levels, snr_ok)}}
            seconds["snr"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(y), cfg.attack_subset, cfg.seed)
        attack = apgd_attack(model, x[idx], y[idx], eps=cfg.apgd_eps, steps=cfg.apgd_steps, eot_iter=cfg.eot_iter,
                             seed=cfg.seed, batch_size=cfg.batch_size)
        apgd = attack.estimates()
        per_example["apgd"] = {"index": where[idx].tolist(), "robust_mean": attack.robust.mean(0).tolist(),
                               "clean": attack.clean.tolist(),
                               **{f"robust_{e:g}": row.tolist() for e, row in zip(attack.eps, attack.robust)}}
        seconds["apgd"] = time.perf_counter() - start

        checks: dict[str, dict] = {}
        if cfg.checks:
            start = time.perf_counter()
            num_classes = int(model(x[:1].to(device)).shape[-1])
            checks = adaptive_checks(model, x[idx], y[idx], attack, num_classes=num_classes,
                                     small_eps=cfg.check_small_eps, large_rms=cfg.check_large_rms,
                                     steps=cfg.apgd_steps, eot_iter=cfg.eot_iter, eot_factor=cfg.check_eot_factor,
                                     seed=cfg.seed, batch_size=cfg.batch_size)
            seconds["checks"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(y), cfg.abc_subset, cfg.seed + 1)
        scores, preds = abc_scores(model, x[idx], samples=cfg.abc_samples, mutate=cfg.abc_mutate,
                                   ig_steps=cfg.ig_steps, seed=cfg.seed)
        abc_ok = preds == y[idx].numpy()
        abc = abc_summary(scores, abc_ok, resamples=cfg.resamples, seed=cfg.seed)
        per_example["abc"] = {"index": where[idx].tolist(), "score": scores.tolist(), "correct": abc_ok.tolist()}
        seconds["abc"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(y), cfg.stability_subset, cfg.seed + 2)
        stability, values = attribution_stability(model, x[idx], draws=cfg.stability_draws,
                                                  stdev=cfg.stability_stdev, ig_steps=cfg.ig_steps, seed=cfg.seed)
        per_example["stability"] = {"index": where[idx].tolist(), "value": np.asarray(values).tolist()}
        seconds["attribution_stability"] = time.perf_counter() - start
    finally:
        if hasattr(model, "set_noise_generator"):
            model.set_noise_generator(previous_gen)
    seconds["total"] = sum(seconds.values())
    return EvalReport(
        split=split,
        clean=clean,
        sweep=sweep,
        apgd=apgd,
        abc=abc,
        attribution_stability=stability,
        checks=checks,
        per_example=per_example,
        stochastic=is_stochastic(model),
        settings=dataclasses.asdict(cfg),
        seconds=seconds,
        snr=snr,
        per_location=per_location,
    )


def _location_names(data: SpectrogramData, where: np.ndarray) -> list[str]:
    """Each example's sensor location name ("" when unknown)."""
    names = data.location_names
    return [names[i] if 0 <= i < len(names) else "" for i in np.asarray(data.location)[where].tolist()]


def _per_location(locations: list[str], correct: np.ndarray, names: Sequence[str]) -> dict[str, Estimate]:
    """Clean accuracy per sensor location, in the order of `names`, from each example's location
    name (`_location_names`; unknown locations, "", left out)."""
    locations = np.asarray(locations)
    return {n: proportion(correct[locations == n]) for n in names if (locations == n).any()}


def _snr_correct(model: torch.nn.Module, data: SpectrogramData, split: str, idx: np.ndarray, y: torch.Tensor,
                 cfg: EvalConfig) -> np.ndarray:
    """(len(snr_levels), len(idx)) correctness on the split's rows `idx` re-made at each SNR."""
    rows = []
    for k, level in enumerate(cfg.snr_levels):
        x = torch.from_numpy(np.asarray(snr_spectrograms(data, split, level)[idx], dtype=np.float32))
        rows.append(correct_predictions(model, x, y, cfg.batch_size, seed=cfg.seed * 1000 + 500 + k))
    return np.stack(rows)
