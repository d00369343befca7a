"""The end of a search: the Pareto front on the search profile's numbers, the re-evaluation
of its members (and the deterministic baseline) with the final, full-strength profile as
Ray tasks, the front recomputed from the final numbers (all on the validation split), and
then, once, the held-out test scores of the final front and the baseline (`held_out`), over
one or more training seeds.

The fronts and the baseline are `analysis.Search`'s, over the same trial records the
analysis reads later: one rule for both.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis import Search, baseline_id
from record import (
    COMPLETE,
    FINAL_EVAL_SECONDS,
    FINAL_REPORTS,
    METRICS,
    SEED_KEY,
    TEST_EVAL_SECONDS,
    TEST_PREFIX,
    TEST_REPORTS,
    Objective,
    TrialRecord,
    estimate_metrics,
)
from search.evaluate import evaluate_checkpoint, run_tasks
from search.settings import SearchContext
from search.tracking import log_final, log_held_out

__all__ = ["FrontChange", "as_search", "finish", "front_change", "front_ids", "held_out", "pick_baseline", "reevaluate",
           "replicate_seeds"]

logger = logging.getLogger(__name__)


def as_search(records: Sequence[TrialRecord], objectives: Sequence[Objective], *, name: str = "",
              keep_flagged: bool = False, constraints: Sequence[str] = (), space: dict | None = None) -> Search:
    """The records as an `analysis.Search` under the search's rules (`SearchContext.rules`: flagged
    trials on the fronts or not, the constraints, the space), whose fronts, baseline and tables
    the driver uses."""
    return Search.from_records(name, records, objectives, space=space or {},
                               settings={"keep_flagged": keep_flagged, "constraints": list(constraints)})


def front_ids(records: Sequence[TrialRecord], objectives: Sequence[Objective], *, final: bool = False,
              **rules) -> list[str]:
    """Ids of the Pareto-optimal records (complete ones; NaN values never qualify; flagged ones
    only with `keep_flagged`; infeasible ones never): `analysis.Search.front`."""
    return as_search(records, objectives, **rules).front(final=final)


def pick_baseline(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The deterministic (sigma = 0) trial with the best validation accuracy, if the search ran one
    (`analysis.baseline_id`)."""
    tid = baseline_id(as_search(records, (Objective("clean_accuracy", "max"),))) if records else None
    return next((r for r in records if r.trial_id == tid), None)


def reevaluate(ctx: SearchContext, records: Sequence[TrialRecord], *, cpus: float, gpus: float
               ) -> dict[str, dict[str, Any]]:
    """Each record's model scored with the final profile on the validation split, in parallel Ray tasks.

    Returns: trial id -> {"metrics": flat metrics, "report": EvalReport.to_dict()}.
    """
    task = evaluate_checkpoint.options(num_cpus=cpus, num_gpus=gpus)
    threads = int(max(1, cpus))
    return run_tasks({r.trial_id: task.remote(r.checkpoint, ctx.data_path, r.config, ctx.final_cfg, threads=threads)
                      for r in records}, "final evaluation (val)")


def replicate_seeds(base: int, n: int) -> list[int]:
    """The training seeds of a row's n replicates: its own seed first, then base + 1000 k."""
    return [base] + [base + 1000 * k for k in range(1, n)]


