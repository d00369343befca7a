"""`evaluate(model, data, cfg) -> EvalReport`: every objective of the search, with n and intervals.

Clean accuracy runs on the full validation and test splits; the noise sweep on the full
test split; APGD, ABC and attribution stability on a seeded subset of the test split
(`attack_subset`, `abc_subset`), the slow part. The report is frozen and JSON-serialisable
(`to_dict`, `to_json`), and holds the settings and the seconds each metric took.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from nsde.data import SpectrogramData
from nsde.metrics.explain import abc_scores, abc_summary, attribution_stability
from nsde.metrics.robustness import (
    SWEEP_KINDS,
    apgd_robust_accuracy,
    correct_predictions,
    is_stochastic,
    sweep_accuracy,
)
from nsde.metrics.stats import Estimate, proportion

__all__ = ["EVAL_PROFILES", "EvalConfig", "EvalReport", "eval_config", "evaluate", "OBJECTIVES"]

# The four objectives the search optimises (all maximised), as keys of EvalReport.objectives.
OBJECTIVES = ("clean_accuracy", "sweep_accuracy", "apgd_accuracy", "abc_correct")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of every metric. Defaults follow the study; `fast()` is the search profile.

    Attributes:
        sweep_intensities / sweep_kinds / sweep_hurst: the noise sweep (inputs clipped to [0, 1]).
        sweep_subset: test examples in the sweep (seeded subset; 0 = the whole test split).
        apgd_eps / apgd_steps / eot_iter: APGD-CE L2; eot_iter applies to stochastic models.
        attack_subset: test examples attacked (seeded subset; 0 = the whole test split).
        abc_subset / abc_samples / abc_mutate / ig_steps: ABC (S samples, features mutated
            per sample as a fraction of all features, IG steps).
        stability_subset / stability_draws / stability_stdev: attribution stability.
        seed: seeds the subsets, the sweep noise, the attack and the ABC sampling.
    """

    sweep_intensities: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0)
    sweep_kinds: tuple[str, ...] = SWEEP_KINDS
    sweep_hurst: float = 0.5
    sweep_subset: int = 0
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
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("apgd_steps", "eot_iter", "abc_samples", "ig_steps", "stability_draws", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name} >= 1` must hold, but got {name}={getattr(self, name)}")
        for name in ("attack_subset", "abc_subset", "stability_subset", "sweep_subset"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name} >= 0` must hold (0 = whole test split), but got {getattr(self, name)}")
        unknown = set(self.sweep_kinds) - set(SWEEP_KINDS)
        if unknown:
            raise ValueError(f"unknown sweep kinds {sorted(unknown)}; known kinds: {list(SWEEP_KINDS)}")
        if not 0 < self.abc_mutate < 1:
            raise ValueError(f"`0 < abc_mutate < 1` (a fraction of the features) must hold, but got {self.abc_mutate}")

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
    # the study's settings: 100 APGD steps, EOT 4, subsets of 256, the sweep on the whole test split
    "full": {},
    # The pair the CPU-sized `default` space uses. At 64x64 on 2 cores, 100-step APGD on 64
    # examples already costs about 2/3 of a 5-epoch training run (docs/search.md).
    "cpu-search": dict(apgd_steps=20, eot_iter=2, attack_subset=32, abc_subset=32, abc_samples=32, ig_steps=16,
                       stability_subset=16, stability_draws=2, sweep_subset=128),
    "cpu-final": dict(attack_subset=64, abc_subset=64, stability_subset=32),  # full strength, smaller subsets
}


