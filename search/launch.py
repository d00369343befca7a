"""The Ray Tune side of a search: the trainable with its resources, a new or restored `Tuner`,
and the trial records of the `ResultGrid` its `fit()` returns (Ray's public API only)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from nsde.train import TrainConfig
from record import RUNGS_FILE, SCHEDULER_METRICS, TrialRecord, from_result, parse_constraints
from search.moasha import MOASHAScheduler, rung_epochs
from search.searcher import fail_orphans, make_searcher
from search.settings import SearchContext, SearchSettings
from search.tracking import (
    TrackingUnavailable,
    TrialTracker,
    child_run_ids,
    close_lost_runs,
    replay_trials,
    server_alive,
)

__all__ = ["max_epochs", "optuna_hint", "require_server", "slots", "study_storage", "tune_trials"]

TRACKER_FILE = "tracker.json"


def tune_trials(ctx: SearchContext) -> list[TrialRecord]:
    """Run (or, with --resume, continue) the search's trials; their records, in creation order."""
    from ray import tune

    trainable = _trainable(ctx)
    tracker = TrialTracker(ctx.settings.mlflow_uri, ctx.experiment_id, ctx.parent_run_id, ctx.name,
                           state_file=ctx.exp_dir / TRACKER_FILE, rungs_file=ctx.exp_dir / RUNGS_FILE,
                           outage_limit_s=ctx.settings.tracking_outage_limit)
    with _tune_environment(ctx.settings):
        # the restored experiment runs the tracker Tune pickled with it: the same parent run, and
        # it finds each trial's child run again by its tag
        tuner = (tune.Tuner.restore(ctx.tune_path, trainable=trainable, resume_unfinished=True, resume_errored=False)
                 if ctx.settings.resume else _new_tuner(ctx, trainable, tracker))
        ctx.timing["tune_started_at"] = time.time()
        with ctx.timed("tune_s"):
            grid = tuner.fit()
        ctx.timing["tune_ended_at"] = time.time()
    ctx.timing["slots"] = slots(ctx.settings)
    require_server(ctx)
    # Tune's records are the source of truth: what the tracker could not write is written now
    ctx.timing["tracking_replayed"] = replay_trials(tracker, list(grid))
    run_ids = child_run_ids(ctx.client, ctx.experiment_id, ctx.parent_run_id)
    if ctx.settings.resume:  # leftovers of the interrupted driver
        study = optuna.load_study(study_name=ctx.name, storage=study_storage(ctx))
        ctx.timing["optuna_orphans_failed"] = fail_orphans(study)
        ctx.timing["mlflow_lost_runs"] = close_lost_runs(ctx.client, ctx.experiment_id, ctx.parent_run_id,
                                                         {str(r.metrics["trial_id"]) for r in grid})
    return [from_result(r, run_id=run_ids.get(str(r.metrics["trial_id"]))) for r in grid]


def require_server(ctx: SearchContext) -> None:
    """Raise `TrackingUnavailable` (one line: what is safe and how to finish) when the search's
    MLflow server does not answer."""
    if not server_alive(ctx.settings.mlflow_uri):
        raise TrackingUnavailable(
            f"MLflow server {ctx.settings.mlflow_uri} does not answer; the trials are safe under {ctx.tune_path}. "
            f"Once it is back, `python -m search.run --name {ctx.name} --resume` (same --storage-path and "
            f"--mlflow-uri) completes the tracking and the scoring without retraining")


def tracker_state(ctx: SearchContext) -> dict[str, Any]:
    return TrialTracker.read_state(ctx.exp_dir / TRACKER_FILE)


def study_storage(ctx: SearchContext) -> str:
    return f"sqlite:///{ctx.exp_dir / 'optuna.db'}"


def optuna_hint(ctx: SearchContext) -> str:
    """The command that shows the search's Optuna study (sampler history, importance) in optuna-dashboard."""
    return f"optuna-dashboard {study_storage(ctx)}   # then open http://127.0.0.1:8080/"


