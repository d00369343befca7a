"""Multi-GPU trials: a Tune trial that trains with Ray Train's TorchTrainer (DDP) and then
evaluates once.

`--gpus-per-trial N` with N > 1 runs each trial's training on N workers (one GPU each; on
CPU, `--ddp-workers N` with gloo, as the tests do). Ray Train sets up torch.distributed and
`nsde.train.train` shards every batch over the ranks. Only rank 0 writes checkpoints; every
rank reports each epoch (Ray Train needs all of them), and `TuneReportCallback` forwards
rank 0's metrics to the Tune trial, so per-epoch results still reach Tune and MLflow. The
evaluation runs once, in the trial's own process, on rank 0's final checkpoint.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from ray import train as ray_train
from ray import tune
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from nsde.data import load
from nsde.metrics import EvalConfig, evaluate
from nsde.train import CHECKPOINT, EpochMetrics, load_checkpoint, train
from search.config import METRICS, trial_configs
from search.trainable import EVALUATED, _write_outputs, evaluation_metrics

__all__ = ["ddp_trainable"]

_NAN = {name: math.nan for name in METRICS if name != "val_accuracy"}


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One DDP rank: train, report every epoch (rank 0 attaches the checkpoint)."""
    torch.set_num_threads(max(1, loop_config["threads"]))
    model_cfg, train_cfg = trial_configs(loop_config["config"])
    data = load(loop_config["data_path"])
    rank = ray_train.get_context().get_world_rank()
    work = Path(tempfile.mkdtemp(prefix=f"nsde-ddp-{rank}-"))
    resume = None
    ckpt = ray_train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            shutil.copy2(Path(folder) / CHECKPOINT, work / CHECKPOINT)
        resume = work / CHECKPOINT

    def report(m: EpochMetrics, ckpt_path: Path | None) -> None:
        metrics = {**asdict(m), **_NAN, EVALUATED: False}
        checkpoint = ray_train.Checkpoint.from_directory(str(ckpt_path.parent)) if ckpt_path else None
        ray_train.report(metrics, checkpoint=checkpoint)

    train(model_cfg, data, train_cfg, callback=report, checkpoint_dir=work, resume_from=resume, progress=False)


def ddp_trainable(*, workers: int, use_gpu: bool, storage_path: str):
    """A Tune function trainable (named like `run_trial`, with its signature) for DDP trials."""

    def run_ddp_trial(config: dict[str, Any], *, data_path: str, eval_cfg: EvalConfig, threads: int) -> None:
        _run_ddp_trial(config, data_path=data_path, eval_cfg=eval_cfg, threads=threads, workers=workers,
                       use_gpu=use_gpu, storage_path=storage_path)

    return run_ddp_trial


def _run_ddp_trial(config: dict[str, Any], *, data_path: str, eval_cfg: EvalConfig, threads: int, workers: int,
                   use_gpu: bool, storage_path: str) -> None:
    """DDP training over `workers` Ray Train workers, then one evaluation, reported to Tune."""
    torch.set_num_threads(max(1, threads))
    trial = tune.get_context()
    start = time.perf_counter()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config, "data_path": data_path, "threads": threads},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": threads}),
        run_config=RunConfig(name=f"ddp-{trial.get_trial_id()}", storage_path=storage_path,
                             callbacks=[TuneReportCallback()]),
    )
    result = trainer.fit()
    train_seconds = time.perf_counter() - start
    data = load(data_path)
    model_cfg, _ = trial_configs(config)
    work = Path(tempfile.mkdtemp(prefix="nsde-ddp-eval-"))
    try:
        with result.checkpoint.as_directory() as folder:
            shutil.copy2(Path(folder) / CHECKPOINT, work / CHECKPOINT)
        model = load_checkpoint(work / CHECKPOINT)
        report = evaluate(model, data, eval_cfg)  # once per trial, not once per worker
        _write_outputs(work, model, model_cfg, report, data)
        final = {**result.metrics, **evaluation_metrics(report), EVALUATED: True, "train_seconds": train_seconds,
                 "ddp_workers": workers}
        final = {k: v for k, v in final.items() if k != "checkpoint_path"}
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
