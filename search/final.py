"""The end of a search: the Pareto front on the search profile's numbers, the re-evaluation
of its members (and the deterministic baseline) with the final, full-strength profile as
Ray tasks, the front recomputed from the final numbers (all on the validation split), and
then, once, the held-out test scores of the final front and the baseline (`held_out`), over
one or more training seeds.
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
from search.config import OBJECTIVE_SPLIT, TEST_PREFIX, Objective, is_deterministic, trial_configs
from search.trainable import CHECKS_PASSED

__all__ = ["FrontChange", "TrialRow", "flagged", "front_change", "front_ids", "held_out", "pick_baseline", "reevaluate",
           "replicate_seeds"]


@dataclass
class TrialRow:
    """One trial of a finished search, as the driver sees it."""

    trial_id: str
    status: str  # complete | pruned | failed
    config: dict[str, Any]
    metrics: dict[str, float]  # the search profile's numbers (the last result)
    checkpoint: Any = None  # ray.tune.Checkpoint of the final result
    run_id: str | None = None  # MLflow child run
    final: dict[str, float] = field(default_factory=dict)  # the final profile's numbers (validation)
    test: dict[str, float] = field(default_factory=dict)  # held-out numbers (`test_` keys), final front + baseline
    error: str | None = None

    @property
    def deterministic(self) -> bool:
        return is_deterministic(self.config)


def flagged(values: dict[str, float]) -> bool:
    """An evaluation whose attack failed a sanity check (its robustness number is suspect)."""
    return values.get(CHECKS_PASSED, 1.0) == 0.0


def front_ids(rows: Sequence[TrialRow], objectives: Sequence[Objective], *, final: bool = False,
              keep_flagged: bool = False) -> list[str]:
    """Ids of the Pareto-optimal rows among `rows` (complete ones; NaN rows never qualify; rows
    whose attack failed a sanity check only with `keep_flagged`)."""
    rows = [r for r in rows if r.status == "complete" and (r.final if final else True)
            and (keep_flagged or not flagged(r.final if final else r.metrics))]
    if not rows:
        return []
    values = np.array([[(r.final if final else r.metrics).get(o.name, math.nan) for o in objectives] for r in rows])
    mask = pareto_mask(values, [o.mode for o in objectives])
    return [r.trial_id for r, on in zip(rows, mask) if on]


def pick_baseline(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The deterministic (sigma = 0) trial with the best validation accuracy, if the search ran one."""
    det = [r for r in rows if r.status == "complete" and r.deterministic]
    return max(det, key=lambda r: r.metrics.get("clean_accuracy", -1.0), default=None)


@ray.remote
def _evaluate_task(checkpoint, eval_cfg, threads: int, split: str = OBJECTIVE_SPLIT,
                   config: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
    """Evaluate a trial's model on `split`; with `seed`, first retrain the trial's `config` with
    that training seed (a replicate for the held-out numbers) on the same data."""
    from nsde.data import load
    from nsde.metrics import evaluate
    from nsde.train import load_checkpoint, train
    from search.trainable import MODEL_FILE, evaluation_metrics

    torch.set_num_threads(max(1, threads))
    with checkpoint.as_directory() as folder:
        data = load(json.loads((Path(folder) / "data.json").read_text())["path"])
        model = None if seed is not None else load_checkpoint(Path(folder) / MODEL_FILE)
    if seed is not None:
        model_cfg, train_cfg = trial_configs({**config, "train/seed": seed}, num_classes=len(data.class_names))
        model = train(model_cfg, data, train_cfg, progress=False).model
    report = evaluate(model, data, eval_cfg, split=split)
    return {"metrics": evaluation_metrics(report), "report": report.to_dict()}


def _run_tasks(jobs: dict[Any, Any], desc: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    pending = {ref: key for key, ref in jobs.items()}
    with tqdm(total=len(pending), desc=desc, unit="model") as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            out[pending.pop(done[0])] = ray.get(done[0])
            bar.update()
    return out


def reevaluate(rows: Sequence[TrialRow], eval_cfg, *, cpus: float, gpus: float) -> dict[str, dict[str, Any]]:
    """Evaluate each row's final checkpoint with `eval_cfg` on the validation split, in parallel Ray tasks.

    Returns: trial id -> {"metrics": flat metrics, "report": EvalReport.to_dict()}.
    """
    task = _evaluate_task.options(num_cpus=cpus, num_gpus=gpus)
    return _run_tasks({r.trial_id: task.remote(r.checkpoint, eval_cfg, int(max(1, cpus))) for r in rows},
                      "final evaluation (val)")


def replicate_seeds(base: int, n: int) -> list[int]:
    """The training seeds of a row's n replicates: its own seed first, then base + 1000 k."""
    return [base] + [base + 1000 * k for k in range(1, n)]


def held_out(rows: Sequence[TrialRow], eval_cfg, *, seeds: int, cpus: float, gpus: float) -> dict[str, dict[str, Any]]:
    """The held-out numbers: each row scored on the test split with `eval_cfg`, once per seed
    (the trial's own model, plus `seeds - 1` retrained with other training seeds).

    Returns: trial id -> {"metrics": flat `test_` metrics (mean and interval over seeds, with
    `test_seeds`), "seeds": the training seeds, "reports": one EvalReport.to_dict() a seed}.
    """
    from nsde.metrics import EvalReport, seed_estimates
    from search.trainable import check_metrics

    task = _evaluate_task.options(num_cpus=cpus, num_gpus=gpus)
    threads = int(max(1, cpus))
    seed_lists = {r.trial_id: replicate_seeds(int(r.config.get("train/seed", 0)), seeds) for r in rows}
    jobs = {}
    for r in rows:
        for k, s in enumerate(seed_lists[r.trial_id]):
            jobs[(r.trial_id, k)] = task.remote(r.checkpoint, eval_cfg, threads, "test", r.config,
                                                None if k == 0 else s)
    results = _run_tasks(jobs, f"held-out test ({seeds} seed{'s' if seeds > 1 else ''})")
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        reports = [results[(r.trial_id, k)]["report"] for k in range(seeds)]
        if seeds == 1:
            flat = results[(r.trial_id, 0)]["metrics"]
        else:
            parsed = [EvalReport.from_dict(d) for d in reports]
            flat = {}
            for name, est in seed_estimates(parsed, resamples=eval_cfg.resamples, seed=eval_cfg.seed).items():
                flat.update({name: est.value, f"{name}_low": est.low, f"{name}_high": est.high, f"{name}_n": est.n})
            # a check counts as failed when it failed for any seed (nan: applies to none)
            per_seed = [check_metrics(p) for p in parsed]
            for key in per_seed[0]:
                verdicts = [m[key] for m in per_seed if not math.isnan(m[key])]
                flat[key] = min(verdicts) if verdicts else math.nan
        out[r.trial_id] = {"metrics": {**{f"{TEST_PREFIX}{k}": v for k, v in flat.items()},
                                       f"{TEST_PREFIX}seeds": float(seeds)},
                           "seeds": seed_lists[r.trial_id], "reports": reports}
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


def front_change(rows: Sequence[TrialRow], objectives: Sequence[Objective], *, keep_flagged: bool = False
                 ) -> FrontChange:
    search = front_ids(rows, objectives, keep_flagged=keep_flagged)
    final = front_ids(rows, objectives, final=True, keep_flagged=keep_flagged)
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
