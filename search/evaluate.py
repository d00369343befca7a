"""The one Ray task that evaluates a trial's checkpoint: the evaluation of a DDP trial, the
final profile's re-evaluation of the front (validation) and the held-out test scores (with
retrained replicates for more training seeds)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import torch
from tqdm import tqdm

from nsde.data import load
from nsde.metrics import evaluate
from nsde.train import CHECKPOINT, load_checkpoint, train
from record import MODEL_FILE, OBJECTIVE_SPLIT, SEED_KEY
from search.config import trial_configs
from search.trainable import evaluation_metrics, write_outputs

__all__ = ["evaluate_checkpoint", "run_tasks"]


@ray.remote
def evaluate_checkpoint(checkpoint, data_path: str, config: dict[str, Any], eval_cfg, *, threads: int,
                        split: str = OBJECTIVE_SPLIT, seed: int | None = None, outputs: bool = False
                        ) -> dict[str, Any]:
    """Evaluate the model of a trial's `checkpoint` on `split` of the data at `data_path`.

    The model is the checkpoint's `model.pt` (a finished trial) or its training checkpoint
    (a DDP trial's rank 0); with `seed`, the trial's `config` retrained with that training seed
    instead (a replicate for the held-out numbers). With `outputs`, the trial's output files
    (`search.trainable.write_outputs`) come back too, as bytes.

    Returns: {"metrics": flat metrics, "report": EvalReport.to_dict(), "files": {name: bytes}}.
    """
    torch.set_num_threads(max(1, threads))
    data = load(data_path)
    model_cfg, train_cfg = trial_configs({**config, **({SEED_KEY: seed} if seed is not None else {})},
                                         num_classes=len(data.class_names))
    if seed is not None:
        model = train(model_cfg, data, train_cfg, progress=False).model
    else:
        with checkpoint.as_directory() as folder:
            weights = Path(folder) / MODEL_FILE
            model = load_checkpoint(weights if weights.exists() else Path(folder) / CHECKPOINT)
    report = evaluate(model, data, eval_cfg, split=split)
    out = {"metrics": evaluation_metrics(report), "report": report.to_dict(), "files": {}}
    if outputs:
        with tempfile.TemporaryDirectory() as tmp:
            write_outputs(Path(tmp), model, model_cfg, report, data)
            out["files"] = {p.name: p.read_bytes() for p in Path(tmp).iterdir()}
    return out


def run_tasks(jobs: dict[Any, Any], desc: str, on_result: Callable[[Any, dict[str, Any]], None] | None = None
              ) -> dict[Any, dict[str, Any]]:
    """Wait for Ray tasks (key -> object ref) with a progress bar; returns key -> result.
    `on_result(key, result)` runs as each task ends (to keep its result before the others end)."""
    out: dict[Any, dict[str, Any]] = {}
    pending = {ref: key for key, ref in jobs.items()}
    with tqdm(total=len(pending), desc=desc, unit="model") as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            out[key] = ray.get(done[0])
            if on_result is not None:
                on_result(key, out[key])
            bar.update()
    return out