def _trainable(ctx: SearchContext):
    from ray import tune

    from search.trainable import run_trial

    s = ctx.settings
    trainable = run_trial
    resources = {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
    if s.workers > 1:  # DDP: the trial runs a TorchTrainer whose workers take the CPUs/GPUs
        from search.ddp import ddp_trainable

        trainable = ddp_trainable(workers=s.workers, use_gpu=s.gpus_per_trial > 1,
                                  storage_path=f"{ctx.storage}/{ctx.name}-ddp")
        resources = {"cpu": 1, "gpu": 0}
    params = {"data_path": ctx.data_path, "eval_cfg": ctx.search_cfg, "threads": int(max(1, s.cpus_per_trial))}
    if s.scheduler == "moasha":  # (plain trials only: SearchSettings refuses DDP with moasha)
        params.update(rung_epochs=rung_epochs(s.grace_period, s.reduction_factor, max_epochs(ctx.space)),
                      rung_cfg=ctx.rung_cfg)
    return tune.with_resources(tune.with_parameters(trainable, **params), resources)


@contextlib.contextmanager
def _tune_environment(settings: SearchSettings) -> Iterator[None]:
    """Tune's settings for this search, read from the environment while `fit()` runs, and put
    back afterwards (a user's own value of each wins)."""
    # Tune lets a searcher have one trial pending at a time; trials then start one by one as
    # each one's worker comes up. Allow as many pending trials as can run at once. On a cluster
    # that autoscales, the resources present now say little: let it see the demand.
    pending = settings.max_concurrent or settings.num_samples if settings.address else slots(settings)
    ours = {"TUNE_MAX_PENDING_TRIALS_PG": str(pending),
            "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
            "RAY_AIR_NEW_OUTPUT": "0",  # the compact status table below, not a box per result
            # snapshot the experiment every 2 s at most (Tune's "auto" waits >= 10 s), so that a
            # --resume after a killed driver restarts as few already-finished trials as possible
            "TUNE_GLOBAL_CHECKPOINT_S": "2"}
    added = {k: v for k, v in ours.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _new_tuner(ctx: SearchContext, trainable, tracker: TrialTracker):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    s = ctx.settings
    searcher = make_searcher(ctx.space, ctx.objectives, sampler=s.sampler, seed=s.seed, num_samples=s.num_samples,
                             storage=study_storage(ctx), study_name=ctx.name, prior=ctx.prior,
                             constraints=parse_constraints(s.constraints))
    if s.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(ctx), num_samples=s.num_samples),
        run_config=tune.RunConfig(
            name=ctx.name,
            storage_path=ctx.storage,
            callbacks=[tracker],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            progress_reporter=_reporter(ctx),
            verbose=1,
        ),
    )


def _scheduler(ctx: SearchContext):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = ctx.settings
    if s.scheduler == "moasha":
        return MOASHAScheduler(ctx.objectives, max_t=max_epochs(ctx.space), grace_period=s.grace_period,
                               reduction_factor=s.reduction_factor, state_file=ctx.exp_dir / RUNGS_FILE,
                               baseline_config=ctx.space.config(ctx.space.points[0]) if ctx.space.points else None,
                               keep_front=s.rung_keep_front, audit=s.rung_audit, brackets=s.rung_brackets,
                               extrapolate=s.rung_extrapolate)
    if s.scheduler != "asha":
        return FIFOScheduler()
    # stop_last_trials=False: a trial that reaches max_t still runs its evaluation
    return ASHAScheduler(time_attr="epoch", metric=s.scheduler_metric, mode=SCHEDULER_METRICS[s.scheduler_metric],
                         max_t=max_epochs(ctx.space), grace_period=s.grace_period, reduction_factor=2,
                         stop_last_trials=False)


def max_epochs(space) -> int:
    """The most epochs a trial of `space` can run (ASHA's and MOASHA's max_t)."""
    p = space.params.get("train/epochs")
    if p is None:
        return int(space.constants.get("train/epochs", TrainConfig().epochs))
    d = p.distribution
    return int(max(d.choices) if isinstance(d, CategoricalDistribution) else d.high)


def slots(settings: SearchSettings) -> int:
    """Trials that can run at once on the cluster's resources."""
    import ray

    res = ray.cluster_resources()
    cpus = settings.cpus_per_trial if settings.workers == 1 else 1 + settings.workers * settings.cpus_per_trial
    n = int(res.get("CPU", 1) // cpus)
    if settings.gpus_per_trial > 0:
        n = min(n, int(res.get("GPU", 0) // settings.gpus_per_trial))
    return max(1, min(n, settings.max_concurrent or n))


def _reporter(ctx: SearchContext):
    """A status table every 30 s: the searched parameters and the trial's latest numbers."""
    from ray.tune import CLIReporter

    keys = sorted({p.target(n) for n, p in ctx.space.params.items()})
    return CLIReporter(
        parameter_columns={k: k.split("/")[1] for k in keys},
        metric_columns={"epoch": "epoch", "val_accuracy": "val_acc", **{o.name: o.name for o in ctx.objectives}},
        max_report_frequency=30,
        max_column_length=14,
        sort_by_metric=False,
    )