def eval_config(profile: str, **overrides) -> EvalConfig:
    """The named evaluation profile (`EVAL_PROFILES`), with `overrides` (None = keep)."""
    if profile not in EVAL_PROFILES:
        raise ValueError(f"unknown evaluation profile {profile!r}; known profiles: {sorted(EVAL_PROFILES)}")
    return EvalConfig(**{**EVAL_PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class EvalReport:
    """Every number of an evaluation. Accuracies are `Estimate`s (value, n, 95 % interval)."""

    clean_val: Estimate
    clean_test: Estimate
    sweep: dict[str, list[tuple[float, Estimate]]]
    sweep_mean: Estimate  # mean accuracy over every (kind, intensity) point, on the test split
    apgd: dict[float, Estimate]
    abc: dict[str, Estimate | float]
    attribution_stability: Estimate
    stochastic: bool
    settings: dict
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def objectives(self) -> dict[str, float]:
        """The search's four objectives (all to maximise)."""
        return {name: float(est.value) for name, est in self.objective_estimates().items()}

    def objective_estimates(self) -> dict[str, Estimate]:
        """`objectives` with their sample sizes and 95 % intervals (APGD: the mean over eps
        of the per-eps values and of the per-eps interval ends, a conservative interval)."""
        apgd = list(self.apgd.values())
        apgd_est = (Estimate(float(np.mean([e.value for e in apgd])), apgd[0].n, float(np.mean([e.low for e in apgd])),
                             float(np.mean([e.high for e in apgd]))) if apgd else Estimate(float("nan"), 0, float("nan"), float("nan")))
        return {
            "clean_accuracy": self.clean_test,
            "sweep_accuracy": self.sweep_mean,
            "apgd_accuracy": apgd_est,
            "abc_correct": self.abc["mean_correct"],
        }

    def to_dict(self) -> dict:
        def conv(v):
            if isinstance(v, Estimate):
                return dataclasses.asdict(v)
            if isinstance(v, dict):
                return {str(k): conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            return v

        out = {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["objectives"] = self.objectives
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _subset(n_total: int, size: int, seed: int) -> np.ndarray:
    if size == 0 or size >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng([seed, 7]).choice(n_total, size=size, replace=False))


def evaluate(model: torch.nn.Module, data: SpectrogramData, cfg: EvalConfig | None = None) -> EvalReport:
    """Run every metric on `model` (which stays in eval mode) and `data`'s val and test splits."""
    cfg = cfg or EvalConfig()
    model.eval()
    device = next(model.parameters()).device
    # The injected noise draws from a generator of its own, seeded here: reproducible, and
    # immune to torchattacks' torch.manual_seed calls.
    previous_gen = getattr(model, "generator", None)
    if hasattr(model, "set_noise_generator"):
        model.set_noise_generator(torch.Generator(device=device).manual_seed(cfg.seed + 17))
    seconds: dict[str, float] = {}
    try:
        val, test = data.split("val"), data.split("test")
        start = time.perf_counter()
        clean_val = proportion(correct_predictions(model, val.x, val.y, cfg.batch_size))
        test_correct = correct_predictions(model, test.x, test.y, cfg.batch_size)
        clean_test = proportion(test_correct)
        seconds["clean"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(test.y), cfg.sweep_subset, cfg.seed + 3)
        sweep = sweep_accuracy(model, test.x[idx], test.y[idx], kinds=cfg.sweep_kinds,
                               intensities=cfg.sweep_intensities, hurst=cfg.sweep_hurst, seed=cfg.seed,
                               batch_size=cfg.batch_size)
        points = [e.value for pts in sweep.values() for _, e in pts]
        sweep_mean = Estimate(float(np.mean(points)), len(idx), *_mean_interval(sweep))
        seconds["sweep"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(test.y), cfg.attack_subset, cfg.seed)
        apgd, _ = apgd_robust_accuracy(model, test.x[idx], test.y[idx], eps=cfg.apgd_eps, steps=cfg.apgd_steps,
                                       eot_iter=cfg.eot_iter, seed=cfg.seed, batch_size=cfg.batch_size)
        seconds["apgd"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(test.y), cfg.abc_subset, cfg.seed + 1)
        scores, preds = abc_scores(model, test.x[idx], samples=cfg.abc_samples, mutate=cfg.abc_mutate,
                                   ig_steps=cfg.ig_steps, seed=cfg.seed)
        abc = abc_summary(scores, preds == test.y[idx].numpy())
        seconds["abc"] = time.perf_counter() - start

        start = time.perf_counter()
        idx = _subset(len(test.y), cfg.stability_subset, cfg.seed + 2)
        stability = attribution_stability(model, test.x[idx], draws=cfg.stability_draws, stdev=cfg.stability_stdev,
                                          ig_steps=cfg.ig_steps, seed=cfg.seed)
        seconds["attribution_stability"] = time.perf_counter() - start
    finally:
        if hasattr(model, "set_noise_generator"):
            model.set_noise_generator(previous_gen)
    seconds["total"] = sum(seconds.values())
    return EvalReport(
        clean_val=clean_val,
        clean_test=clean_test,
        sweep=sweep,
        sweep_mean=sweep_mean,
        apgd=apgd,
        abc=abc,
        attribution_stability=stability,
        stochastic=is_stochastic(model),
        settings=dataclasses.asdict(cfg),
        seconds=seconds,
    )


def _mean_interval(sweep: dict[str, list[tuple[float, Estimate]]]) -> tuple[float, float]:
    """A conservative interval for the sweep mean: the mean of the points' interval ends."""
    lows = [e.low for pts in sweep.values() for _, e in pts]
    highs = [e.high for pts in sweep.values() for _, e in pts]
    return float(np.mean(lows)), float(np.mean(highs))
