"""The stages of `evaluate`: each metric's work on one split, and the scaffolding they share.

A stage scores the model on its examples (the whole split, or a seeded subset whose size an
`EvalConfig` field sets), and `Evaluation.run` does the rest the same way for every stage:
it picks the examples, times the stage (`EvalReport.seconds`) and files the per-example
values the stage returns under the stage's name (`EvalReport.per_example[name]`, with
"index": the examples' indices in the data set), which is where the objectives read them
(`nsde.metrics.objectives`). What a stage summarises for the report (its `clean`, `sweep`,
`apgd`, ... fields) goes to `Evaluation.fields`.

The stages run in registration order, each only when the config enables it:

    clean          clean accuracy on the whole split (and each example's sensor location)
    per_location   clean accuracy per location, from clean's per-example values
    sweep          accuracy under image-domain input noise (sweep_subset)
    snr            accuracy with noise in the waveform before the STFT (the sweep's examples)
    apgd           APGD-CE L2 robust accuracy (attack_subset)
    checks         the attack's adaptive sanity checks (the attacked examples)
    abc            attribution-based confidence (abc_subset)
    stability      attribution stability under small input noise (stability_subset)
    smoothing      randomized smoothing certification (smoothing_subset; when smoothing_sigma > 0)

A new objective that needs new per-example values adds one stage (`register_stage`) and one
spec; docs/extending.md walks through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nsde.data import SpectrogramData
from nsde.data.snr import snr_spectrograms
from nsde.metrics.explain import abc_scores, abc_summary, attribution_stability
from nsde.metrics.robustness import (
    AttackResult,
    adaptive_checks,
    apgd_attack,
    correct_predictions,
    sweep_area,
    sweep_correct,
)
from nsde.metrics.smoothing import certified_accuracy, certify
from nsde.metrics.stats import proportion
from nsde.registry import Registry

__all__ = ["Evaluation", "Stage", "get_stage", "list_stages", "register_stage", "stages", "unregister_stage"]

Columns = dict[str, list]


def _always(cfg: Any) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage of `evaluate`.

    Attributes:
        name: its key in `EvalReport.per_example` (and in `seconds`, unless `timer`).
        run: (evaluation, example positions in the split) -> per-example columns of those
            examples, or None for a stage that only summarises.
        subset: the `EvalConfig` field that sizes its seeded subset; None: the whole split.
        salt: its subset's seed is `cfg.seed + salt` (stages with equal subset and salt share
            their examples).
        enabled: whether a config asks for it.
        timer: its key in `EvalReport.seconds`, if not `name` (the stages of one timer add up).
    """

    name: str
    run: Callable[[Evaluation, np.ndarray], Columns | None]
    subset: str | None = None
    salt: int = 0
    enabled: Callable[[Any], bool] = _always
    timer: str = ""


@dataclass
class Evaluation:
    """One evaluation in progress: the model, the split's examples and what the stages wrote.

    Attributes:
        x, y: the split's inputs and labels; where: their indices in the data set.
        per_example, seconds: what `EvalReport` keeps of every stage.
        fields: the report's summaries, by `EvalReport` field name (`clean`, `sweep`, ...).
        scratch: what a later stage reads of an earlier one (the attack, for its checks).
    """

    model: torch.nn.Module
    data: SpectrogramData
    split: str
    cfg: Any  # nsde.metrics.EvalConfig
    x: torch.Tensor
    y: torch.Tensor
    where: np.ndarray
    per_example: dict[str, Columns] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, model: torch.nn.Module, data: SpectrogramData, cfg: Any, split: str) -> Evaluation:
        part = data.split(split)
        return cls(model, data, split, cfg, part.x, part.y, np.asarray(data.indices(split)))

    def positions(self, stage: Stage) -> np.ndarray:
        """The stage's examples as positions in the split: all, or its seeded subset."""
        size = 0 if stage.subset is None else int(getattr(self.cfg, stage.subset))
        n = len(self.y)
        if size == 0 or size >= n:
            return np.arange(n)
        return np.sort(np.random.default_rng([self.cfg.seed + stage.salt, 7]).choice(n, size=size, replace=False))

    def run(self, stage: Stage) -> None:
        """Run `stage` on its examples, timed, and file its per-example values."""
        start = time.perf_counter()
        idx = self.positions(stage)
        columns = stage.run(self, idx)
        if columns is not None:
            self.per_example[stage.name] = {"index": self.where[idx].tolist(), **columns}
        key = stage.timer or stage.name  # stages that share a timer add up
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start