def held_out(ctx: SearchContext, records: Sequence[TrialRecord], *, seeds: int, cpus: float, gpus: float,
             on_record: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """The held-out numbers: each record scored on the test split with the final profile, once per
    seed (the trial's own model, plus `seeds - 1` retrained with other training seeds).

    Returns: trial id -> {"metrics": flat `test_` metrics (mean and interval over seeds, with
    `test_seeds`), "seeds": the training seeds, "reports": one EvalReport.to_dict() a seed}.
    `on_record(trial id, that entry)` runs as soon as a trial's seeds are all scored.
    """
    task = evaluate_checkpoint.options(num_cpus=cpus, num_gpus=gpus)
    threads = int(max(1, cpus))
    seed_lists = {r.trial_id: replicate_seeds(int(r.config.get(SEED_KEY, 0)), seeds) for r in records}
    jobs = {(r.trial_id, k): task.remote(r.checkpoint, ctx.data_path, r.config, ctx.final_cfg, threads=threads,
                                         split="test", seed=None if k == 0 else s)
            for r in records for k, s in enumerate(seed_lists[r.trial_id])}
    results: dict[tuple[str, int], dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}

    def collect(key: tuple[str, int], result: dict[str, Any]) -> None:
        results[key] = result
        tid = key[0]
        if any((tid, k) not in results for k in range(seeds)):
            return
        reports = [results[(tid, k)]["report"] for k in range(seeds)]
        flat = results[(tid, 0)]["metrics"] if seeds == 1 else _over_seeds(reports, ctx.final_cfg)
        out[tid] = {"metrics": _test_metrics(flat, seeds), "seeds": seed_lists[tid], "reports": reports}
        if on_record is not None:
            on_record(tid, out[tid])

    run_tasks(jobs, f"held-out test ({seeds} seed{'s' if seeds > 1 else ''})", on_result=collect)
    return out


def _test_metrics(flat: dict[str, float], seeds: int) -> dict[str, float]:
    """A trial's held-out metrics: the test split's numbers as `test_<metric>`, with `test_seeds`."""
    return {**{f"{TEST_PREFIX}{k}": v for k, v in flat.items()}, f"{TEST_PREFIX}seeds": float(seeds)}


def _over_seeds(reports: list[dict], eval_cfg) -> dict[str, float]:
    """Mean and interval over training seeds; a check counts as failed when it failed for any seed."""
    from nsde.metrics import EvalReport, seed_estimates
    from search.trainable import check_metrics

    parsed = [EvalReport.from_dict(d) for d in reports]
    flat: dict[str, float] = {}
    for name, est in seed_estimates(parsed, resamples=eval_cfg.resamples, seed=eval_cfg.seed).items():
        flat.update(estimate_metrics(name, est))
    per_seed = [check_metrics(p) for p in parsed]
    for key in per_seed[0]:
        verdicts = [m[key] for m in per_seed if not math.isnan(m[key])]  # nan: applies to none
        flat[key] = min(verdicts) if verdicts else math.nan
    return flat


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


def front_change(records: Sequence[TrialRecord], objectives: Sequence[Objective], **rules) -> FrontChange:
    search = front_ids(records, objectives, **rules)
    final = front_ids(records, objectives, final=True, **rules)
    evaluated = [r for r in records if r.final]
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


def finish(ctx: SearchContext, records: list[TrialRecord]) -> FrontChange | None:
    """Re-evaluate the front and the baseline with the final profile on validation, recompute the
    front, then score the final front and the baseline once on test (the space's training seeds).

    A designed space (`SearchSpace.designed`) selects nothing: every complete trial is scored
    once on test with the final profile (its seed is a point of the design), and there is no
    front change to return."""
    if ctx.space.designed:
        if ctx.settings.final:
            _score_design(ctx, [r for r in records if r.status == COMPLETE])
        return None
    front = front_ids(records, ctx.objectives, **ctx.rules())
    baseline = pick_baseline(records)
    chosen = front + ([baseline.trial_id] if baseline is not None and baseline.trial_id not in front else [])
    if not ctx.settings.final or not chosen:
        return None
    extra = " and the deterministic baseline" if len(chosen) > len(front) else ""
    logger.info("re-evaluating %d trials (the Pareto front%s) with the final profile on the validation split",
                len(chosen), extra)
    by_id = {r.trial_id: r for r in records}
    gpus = min(ctx.settings.gpus_per_trial, 1.0)  # one model fits one GPU
    with ctx.timed(FINAL_EVAL_SECONDS):
        results = reevaluate(ctx, [by_id[t] for t in chosen], cpus=task_cpus(ctx, len(chosen)), gpus=gpus)
    (ctx.exp_dir / FINAL_REPORTS).mkdir(exist_ok=True)  # analysis.load_tune reads them there
    for tid, res in results.items():
        r = by_id[tid]
        # metrics the evaluation does not produce (e.g. val_accuracy) keep their search values
        r.final = {**{k: r.metrics[k] for k in METRICS if k in r.metrics}, **res["metrics"]}
        log_final(ctx.client, r, res["report"], baseline=baseline is not None and tid == baseline.trial_id)
        (ctx.exp_dir / FINAL_REPORTS / f"{tid}.json").write_text(json.dumps(res["report"]))
    change = front_change(records, ctx.objectives, **ctx.rules())
    _score_held_out(ctx, [by_id[t] for t in change.final_front], baseline)
    return change


def _score_design(ctx: SearchContext, complete: list[TrialRecord]) -> None:
    """The test split, once, for every complete trial of a designed study (nothing was selected).
    A trial scored before the search was interrupted keeps its record (test_reports/): a
    resumed study scores only the rest."""
    from nsde.metrics import EvalReport
    from search.trainable import evaluation_metrics

    todo = []
    for r in complete:
        path = ctx.exp_dir / TEST_REPORTS / f"{r.trial_id}.json"
        if not path.exists():
            todo.append(r)
            continue
        r.test = _test_metrics(evaluation_metrics(EvalReport.from_dict(json.loads(path.read_text())["reports"][0])), 1)
    logger.info("held-out test scores of the design's %d complete trials (%d scored before)", len(complete),
                len(complete) - len(todo))
    _write_held_out(ctx, todo, seeds=1)


def _score_held_out(ctx: SearchContext, front: list[TrialRecord], baseline: TrialRecord | None) -> None:
    """The test split, once: the final front and the baseline, nothing chosen by these numbers."""
    held = front + ([baseline] if baseline is not None and baseline.trial_id not in {r.trial_id for r in front} else [])
    seeds = ctx.space.final_seeds
    logger.info("held-out test scores of %d trials (the final front and the baseline), %d training seed(s) each",
                len(held), seeds)
    _write_held_out(ctx, held, seeds=seeds)


def _write_held_out(ctx: SearchContext, held: list[TrialRecord], *, seeds: int) -> None:
    """Score `held` on test (`held_out`), and keep each record in the trial, MLflow and test_reports/."""
    (ctx.exp_dir / TEST_REPORTS).mkdir(exist_ok=True)
    by_id = {r.trial_id: r for r in held}

    def keep(tid: str, res: dict[str, Any]) -> None:  # as each trial's scores come in: nothing lost on a crash
        r = by_id[tid]
        r.test = res["metrics"]
        record = {"seeds": res["seeds"], "reports": res["reports"]}
        log_held_out(ctx.client, r, record)
        (ctx.exp_dir / TEST_REPORTS / f"{tid}.json").write_text(json.dumps(record))

    with ctx.timed(TEST_EVAL_SECONDS):
        held_out(ctx, held, seeds=seeds, cpus=task_cpus(ctx, len(held) * seeds),
                 gpus=min(ctx.settings.gpus_per_trial, 1.0), on_record=keep)


def task_cpus(ctx: SearchContext, tasks: int) -> float:
    """CPUs per final/held-out evaluation task: the trial's, or, for a local CPU-only search
    whose trials have all ended, a share of the machine's cores: with fewer tasks than cores,
    several each (one re-scored model should not leave the other cores idle; at most 8 threads
    each); with up to twice as many, a fraction each, so that all run at once (one thread each)
    instead of a last round on one core while the others idle (3 models on 2 cores: 1.5 rounds'
    time, not 2). On a cluster a task keeps the trial's CPUs: a larger request might fit no
    single node."""
    import ray

    s = ctx.settings
    if s.gpus_per_trial > 0 or s.address is not None or tasks < 1:
        return s.cpus_per_trial
    cores = ray.cluster_resources().get("CPU", 0.0)  # the trials' actors may still be releasing theirs
    if s.cpus_per_trial * tasks > cores >= 1 and tasks <= 2 * cores:
        return cores / tasks
    return float(max(s.cpus_per_trial, min(8, int(cores // tasks))))
