"""The Ray Tune trainable: one trial = train (per-epoch reports + checkpoints), evaluate, report.

Every result a trial reports carries every objective key (Tune checks that the searcher's
metrics are present in each result); per-epoch results hold NaN there and
``evaluated = False``. Only the last result, after the evaluation, holds the objectives and
``evaluated = True``; `search.searcher.NSDEOptunaSearch` and `record.trial_status` rely on
that flag to keep trials stopped early by a scheduler out of the COMPLETE ones. The helpers
below the plain trainable serve the DDP trainable too (search.ddp).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from ray import tune

from nsde.data import load
from nsde.metrics import EvalConfig, attribution_figure, evaluate
from nsde.metrics.objectives import location_objective
from nsde.train import CHECKPOINT, EpochMetrics, load_checkpoint, read_checkpoint, train
from nsde.train.convergence import convergence_metrics
from record import (
    CHECKS_PASSED,
    DATA_FILE,
    EVALUATED,
    FIGURE_FILE,
    FINAL_FILE,
    METRICS,
    MODEL_FILE,
    OBJECTIVE_SPLIT,
    REPORT_FILE,
    RUNG_EPOCH,
    RUNG_PREFIX,
    estimate_metrics,
)
from search.config import trial_configs

__all__ = ["check_metrics", "epoch_result", "evaluation_metrics", "replay_if_finished", "report_final",
           "restore_checkpoint", "rung_result", "run_trial", "write_outputs"]



def run_trial(config: dict[str, Any], *, data_path: str, eval_cfg: EvalConfig, threads: int,
              rung_epochs: tuple[int, ...] = (), rung_cfg: EvalConfig | None = None) -> None:
    """Train and evaluate the trial `config` (flat keys) on the data set at `data_path`; at
    each of `rung_epochs` before its last epoch, also run the rung evaluation `rung_cfg`
    (`--scheduler moasha`)."""
    torch.set_num_threads(max(1, threads))
    logging.getLogger("ray").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    data = load(data_path)  # memory-mapped: every trial shares the driver's cache by reference
    model_cfg, train_cfg = trial_configs(config, num_classes=len(data.class_names))  # flat -> frozen, once
    work = Path(tempfile.mkdtemp(prefix="nsde-trial-"))
    try:
        resume = restore_checkpoint(work, tune.get_checkpoint())
        if replay_if_finished(work):
            return
        start = time.perf_counter()
        trained_here: set[int] = set()  # the epochs this process trains (the rest came with the checkpoint)

        def report_epoch(m: EpochMetrics, ckpt_path: Path | None) -> None:
            trained_here.add(m.epoch)
            if m.epoch == train_cfg.epochs:
                # The last epoch goes out with the evaluation: ASHA stops a trial whose result
                # reaches max_t, which would cut the evaluation off.
                return
            result = epoch_result(m)
            if m.epoch in rung_epochs and rung_cfg is not None:
                result.update(rung_result(ckpt_path, data, rung_cfg, m.epoch))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(ckpt_path.parent)))

        result = train(model_cfg, data, train_cfg, callback=report_epoch, checkpoint_dir=work,
                       resume_from=resume, progress=False)
        # a resumed trial's training time includes the epochs before the stop (their own seconds)
        train_seconds = time.perf_counter() - start + sum(m.seconds for m in result.history
                                                          if m.epoch not in trained_here)
        report = evaluate(result.model, data, eval_cfg, split=OBJECTIVE_SPLIT)  # selection never sees test
        write_outputs(work, result.model, model_cfg, report, data)
        final = {**result.history[-1].flat(), **evaluation_metrics(report), EVALUATED: True,
                 "train_seconds": train_seconds, **convergence_metrics([m.val_accuracy for m in result.history]),
                 **restart_metrics(work)}
        report_final(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


RESTARTED_FILE = "restarted_from_scratch.txt"  # in the trial's folder: its checkpoint could not be read


def restart_metrics(work: Path) -> dict[str, float]:
    """`restarted_from_scratch` 1.0 for a trial whose checkpoint could not be read on a retry or a
    --resume (so the MLflow run says it trained again), else nothing."""
    return {"restarted_from_scratch": 1.0} if (work / RESTARTED_FILE).exists() else {}


def epoch_result(m: EpochMetrics) -> dict[str, Any]:
    """A per-epoch result: the epoch's numbers, every other metric's key NaN (the registered
    objectives at the time of the result), not evaluated."""
    epoch = m.flat()
    return {**epoch, **{name: math.nan for name in METRICS if name not in epoch}, EVALUATED: False}


def rung_result(ckpt_path: Path, data, rung_cfg: EvalConfig, epoch: int) -> dict[str, float]:
    """The rung evaluation of the model saved at `ckpt_path` (validation split): `rung_epoch`,
    each objective as `rung_<name>` and its cost `rung_seconds`. It runs on a copy of the model
    and under a forked RNG, so training goes on exactly as it would without it."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        report = evaluate(load_checkpoint(ckpt_path), data, rung_cfg, split=OBJECTIVE_SPLIT)
    values = {f"{RUNG_PREFIX}{name}": est.value for name, est in report.objective_estimates().items()}
    return {RUNG_EPOCH: float(epoch), **values, f"{RUNG_PREFIX}seconds": time.perf_counter() - start}