_STAGES: Registry[Stage] = Registry("stage")


def register_stage(stage: Stage) -> Stage:
    """Add `stage` after the registered ones (it may read what they wrote); returns it."""
    return _STAGES.add(stage.name, stage)


def unregister_stage(name: str) -> None:
    """Remove a registered stage (a test's, or one a plugin replaces)."""
    _STAGES.remove(name)


def get_stage(name: str) -> Stage:
    return _STAGES.get(name)


def list_stages() -> list[str]:
    """The registered stages' names, in the order `evaluate` runs them."""
    return _STAGES.names()


def stages() -> list[Stage]:
    return _STAGES.items()


# --------------------------------------------------------------------- the stages


def _clean(ev: Evaluation, idx: np.ndarray) -> Columns:
    # the whole split (idx is every position): the split's tensors as they are, not a copy
    correct = correct_predictions(ev.model, ev.x, ev.y, ev.cfg.batch_size, seed=ev.cfg.seed + 5)
    ev.fields["clean"] = proportion(correct)
    return {"correct": correct.tolist(), "location": _location_names(ev.data, ev.where)}


def _location_names(data: SpectrogramData, where: np.ndarray) -> list[str]:
    """Each example's sensor location name ("" when unknown)."""
    names = data.location_names
    return [names[i] if 0 <= i < len(names) else "" for i in np.asarray(data.location)[where].tolist()]


def _per_location(ev: Evaluation, idx: np.ndarray) -> None:
    """Clean accuracy per sensor location, in the data set's order of locations (unknown ones,
    "", left out), from each example's location as the clean stage recorded it."""
    part = ev.per_example["clean"]
    locations, correct = np.asarray(part["location"]), np.asarray(part["correct"], dtype=bool)
    ev.fields["per_location"] = {n: proportion(correct[locations == n]) for n in ev.data.location_names
                                 if (locations == n).any()}


def _clean_of(ev: Evaluation, idx: np.ndarray) -> Columns:
    """The clean stage's per-example correctness of the examples `idx` (positions in the split),
    and chance accuracy (1 / classes) for each: the columns a retention is computed from."""
    return {"clean": np.asarray(ev.per_example["clean"]["correct"], dtype=bool)[idx].tolist(),
            "chance": [1.0 / len(ev.data.class_names)] * len(idx)}


