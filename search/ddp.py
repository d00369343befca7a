"""Multi-GPU trials: a Tune trial that trains with Ray Train's TorchTrainer (DDP) and then
evaluates once.

`--gpus-per-trial N` with N > 1 runs each trial's training on N workers (one GPU each; on
CPU, `--ddp-workers N` with gloo, as the tests do). Ray Train sets up torch.distributed and
`nsde.train.train` shards every batch over the ranks. Only rank 0 writes checkpoints; every
rank reports each epoch (Ray Train needs all of them), and `TuneReportCallback` forwards
rank 0's metrics to the Tune trial, so per-epoch results still reach Tune and MLflow. The
evaluation runs once per trial, on rank 0's final checkpoint, in a Ray task that reserves the
GPU it uses (the trial process holds none).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import train as ray_train
from ray import tune
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from nsde.data import load
from nsde.metrics import EvalConfig
from nsde.train import CHECKPOINT, EpochMetrics, train
from nsde.train.convergence import convergence_metrics
from record import EVALUATED
from search.config import trial_configs
from search.evaluate import evaluate_checkpoint
from search.trainable import epoch_result, replay_if_finished, report_final, restart_metrics, restore_checkpoint

__all__ = ["ddp_trainable"]


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One DDP rank: train, report every epoch (rank 0 attaches the checkpoint)."""
    torch.set_num_threads(max(1, loop_config["threads"]))
    data = load(loop_config["data_path"])
    model_cfg, train_cfg = trial_configs(loop_config["config"], num_classes=len(data.class_names))
    rank = ray_train.get_context().get_world_rank()
    work = Path(tempfile.mkdtemp(prefix=f"nsde-ddp-{rank}-"))
    resume = restore_checkpoint(work, ray_train.get_checkpoint())

    def report(m: EpochMetrics, ckpt_path: Path | None) -> None:
        metrics = epoch_result(m)
        checkpoint = ray_train.Checkpoint.from_directory(str(ckpt_path.parent)) if ckpt_path else None
        ray_train.report(metrics, checkpoint=checkpoint)

    train(model_cfg, data, train_cfg, callback=report, checkpoint_dir=work, resume_from=resume, progress=False)


def _checkpoint_metrics(checkpoint) -> dict[str, float]:
    """The convergence diagnostics of every epoch's validation accuracy, from the last checkpoint's
    history (which a retried trial's metrics, reported only after its restart, would not all
    hold), and `restarted_from_scratch` when rank 0 found its checkpoint unreadable."""
    with checkpoint.as_directory() as folder:
        history = torch.load(Path(folder) / CHECKPOINT, map_location="cpu", weights_only=False)["history"]
        restarted = restart_metrics(Path(folder))
    return {**convergence_metrics([h["val_accuracy"] for h in history]), **restarted}


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
    replay = Path(tempfile.mkdtemp(prefix="nsde-ddp-replay-"))
    try:
        restore_checkpoint(replay, tune.get_checkpoint())
        if replay_if_finished(replay):  # a finished DDP trial restarted by a --resume
            return
    finally:
        shutil.rmtree(replay, ignore_errors=True)
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
    # Once per trial, in a task that reserves the device it evaluates on (the trial process
    # itself holds no GPU; the workers have released theirs).
    # "DEFAULT": schedule outside the trial's placement group (as the Train workers are).
    task = evaluate_checkpoint.options(num_cpus=threads, num_gpus=1 if use_gpu else 0, scheduling_strategy="DEFAULT")
    out = ray.get(task.remote(result.checkpoint, data_path, config, eval_cfg, threads=threads, outputs=True))
    work = Path(tempfile.mkdtemp(prefix="nsde-ddp-eval-"))
    try:
        for name, content in out["files"].items():
            (work / name).write_bytes(content)
        last = {k: v for k, v in result.metrics.items() if k != "checkpoint_path"}
        final = {**last, **out["metrics"], EVALUATED: True, "train_seconds": train_seconds, "ddp_workers": workers,
                 **_checkpoint_metrics(result.checkpoint)}
        report_final(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