def evaluation_metrics(report) -> dict[str, float]:
    """The flat metrics of an `EvalReport`: every objective with its interval and sample size,
    the sanity checks of the attack (1 passed, 0 failed, nan not applicable), costs."""
    out: dict[str, float] = {}
    for name, est in report.objective_estimates().items():
        out.update(estimate_metrics(name, est))
    out.update(check_metrics(report))
    out.update({location_objective(name): est.value for name, est in report.per_location.items()})
    out.update({f"eval_seconds_{k}": v for k, v in report.seconds.items()})
    return out


def check_metrics(report) -> dict[str, float]:
    """The attack's sanity checks of an `EvalReport` as metrics: `check_<name>` and
    `checks_passed`, 1.0 passed, 0.0 failed, nan not applicable."""
    out = {f"check_{name}": math.nan if c.get("passed") is None else float(c["passed"])
           for name, c in report.checks.items()}
    passed = report.checks_passed
    out[CHECKS_PASSED] = math.nan if passed is None else float(passed)
    return out


def report_final(work: Path, final: dict[str, Any]) -> None:
    """The trial's last report; `final.json` in its checkpoint lets a replay repeat it."""
    (work / FINAL_FILE).write_text(json.dumps(final))
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(work)))


def replay_if_finished(work: Path) -> bool:
    """A trial that had finished, restarted by a --resume whose experiment snapshot predates its
    end: report its stored final result again instead of training and evaluating again."""
    if not (work / FINAL_FILE).exists():
        return False
    final = {**json.loads((work / FINAL_FILE).read_text()), "replayed": 1.0}  # a number: records keep numbers, not flags
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(work)))
    return True


def restore_checkpoint(work: Path, ckpt) -> Path | None:
    """After a retry (a lost node, a crash) or a --resume, continue from the trial's last
    checkpoint `ckpt` (Tune's or Ray Train's; None: a fresh start): copied into `work`."""
    if ckpt is None:
        return None
    with ckpt.as_directory() as folder:
        shutil.copytree(folder, work, dirs_exist_ok=True)
    path = work / CHECKPOINT
    if not path.exists():
        return None
    try:
        read_checkpoint(path)
    except ValueError as err:  # reported, never silent: the trial trains again from epoch 1
        print(f"trial checkpoint unreadable, the trial restarts from scratch: {err}", file=sys.stderr, flush=True)
        path.unlink()
        (work / RESTARTED_FILE).write_text(str(err))
        return None
    return path


def write_outputs(work: Path, model, model_cfg, report, data) -> None:
    """The trial's files in its checkpoint: weights, report, attribution figure, data reference."""
    torch.save({"model_config": asdict(model_cfg), "model": model.state_dict()}, work / MODEL_FILE)
    (work / REPORT_FILE).write_text(report.to_json())
    val = data.split(OBJECTIVE_SPLIT)
    # one example of each of the first four classes, as the study's Figure 4
    picks = torch.tensor([int((val.y == c).nonzero()[0]) for c in val.y.unique()[:4]])
    attribution_figure({"model": model}, val.x[picks].float(), work / FIGURE_FILE, ig_steps=16, nt_samples=4)
    (work / DATA_FILE).write_text(json.dumps({"path": str(data.path), "config": data.meta["config"]}))