def _sweep(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    ok = sweep_correct(ev.model, ev.x[idx], ev.y[idx], kinds=cfg.sweep_kinds, intensities=cfg.sweep_intensities,
                       hurst=cfg.sweep_hurst, seed=cfg.seed, batch_size=cfg.batch_size)
    ev.fields["sweep"] = {kind: [(float(i), proportion(row)) for i, row in zip(cfg.sweep_intensities, rows)]
                          for kind, rows in ok.items()}
    keep = [i for i, level in enumerate(cfg.sweep_intensities) if level <= cfg.sweep_area_max]
    levels = [cfg.sweep_intensities[i] for i in keep]
    areas = {kind: sweep_area(levels, rows[keep]) for kind, rows in ok.items()}
    return {"area": np.mean(list(areas.values()), axis=0).tolist(), **_clean_of(ev, idx),
            **{f"area_{kind}": a.tolist() for kind, a in areas.items()}}


def _snr(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    rows = []  # (len(snr_levels), n): correctness on the split's rows idx re-made at each SNR
    for k, level in enumerate(cfg.snr_levels):
        x = torch.from_numpy(np.asarray(snr_spectrograms(ev.data, ev.split, level)[idx], dtype=np.float32))
        rows.append(correct_predictions(ev.model, x, ev.y[idx], cfg.batch_size, seed=cfg.seed * 1000 + 500 + k))
    ok = np.stack(rows)
    ev.fields["snr"] = [(float(level), proportion(row)) for level, row in zip(cfg.snr_levels, ok)]
    return {"area": sweep_area(cfg.snr_levels, ok).tolist(), **_clean_of(ev, idx),
            **{f"correct_{level:g}": row.tolist() for level, row in zip(cfg.snr_levels, ok)}}


def _apgd(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    attack = apgd_attack(ev.model, ev.x[idx], ev.y[idx], eps=cfg.apgd_eps, steps=cfg.apgd_steps,
                         eot_iter=cfg.eot_iter, seed=cfg.seed, batch_size=cfg.batch_size)
    ev.fields["apgd"] = attack.estimates()
    ev.scratch["attack"] = attack
    # "clean": the attack's own verdict at x (its evaluation-mode prediction, as it judges the attack)
    return {"robust_mean": attack.robust.mean(0).tolist(), "clean": attack.clean.tolist(),
            "chance": [1.0 / len(ev.data.class_names)] * len(idx),
            **{f"robust_{e:g}": row.tolist() for e, row in zip(attack.eps, attack.robust)}}


def _checks(ev: Evaluation, idx: np.ndarray) -> None:
    cfg, device = ev.cfg, next(ev.model.parameters()).device
    num_classes = int(ev.model(ev.x[:1].to(device)).shape[-1])
    whitebox: AttackResult = ev.scratch["attack"]
    if 0 < cfg.checks_subset < len(idx):  # a seeded subset of the attacked examples, and their white-box outcome
        keep = np.sort(np.random.default_rng([cfg.seed + 5, 7]).choice(len(idx), size=cfg.checks_subset,
                                                                        replace=False))
        idx, whitebox = idx[keep], AttackResult(whitebox.eps, whitebox.clean[keep], whitebox.robust[:, keep])
    ev.fields["checks"] = adaptive_checks(
        ev.model, ev.x[idx], ev.y[idx], whitebox, num_classes=num_classes, small_eps=cfg.check_small_eps,
        large_rms=cfg.check_large_rms, steps=cfg.apgd_steps, eot_iter=cfg.eot_iter, eot_factor=cfg.check_eot_factor,
        seed=cfg.seed, batch_size=cfg.batch_size)


def _abc(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    scores, preds = abc_scores(ev.model, ev.x[idx], samples=cfg.abc_samples, mutate=cfg.abc_mutate,
                               ig_steps=cfg.ig_steps, seed=cfg.seed)
    ok = preds == ev.y[idx].numpy()
    ev.fields["abc"] = abc_summary(scores, ok, resamples=cfg.resamples, seed=cfg.seed)
    return {"score": scores.tolist(), "correct": ok.tolist()}


def _stability(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    estimate, values = attribution_stability(ev.model, ev.x[idx], draws=cfg.stability_draws,
                                             stdev=cfg.stability_stdev, ig_steps=cfg.ig_steps, seed=cfg.seed)
    ev.fields["attribution_stability"] = estimate
    return {"value": np.asarray(values).tolist()}


def _smoothing(ev: Evaluation, idx: np.ndarray) -> Columns:
    cfg = ev.cfg
    cert = certify(ev.model, ev.x[idx], ev.y[idx], sigma=cfg.smoothing_sigma, n0=cfg.smoothing_n0, n=cfg.smoothing_n,
                   alpha=cfg.smoothing_alpha, batch_size=cfg.batch_size, seed=cfg.seed + 11)
    ev.fields["smoothing"] = {r: proportion(cert.certified(r)) for r in certified_accuracy(cert, cfg.smoothing_radii)}
    return {"certified": cert.certified(cfg.smoothing_radius).tolist(), "radius": cert.radius.tolist(),
            "prediction": cert.prediction.tolist(), "p_lower": cert.p_lower.tolist()}


for _stage in (
    Stage("clean", _clean),
    Stage("per_location", _per_location, timer="clean"),  # counted in clean's seconds
    Stage("sweep", _sweep, subset="sweep_subset", salt=3),
    Stage("snr", _snr, subset="sweep_subset", salt=3, enabled=lambda cfg: bool(cfg.snr_levels)),
    Stage("apgd", _apgd, subset="attack_subset"),
    Stage("checks", _checks, subset="attack_subset", enabled=lambda cfg: cfg.checks),
    Stage("abc", _abc, subset="abc_subset", salt=1),
    Stage("stability", _stability, subset="stability_subset", salt=2, timer="attribution_stability"),
    Stage("smoothing", _smoothing, subset="smoothing_subset", salt=4, enabled=lambda cfg: cfg.smoothing_sigma > 0),
):
    register_stage(_stage)
