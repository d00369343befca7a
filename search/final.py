"""The end of a search: the Pareto front on the search profile's numbers, the re-evaluation
of its members (and the deterministic baseline) with the final, full-strength profile as
Ray tasks, and the front recomputed from the final numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from tqdm import tqdm

from analysis import pareto_mask
from search.config import Objective, is_deterministic

__all__ = ["TrialRow", "FrontChange", "front_ids", "pick_baseline", "reevaluate", "front_change"]


@dataclass
class TrialRow:
    """One trial of a finished search, as the driver sees it."""

    trial_id: str
    status: str  # complete | pruned | failed
    config: dict[str, Any]
    metrics: dict[str, float]  # the search profile's numbers (the last result)
    checkpoint: Any = None  # ray.tune.Checkpoint of the final result
    run_id: str | None = None  # MLflow child run
    final: dict[str, float] = field(default_factory=dict)  # the final profile's numbers
    error: str | None = None

    @property
    def deterministic(self) -> bool:
        return is_deterministic(self.config)


def front_ids(rows: Sequence[TrialRow], objectives: Sequence[Objective], *, final: bool = False) -> list[str]:
    """Ids of the Pareto-optimal rows among `rows` (complete ones; NaN rows never qualify)."""
    rows = [r for r in rows if r.status == "complete" and (r.final if final else True)]
    if not rows:
        return []
    values = np.array([[(r.final if final else r.metrics).get(o.name, math.nan) for o in objectives] for r in rows])
    mask = pareto_mask(values, [o.mode for o in objectives])
    return [r.trial_id for r, on in zip(rows, mask) if on]


def pick_baseline(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The deterministic (sigma = 0) trial with the best clean accuracy, if the search ran one."""
    det = [r for r in rows if r.status == "complete" and r.deterministic]
    return max(det, key=lambda r: r.metrics.get("clean_accuracy", -1.0), default=None)


@ray.remote
def _evaluate_task(checkpoint, eval_cfg, threads: int) -> dict[str, Any]:
    from nsde.data import load
    from nsde.metrics import evaluate
    from nsde.train import load_checkpoint
    from search.trainable import MODEL_FILE, evaluation_metrics

    torch.set_num_threads(max(1, threads))
    with checkpoint.as_directory() as folder:
        data = load(json.loads((Path(folder) / "data.json").read_text())["path"])
        model = load_checkpoint(Path(folder) / MODEL_FILE)
    report = evaluate(model, data, eval_cfg)
    return {"metrics": evaluation_metrics(report), "report": report.to_dict()}


def reevaluate(rows: Sequence[TrialRow], eval_cfg, *, cpus: float, gpus: float) -> dict[str, dict[str, Any]]:
    """Evaluate each row's final checkpoint with `eval_cfg`, in parallel Ray tasks.

    Returns: trial id -> {"metrics": flat metrics, "report": EvalReport.to_dict()}.
    """
    task = _evaluate_task.options(num_cpus=cpus, num_gpus=gpus)
    pending = {task.remote(r.checkpoint, eval_cfg, int(max(1, cpus))): r.trial_id for r in rows}
    out: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(pending), desc="final evaluation", unit="model") as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            out[pending.pop(done[0])] = ray.get(done[0])
            bar.update()
    return out


@dataclass(frozen=True)
class FrontChange:
    """How the front moved between the search profile and the final profile."""

    search_front: tuple[str, ...]
    final_front: tuple[str, ...]
    kept: tuple[str, ...]  # on both fronts
    dropped: tuple[str, ...]  # on the search front only
    added: tuple[str, ...]  # on the final front only (e.g. the baseline)
    mean_shift: dict[str, float]  # objective -> mean(final - search) over the re-evaluated trials

    def summary(self) -> str:
        shifts = ", ".join(f"{k} {v:+.3f}" for k, v in self.mean_shift.items())
        return (f"{len(self.kept)} of {len(self.search_front)} search-front trials stay on the final front"
                f" (dropped: {list(self.dropped) or 'none'}, joined: {list(self.added) or 'none'});"
                f" mean final - search: {shifts}")


def front_change(rows: Sequence[TrialRow], objectives: Sequence[Objective]) -> FrontChange:
    search = front_ids(rows, objectives)
    final = front_ids(rows, objectives, final=True)
    evaluated = [r for r in rows if r.final]
    shift = {o.name: float(np.mean([r.final[o.name] - r.metrics[o.name] for r in evaluated])) if evaluated
             else math.nan for o in objectives}
    return FrontChange(
        search_front=tuple(search),
        final_front=tuple(final),
        kept=tuple(t for t in search if t in final),
        dropped=tuple(t for t in search if t not in final),
        added=tuple(t for t in final if t not in search),
        mean_shift=shift,
    )
