"""`evaluate(model, data, cfg, split="val" | "test") -> EvalReport`: every objective, with n and intervals.

One call scores one split: a search selects on `split="val"` and touches `split="test"`
once, for what it selected. `evaluate` runs the registered stages (`nsde.metrics.stages`:
clean accuracy on the whole split; the noise sweep, the SNR sweep, APGD and its sanity
checks, ABC and attribution stability on seeded subsets of it) that the config enables.
The subsets depend only on the split's size and the seed, so two models evaluated with the
same settings are scored on the same examples and can be compared pairwise (`per_example`
holds each model's per-example outcomes, and `analysis.compare` pairs them). Every
prediction is the model's own evaluation-mode prediction (`predict_labels`: one pass, the
Monte-Carlo mean, or the majority vote).

The names the rest of the platform imported from here (the config, the report, the
objectives) are re-exported.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch

from nsde.data import SpectrogramData
from nsde.metrics.config import EVAL_PROFILES, PROFILE_RULE, SPLITS, EvalConfig, eval_config
from nsde.metrics.objectives import (
    FARTHEST,
    KIND_SEPARATOR,
    LOCATION_PREFIX,
    OBJECTIVE_METRICS,
    OBJECTIVES,
    STUDY_METRICS,
    has_samples,
    objective_samples,
)
from nsde.metrics.report import EvalReport, seed_estimates
from nsde.metrics.robustness import is_stochastic
from nsde.metrics.stages import Evaluation, stages
from nsde.metrics.stats import NAN_ESTIMATE

__all__ = [
    "EVAL_PROFILES",
    "FARTHEST",
    "KIND_SEPARATOR",
    "LOCATION_PREFIX",
    "OBJECTIVES",
    "OBJECTIVE_METRICS",
    "PROFILE_RULE",
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


def evaluate(model: torch.nn.Module, data: SpectrogramData, cfg: EvalConfig | None = None, *,
             split: str = "val") -> EvalReport:
    """Run every stage `cfg` enables on `model` (which stays in eval mode) and `data`'s `split`
    ("val" or "test")."""
    cfg = cfg or EvalConfig()
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, but got {split!r}")
    model.eval()
    with _seeded_noise(model, cfg.seed + 17):
        ev = Evaluation.of(model, data, cfg, split)
        for stage in stages():
            if stage.enabled(cfg):
                ev.run(stage)
    return _report(ev)


@contextlib.contextmanager
def _seeded_noise(model: torch.nn.Module, seed: int) -> Iterator[None]:
    """The injected noise draws from a generator of its own, seeded here: reproducible, and
    immune to torchattacks' torch.manual_seed calls; the model's own is put back after."""
    if not hasattr(model, "set_noise_generator"):
        yield
        return
    previous = getattr(model, "generator", None)
    model.set_noise_generator(torch.Generator(device=next(model.parameters()).device).manual_seed(seed))
    try:
        yield
    finally:
        model.set_noise_generator(previous)


def _report(ev: Evaluation) -> EvalReport:
    """The report of a finished evaluation: its stages' summaries, per-example values and seconds."""
    f = ev.fields
    seconds = {**ev.seconds, "total": sum(ev.seconds.values())}
    return EvalReport(split=ev.split, clean=f.get("clean", NAN_ESTIMATE), sweep=f.get("sweep", {}),
                      apgd=f.get("apgd", {}), abc=f.get("abc", {}),
                      attribution_stability=f.get("attribution_stability", NAN_ESTIMATE), checks=f.get("checks", {}),
                      per_example=ev.per_example, stochastic=is_stochastic(ev.model),
                      settings=dataclasses.asdict(ev.cfg), seconds=seconds, snr=f.get("snr", []),
                      per_location=f.get("per_location", {}), smoothing=f.get("smoothing", {}))
