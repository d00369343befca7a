"""`python -m search.run`: a multi-objective noise-shape search with Ray Tune, Optuna and MLflow.

With no arguments it runs the embedded default: a local Ray, the `default` space, a few
trials on the default data set, MLflow in ./mlflow.db. It ends by printing the
Pareto-optimal trials, the command that opens the MLflow UI on them and the path of the
search's HTML report (`analysis.report`: fronts, hypervolume, baseline comparison, figures).

    python -m search.run                                   # the default search (~30 min, 2 cores)
    python -m search.run --space shapes --num-samples 40 --sampler nsga2
    python -m search.run --space my_space.yaml --scheduler asha --scheduler-metric val_accuracy
    python -m search.run --address auto --preset paper --space paper --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow.entities import Metric
from optuna.distributions import CategoricalDistribution

from analysis.load import FINAL_REPORTS, SEARCH_FILE, TEST_REPORTS
from nsde.train import TrainConfig
from search.config import (
    DEFAULT_OBJECTIVES,
    METRICS,
    OBJECTIVE_SPLIT,
    SCHEDULER_METRICS,
    TEST_PREFIX,
    Objective,
    flatten,
    parse_objectives,
    trial_configs,
)
from search.final import FrontChange, TrialRow, flagged, front_change, front_ids, held_out, pick_baseline, reevaluate
from search.searcher import SAMPLERS, make_searcher
from search.tracking import (
    TrialTracker,
    check_mlflow,
    close_lost_runs,
    failure_reason,
    find_parent_run,
    log_pareto_model,
    mlflow_ui_hint,
    start_parent_run,
)

__all__ = ["SearchOutcome", "SearchSettings", "main", "run_search"]

SCHEDULERS = ("fifo", "asha")
_USER_MAX_PENDING = os.environ.get("TUNE_MAX_PENDING_TRIALS_PG")  # a user's own setting wins


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search needs; `None` means: the space's (or the machine's) default."""

    space: str = "default"
    num_samples: int = 6
    objectives: str = DEFAULT_OBJECTIVES
    sampler: str = "tpe"
    scheduler: str = "fifo"
    scheduler_metric: str = "val_accuracy"
    grace_period: int = 1
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    address: str | None = None
    storage_path: str = "runs"
    mlflow_uri: str = "sqlite:///mlflow.db"
    experiment: str = "nsde-search"
    name: str | None = None
    seed: int = 0
    preset: str | None = None
    search_profile: str | None = None
    final_profile: str | None = None
    final: bool = True
    max_failures: int = 2
    resume: bool = False
    ddp_workers: int = 1
    final_seeds: int | None = None
    keep_flagged: bool = False

    @property
    def workers(self) -> int:
        """Data-parallel workers per trial (1 = a plain single-process trial)."""
        return int(self.gpus_per_trial) if self.gpus_per_trial > 1 else self.ddp_workers

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"`--num-samples >= 1` must hold, but got {self.num_samples}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; known samplers: {list(SAMPLERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; known schedulers: {list(SCHEDULERS)}")
        if self.scheduler_metric not in SCHEDULER_METRICS:
            raise ValueError(f"`--scheduler-metric` must be a per-epoch metric {list(SCHEDULER_METRICS)}, "
                             f"but got {self.scheduler_metric!r}")
        if self.resume and not self.name:
            raise ValueError("--resume needs --name: the name of the interrupted search (and the same --storage-path)")
        if self.max_failures < 0:
            raise ValueError(f"`--max-failures >= 0` must hold, but got {self.max_failures}")
        if self.grace_period < 1:
            raise ValueError(f"`--grace-period >= 1` must hold, but got {self.grace_period}")
        if self.address is not None and self.address.startswith("ray://"):
            raise ValueError(f"--address {self.address}: Ray Client (ray://) is not supported, because the "
                             f"search's MLflow callback must run in this process; run the search on the head "
                             f"node (`ray job submit -- python -m search.run --address auto ...`)")
        if self.gpus_per_trial < 0 or self.cpus_per_trial <= 0:
            raise ValueError(f"`--gpus-per-trial >= 0` and `--cpus-per-trial > 0` must hold, but got "
                             f"{self.gpus_per_trial} and {self.cpus_per_trial}")
        if self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer():
            raise ValueError(f"`--gpus-per-trial` above 1 must be a whole number of GPUs (one DDP worker each), "
                             f"but got {self.gpus_per_trial}")
        if self.ddp_workers < 1 or (self.ddp_workers > 1 and self.gpus_per_trial > 0):
            raise ValueError(f"`--ddp-workers >= 1` must hold, and only for CPU trials (with GPUs, "
                             f"--gpus-per-trial N sets N workers), but got {self.ddp_workers}")
        if self.final_seeds is not None and self.final_seeds < 1:
            raise ValueError(f"`--final-seeds >= 1` must hold, but got {self.final_seeds}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"`--max-concurrent >= 1` must hold, but got {self.max_concurrent}")


@dataclass
class SearchOutcome:
    """What a finished search returns (and prints)."""

    name: str
    experiment_id: str
    parent_run_id: str
    objectives: tuple[Objective, ...]
    rows: list[TrialRow]
    front: list[str]  # the Pareto-optimal trial ids (final numbers when re-evaluated)
    change: FrontChange | None
    experiment_dir: Path
    timing: dict[str, Any] = field(default_factory=dict)
    ui_hint: str = ""
    report: Path | None = None  # the HTML report (analysis.report), None when it could not be written
    keep_flagged: bool = False

    def row(self, trial_id: str) -> TrialRow:
        return _row(self.rows, trial_id)


# ----------------------------------------------------------------------- checks


def _port_is_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _check_ray_address(address: str | None) -> None:
    """A cluster address that can't be reached is an error before anything starts."""
    if address in (None, "auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"--address must be 'auto', 'host:port' or 'ray://host:port', but got {address!r}")
    if not _port_is_open(parsed.hostname, parsed.port):
        raise ValueError(f"Ray cluster at {address} cannot be reached (no answer on {parsed.hostname}:{parsed.port}); "
                         f"start it (`ray start --head` or `ray up ray_cluster.yaml`) or leave out --address")


def _prepare(settings: SearchSettings):
    """Validate everything that can be validated before Ray or any trial starts."""
    from nsde.data import PRESETS
    from nsde.metrics import eval_config
    from spaces import get_space

    space = get_space(settings.space)
    if "train/seed" not in space.constants:  # every trial trains with the search's seed
        space = replace(space, constants={**space.constants, "train/seed": settings.seed})
    if settings.final_seeds is not None:
        space = replace(space, final_seeds=settings.final_seeds)
    objectives = parse_objectives(settings.objectives)
    preset = settings.preset or space.preset
    if preset not in PRESETS:
        raise ValueError(f"unknown data preset {preset!r}; known presets: {sorted(PRESETS)}")
    search_cfg = eval_config(settings.search_profile or space.search_profile, seed=settings.seed)
    final_cfg = eval_config(settings.final_profile or space.final_profile, seed=settings.seed)
    for point in space.points:  # a starting point the nsde configs reject fails now, not in a trial
        trial_configs(space.config(point))
    if settings.scheduler == "asha" and settings.grace_period >= _max_epochs(space):
        raise ValueError(f"`--grace-period < epochs` must hold for ASHA, but got grace period "
                         f"{settings.grace_period} and at most {_max_epochs(space)} epochs")
    check_mlflow(settings.mlflow_uri)
    _check_ray_address(settings.address)
    return space, objectives, PRESETS[preset], search_cfg, final_cfg


# ------------------------------------------------------------------------ search


def run_search(settings: SearchSettings) -> SearchOutcome:
    """Run a search end to end; see the module docstring."""
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune

    from nsde.data import prepare
    from nsde.data.snr import snr_spectrograms
    from search.trainable import run_trial

    t0 = time.perf_counter()
    space, objectives, data_cfg, search_cfg, final_cfg = _prepare(settings)
    name = settings.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage, tune_path, exp_dir = _storage(settings.storage_path, name)
    if settings.resume and not tune.Tuner.can_restore(tune_path):
        raise ValueError(f"--resume: no interrupted search to continue at {tune_path}")
    if not settings.resume and tune.Tuner.can_restore(tune_path):
        raise ValueError(f"a search named {name!r} already exists at {tune_path}; continue it with --resume "
                         f"or choose another --name")
    timing: dict[str, Any] = {}

    start = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=settings.address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True)
    timing["ray_init_s"] = time.perf_counter() - start

    start = time.perf_counter()
    print(f"data set: preset {settings.preset or space.preset!r}", flush=True)
    data = prepare(data_cfg)  # once per search, on the driver; trials load the cache by path
    # the SNR sweep's spectrograms, once on the driver: the trials and the final re-evaluation
    # read validation's (both profiles' levels), the held-out scoring test's
    levels = {OBJECTIVE_SPLIT: {*search_cfg.snr_levels, *final_cfg.snr_levels}, "test": set(final_cfg.snr_levels)}
    for split, split_levels in levels.items():
        for level in sorted(split_levels, reverse=True):
            snr_spectrograms(data, split, level, progress=True)
    timing["data_s"] = time.perf_counter() - start

    client = MlflowClient(settings.mlflow_uri)
    params = {**{k: v for k, v in asdict(settings).items() if v is not None}, "name": name,
              "data_path": str(data.path), "search_eval": json.dumps(asdict(search_cfg)),
              "final_eval": json.dumps(asdict(final_cfg))}
    if settings.resume:
        exp_id, parent_id = find_parent_run(client, settings.experiment, name)
    else:
        exp_id, parent_id = start_parent_run(client, settings.experiment, name, params, space.to_dict())
    tracker = TrialTracker(settings.mlflow_uri, exp_id, parent_id, name)
    try:
        rows = _tune(settings, space, objectives, name, storage, exp_dir, tracker, run_trial,
                     data_path=str(data.path), eval_cfg=search_cfg, timing=timing)
        change = _finish(settings, objectives, rows, final_cfg, tracker, timing, exp_dir, space.final_seeds)
        front = list(change.final_front) if change else front_ids(rows, objectives,
                                                                   keep_flagged=settings.keep_flagged)
        start = time.perf_counter()
        for tid in front:
            log_pareto_model(settings.mlflow_uri, _row(rows, tid).run_id, _row(rows, tid).checkpoint)
        timing["models_s"] = time.perf_counter() - start
        timing["total_s"] = time.perf_counter() - t0
        timing["trials"] = _trial_timing(rows, tracker)
        timing["mlflow_callback_s"] = tracker.logging_seconds
        timing["recoveries"] = tracker.recoveries
        timing["restarts"] = tracker.restarts
        _log_parent(client, parent_id, objectives, rows, front, change, timing)
        _write_record(exp_dir, settings, name, space, objectives, rows, change, exp_id, parent_id)
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    (exp_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    report = _write_report(client, settings.mlflow_uri, parent_id, exp_dir / "report.html")
    return SearchOutcome(name, exp_id, parent_id, objectives, rows, front, change, exp_dir, timing,
                         mlflow_ui_hint(settings.mlflow_uri, exp_id, parent_id), report, settings.keep_flagged)


def _storage(path: str, name: str) -> tuple[str, str, Path]:
    """Tune's storage path, and the local folder of the search's own files (the Optuna study,
    timing.json): the experiment folder itself, or $NSDE_CACHE_DIR/searches/NAME when Tune stores
    in the cloud (on the cluster, NSDE_CACHE_DIR is the shared file system: --resume finds it)."""
    if "://" in path:  # s3://, gs://: Ray's pyarrow filesystems; the study stays in the (shared) cache
        from nsde.data import default_cache_dir

        local = default_cache_dir() / "searches" / name
    else:
        path = str(Path(path).expanduser().resolve())
        local = Path(path) / name
    local.mkdir(parents=True, exist_ok=True)
    return path, f"{path}/{name}", local


def _tune(settings, space, objectives, name, storage, exp_dir, tracker, trainable, *, data_path, eval_cfg, timing):
    from ray import tune

    if settings.workers > 1:  # DDP: the trial runs a TorchTrainer whose workers take the CPUs/GPUs
        from search.ddp import ddp_trainable

        trainable = ddp_trainable(workers=settings.workers, use_gpu=settings.gpus_per_trial > 1,
                                  storage_path=f"{storage}/{name}-ddp")
        resources = {"cpu": 1, "gpu": 0}
    else:
        resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    # Tune lets a searcher have one trial pending at a time; trials then start one by one
    # as each one's worker comes up. Allow as many pending trials as can run at once.
    # On a cluster that autoscales, the resources present now say little: let it see the demand.
    pending = settings.max_concurrent or settings.num_samples if settings.address else _slots(settings)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = _USER_MAX_PENDING or str(pending)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the compact status table below, not a box per result
    # Snapshot the experiment state every 2 s at most (Tune's "auto" waits >= 10 s), so that a
    # --resume after a killed driver restarts as few already-finished trials as possible.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    trainable = tune.with_resources(
        tune.with_parameters(trainable, data_path=data_path, eval_cfg=eval_cfg,
                             threads=int(max(1, settings.cpus_per_trial))), resources)
    if settings.resume:
        tuner = tune.Tuner.restore(f"{storage}/{name}", trainable=trainable, resume_unfinished=True,
                                   resume_errored=False)
        # The restored run config holds a pickled copy of the tracker; use this session's
        # (the same parent run; it finds each trial's child run again by its tag).
        tuner._local_tuner.get_run_config().callbacks = [tracker]
    else:
        tuner = _new_tuner(settings, space, objectives, name, storage, exp_dir, tracker, trainable)
    start = time.perf_counter()
    timing["tune_started_at"] = time.time()
    tuner.fit()
    timing["tune_ended_at"] = time.time()
    timing["tune_s"] = time.perf_counter() - start
    timing["slots"] = _slots(settings)
    if settings.resume:
        alg = tuner._local_tuner._tune_config.search_alg  # restored in place from the experiment folder
        timing["optuna_orphans_failed"] = getattr(alg, "searcher", alg).fail_orphans()
        timing["mlflow_lost_runs"] = close_lost_runs(tracker.client, tracker.experiment_id,
                                                     tracker.parent_run_id, set(tracker.trials))
    return [_to_row(trial, tracker) for trial in tracker.trials.values()]


def _new_tuner(settings, space, objectives, name, storage, exp_dir, tracker, trainable):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    searcher = make_searcher(space, objectives, sampler=settings.sampler, seed=settings.seed,
                             num_samples=settings.num_samples, storage=f"sqlite:///{exp_dir / 'optuna.db'}",
                             study_name=name)
    if settings.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=settings.max_concurrent)
    if settings.scheduler == "asha":
        # stop_last_trials=False: a trial that reaches max_t still runs its evaluation
        scheduler = ASHAScheduler(time_attr="epoch", metric=settings.scheduler_metric,
                                  mode=SCHEDULER_METRICS[settings.scheduler_metric], max_t=_max_epochs(space),
                                  grace_period=settings.grace_period, reduction_factor=2, stop_last_trials=False)
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            callbacks=[tracker],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            progress_reporter=_reporter(space, objectives),
            verbose=1,
        ),
    )


def _max_epochs(space) -> int:
    """The most epochs a trial of `space` can run (ASHA's max_t)."""
    p = space.params.get("train/epochs")
    if p is None:
        return int(space.constants.get("train/epochs", TrainConfig().epochs))
    d = p.distribution
    return int(max(d.choices) if isinstance(d, CategoricalDistribution) else d.high)


def _slots(settings: SearchSettings) -> int:
    """Trials that can run at once on the cluster's resources."""
    import ray

    res = ray.cluster_resources()
    cpus = settings.cpus_per_trial if settings.workers == 1 else 1 + settings.workers * settings.cpus_per_trial
    slots = int(res.get("CPU", 1) // cpus)
    if settings.gpus_per_trial > 0:
        slots = min(slots, int(res.get("GPU", 0) // settings.gpus_per_trial))
    return max(1, min(slots, settings.max_concurrent or slots))


def _reporter(space, objectives):
    """A status table every 30 s: the searched parameters and the trial's latest numbers."""
    from ray.tune import CLIReporter

    keys = sorted({p.target(n) for n, p in space.params.items()})
    return CLIReporter(
        parameter_columns={k: k.split("/")[1] for k in keys},
        metric_columns={"epoch": "epoch", "val_accuracy": "val_acc", **{o.name: o.name for o in objectives}},
        max_report_frequency=30,
        max_column_length=14,
        sort_by_metric=False,
    )


def _to_row(trial, tracker: TrialTracker) -> TrialRow:
    """A finished Tune trial as a row (from the Trial object, which failed trials also have)."""
    last = dict(trial.last_result or {})
    if trial.status == "ERROR":
        status = "failed"
    elif last.get("evaluated"):
        status = "complete"
    else:
        status = "pruned"
    return TrialRow(trial_id=trial.trial_id, status=status, config=flatten(trial.config),
                    metrics={k: float(v) for k, v in last.items() if isinstance(v, (int, float))},
                    checkpoint=trial.checkpoint, run_id=tracker.run_id(trial),
                    error=failure_reason(trial) if status == "failed" else None)


def _status_counts(rows: list[TrialRow]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in ("complete", "pruned", "failed")}


def _row(rows: list[TrialRow], trial_id: str) -> TrialRow:
    return next(r for r in rows if r.trial_id == trial_id)


def _finish(settings, objectives, rows, final_cfg, tracker, timing, exp_dir: Path, seeds: int) -> FrontChange | None:
    """Re-evaluate the front and the baseline with the final profile on validation, recompute the
    front, then score the final front and the baseline once on test (`seeds` training seeds)."""
    if not settings.final:
        return None
    keep = settings.keep_flagged
    front = front_ids(rows, objectives, keep_flagged=keep)
    chosen = list(front)
    baseline = pick_baseline(rows)
    if baseline is not None and baseline.trial_id not in chosen:
        chosen.append(baseline.trial_id)
    if not chosen:
        return None
    extra = " and the deterministic baseline" if baseline is not None and baseline.trial_id not in front else ""
    print(f"re-evaluating {len(chosen)} trials (the Pareto front{extra}) with the final profile on the validation "
          f"split ...", flush=True)
    start = time.perf_counter()
    gpus = min(settings.gpus_per_trial, 1.0)  # one model fits one GPU
    results = reevaluate([_row(rows, t) for t in chosen], final_cfg, cpus=_task_cpus(settings, len(chosen)),
                         gpus=gpus)
    timing["final_eval_s"] = time.perf_counter() - start
    client = tracker.client
    reports = exp_dir / FINAL_REPORTS  # the search's folder: analysis.load_tune reads them there
    reports.mkdir(exist_ok=True)
    for tid, res in results.items():
        row = _row(rows, tid)
        # metrics the evaluation does not produce (e.g. val_accuracy) keep their search values
        row.final = {**{k: row.metrics[k] for k in METRICS if k in row.metrics}, **res["metrics"]}
        _log_numbers(client, row.run_id, {f"final_{k}": v for k, v in row.final.items()})
        client.log_dict(row.run_id, res["report"], "final_eval_report.json")
        (reports / f"{tid}.json").write_text(json.dumps(res["report"]))
        client.set_tag(row.run_id, "nsde.baseline", str(baseline is not None and tid == baseline.trial_id).lower())
    change = front_change(rows, objectives, keep_flagged=keep)

    # The test split, once: the final front and the baseline, nothing chosen by these numbers.
    held = list(change.final_front) + ([baseline.trial_id] if baseline is not None
                                       and baseline.trial_id not in change.final_front else [])
    print(f"held-out test scores of {len(held)} trials (the final front and the baseline), {seeds} training "
          f"seed{'s' if seeds > 1 else ''} each ...", flush=True)
    start = time.perf_counter()
    tested = held_out([_row(rows, t) for t in held], final_cfg, seeds=seeds,
                      cpus=_task_cpus(settings, len(held) * seeds), gpus=gpus)
    timing["test_eval_s"] = time.perf_counter() - start
    test_dir = exp_dir / TEST_REPORTS
    test_dir.mkdir(exist_ok=True)
    for tid, res in tested.items():
        row = _row(rows, tid)
        row.test = res["metrics"]
        _log_numbers(client, row.run_id, row.test)
        record = {"seeds": res["seeds"], "reports": res["reports"]}
        client.log_dict(row.run_id, record, "test_eval_report.json")
        (test_dir / f"{tid}.json").write_text(json.dumps(record))
    return change


def _task_cpus(settings: SearchSettings, tasks: int) -> float:
    """CPUs per final/held-out evaluation task: the trial's, or, for a local CPU-only search
    whose trials have all ended, a share of the machine's cores when there are fewer tasks than
    cores (one re-scored model should not leave the other cores idle; at most 8 threads each).
    On a cluster a task keeps the trial's CPUs: a larger request might fit no single node."""
    import ray

    if settings.gpus_per_trial > 0 or settings.address is not None or tasks < 1:
        return settings.cpus_per_trial
    cores = ray.cluster_resources().get("CPU", 0.0)  # the trials' actors may still be releasing theirs
    return float(max(settings.cpus_per_trial, min(8, int(cores // tasks))))


def _log_numbers(client, run_id: str, values: dict[str, float]) -> None:
    ts = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in values.items() if math.isfinite(v)])


def _write_record(exp_dir: Path, settings, name, space, objectives, rows, change, exp_id, parent_id) -> None:
    """`search.json` in the search's folder: what `analysis.load_tune` needs beside Tune's own files."""
    baseline = pick_baseline(rows)
    record = {
        "name": name,
        "objectives": [[o.name, o.mode] for o in objectives],
        "settings": {k: v for k, v in asdict(settings).items() if v is not None},
        "space": space.to_dict(),
        "baseline": baseline.trial_id if baseline is not None and baseline.final else None,
        "final": {r.trial_id: r.final for r in rows if r.final},
        "test": {r.trial_id: r.test for r in rows if r.test},
        "splits": {"objectives": OBJECTIVE_SPLIT, "final": OBJECTIVE_SPLIT, "test": "test"},
        "front_change": asdict(change) if change is not None else None,
        "run_ids": {r.trial_id: r.run_id for r in rows},
        "mlflow": {"tracking_uri": settings.mlflow_uri, "experiment_id": exp_id, "parent_run_id": parent_id},
    }
    (exp_dir / SEARCH_FILE).write_text(json.dumps(record, indent=2, default=str))


def _write_report(client, uri: str, parent_id: str, path: Path) -> Path | None:
    """The search's HTML report (analysis.report), also logged to the parent run. A failure here
    loses nothing (every number is in MLflow already): it prints how to write the report later."""
    from analysis import load_search
    from analysis.report import write_report

    try:
        write_report(load_search(run_id=parent_id, tracking_uri=uri), path)
        client.log_artifact(parent_id, str(path))
    except Exception as err:  # noqa: BLE001 - the search itself has finished and is recorded
        print(f"warning: the report could not be written ({type(err).__name__}: {err}); write it with "
              f"`python -m analysis.report --run-id {parent_id} --tracking-uri {uri}`", file=sys.stderr)
        return None
    return path


def _trial_timing(rows: list[TrialRow], tracker: TrialTracker) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        wall = tracker.wall_seconds.get(r.trial_id)
        work = r.metrics.get("train_seconds", 0.0) + r.metrics.get("eval_seconds_total", 0.0)
        out.append({"trial_id": r.trial_id, "status": r.status, "started_at": tracker.started.get(r.trial_id),
                    "wall_s": wall,
                    "train_s": r.metrics.get("train_seconds"), "eval_s": r.metrics.get("eval_seconds_total"),
                    "overhead_s": None if wall is None or r.status != "complete" else wall - work})
    return out


def _front_table(outcome_rows: list[TrialRow], front: list[str], objectives, *, final: bool) -> list[dict[str, Any]]:
    table = []
    for tid in front:
        r = _row(outcome_rows, tid)
        values = r.final if final and r.final else r.metrics
        table.append({"trial_id": tid, "run_id": r.run_id, "split": OBJECTIVE_SPLIT, **r.config,
                      **{o.name: values.get(o.name) for o in objectives},
                      **{f"{o.name}_low": values.get(f"{o.name}_low") for o in objectives},
                      **{f"{o.name}_high": values.get(f"{o.name}_high") for o in objectives},
                      "checks_failed": _failed_checks(values)})
    return table


def _failed_checks(values: dict[str, float]) -> list[str]:
    return [k.removeprefix("check_") for k, v in values.items() if k.startswith("check_") and v == 0.0]


def _log_parent(client, parent_id, objectives, rows, front, change, timing) -> None:
    search_front = list(change.search_front) if change else front
    client.log_dict(parent_id, _front_table(rows, search_front, objectives, final=False), "pareto_search.json")
    if change is not None:
        client.log_dict(parent_id, _front_table(rows, front, objectives, final=True), "pareto_final.json")
        client.log_dict(parent_id, asdict(change), "front_change.json")
        client.set_tag(parent_id, "nsde.front_change", change.summary()[:4000])
    tested = {r.trial_id: r.test for r in rows if r.test}
    if tested:
        client.log_dict(parent_id, tested, "test_estimates.json")
    client.log_dict(parent_id, timing, "timing.json")
    counts = _status_counts(rows)
    ts = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(f"trials_{k}", v, ts, 0) for k, v in counts.items()]
                     + [Metric("pareto_size", len(front), ts, 0)])
    client.set_tag(parent_id, "nsde.pareto_trials", ",".join(front))


# --------------------------------------------------------------------------- CLI


def format_front(outcome: SearchOutcome) -> str:
    """The Pareto-optimal trials (selected on validation): parameters, objectives and failed
    sanity checks, one row each; then their held-out test numbers and the baseline's."""
    final = outcome.change is not None
    table = _front_table(outcome.rows, outcome.front, outcome.objectives, final=final)
    if not table:
        return "no trial completed; see the Tune folder and the MLflow runs for the reasons"
    params = sorted({k for r in table for k in r if "/" in k and k not in ("train/seed",)})
    header = ["trial"] + [p.split("/")[1] for p in params] + [o.name for o in outcome.objectives] + ["checks"]
    body = [[r["trial_id"]] + [_cell(r.get(p)) for p in params] + [_cell(r[o.name]) for o in outcome.objectives]
            + [("FAILED " + ",".join(r["checks_failed"])) if r["checks_failed"] else "ok"] for r in table]
    which = "final profile" if final else "search profile"
    text = (f"Pareto-optimal trials (selected on the {OBJECTIVE_SPLIT} split, {which}; all objectives "
            f"{', '.join(o.name + ':' + o.mode for o in outcome.objectives)}):\n" + _text_table(header, body))
    tested = [r for r in outcome.rows if r.test]
    if tested:
        seeds = int(tested[0].test.get(f"{TEST_PREFIX}seeds", 1))
        header = ["trial", "role"] + [o.name for o in outcome.objectives]
        body = []
        base = pick_baseline(outcome.rows)
        for r in sorted(tested, key=lambda r: r.trial_id not in outcome.front):
            role = ", ".join(name for name, on in (("front", r.trial_id in outcome.front),
                                                   ("baseline", base is not None and r is base)) if on)
            body.append([r.trial_id, role] + [_interval(r.test, f"{TEST_PREFIX}{o.name}") for o in outcome.objectives])
        text += (f"\n\nHeld-out TEST estimates of the final front and the baseline (scored once; value [95 % "
                 f"interval], {seeds} training seed{'s' if seeds > 1 else ''} each):\n" + _text_table(header, body))
    flagged_rows = [r for r in outcome.rows if r.status == "complete" and flagged(r.final or r.metrics)]
    if flagged_rows:
        kept = "kept on the fronts (--keep-flagged)" if outcome.keep_flagged else "kept off the fronts"
        text += f"\n\nTrials whose attack failed a sanity check ({kept}):\n" + "\n".join(
            f"  {r.trial_id}: {', '.join(_failed_checks(r.final or r.metrics))}" for r in flagged_rows)
    return text


def _text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [header, *body])


def _interval(values: dict[str, float], name: str) -> str:
    v, lo, hi = values.get(name), values.get(f"{name}_low"), values.get(f"{name}_high")
    if v is None or not math.isfinite(v):
        return "-"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _parser() -> argparse.ArgumentParser:
    d = SearchSettings()
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", default=d.space, help="a named space (default, paper, shapes) or a .yaml/.py file")
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="trials to run")
    p.add_argument("--objectives", default=d.objectives,
                   help=f"comma-separated name[:max|min]; names: {', '.join(METRICS)}")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="Optuna sampler; 'seeded' = scrambled Sobol sequence (quasi-random, fixed by --seed)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                   help="fifo: every trial runs to the end; asha: stop weak trials early on --scheduler-metric")
    p.add_argument("--scheduler-metric", default=d.scheduler_metric, help="the per-epoch metric ASHA compares")
    p.add_argument("--grace-period", type=int, default=d.grace_period, help="ASHA: epochs before a trial may stop")
    p.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial,
                   help="GPUs per trial; a fraction packs several trials on one GPU, N > 1 runs each trial as "
                        "a DDP job over N GPUs (Ray Train TorchTrainer)")
    p.add_argument("--ddp-workers", type=int, default=d.ddp_workers,
                   help="CPU data-parallel workers per trial (gloo); with GPUs use --gpus-per-trial N > 1")
    p.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial, help="CPU cores per trial (torch threads)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    p.add_argument("--address", default=None, help="an existing Ray cluster ('auto', 'host:port'); default: local Ray")
    p.add_argument("--storage-path", default=d.storage_path, help="Tune results and checkpoints (shared on a cluster)")
    p.add_argument("--mlflow-uri", default=d.mlflow_uri, help="MLflow tracking URI (sqlite:///..., http://host:port)")
    p.add_argument("--experiment", default=d.experiment, help="MLflow experiment name")
    p.add_argument("--name", default=None, help="the search's name (default: SPACE-YYYYmmdd-HHMMSS)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the sampler, the training and the evaluation")
    p.add_argument("--preset", default=None, help="data preset (default: the space's; e.g. paper)")
    p.add_argument("--search-profile", default=None, help="evaluation profile of every trial (default: the space's)")
    p.add_argument("--final-profile", default=None, help="profile that re-scores the front (default: the space's)")
    p.add_argument("--no-final", dest="final", action="store_false",
                   help="skip the final re-evaluation and the held-out test scores")
    p.add_argument("--final-seeds", type=int, default=None,
                   help="training seeds behind each held-out test number of the final front and the baseline "
                        "(N > 1 retrains N - 1 more; default: the space's, 1 in default, 3 in paper)")
    p.add_argument("--keep-flagged", action="store_true",
                   help="let trials whose attack failed a sanity check onto the fronts (default: kept off)")
    p.add_argument("--max-failures", type=int, default=d.max_failures,
                   help="retries of a failing trial (a lost node, a crash), each from its last checkpoint")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted search --name (same --storage-path and --mlflow-uri): finished "
                        "trials are kept, unfinished ones continue from their checkpoints")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    try:
        settings = SearchSettings(**args)
        outcome = run_search(settings)
    except (ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = _status_counts(outcome.rows)
    print(f"\nsearch {outcome.name}: {counts['complete']} complete, {counts['pruned']} stopped early, "
          f"{counts['failed']} failed, in {outcome.timing['total_s'] / 60:.1f} min")
    for r in outcome.rows:
        if r.status == "failed":
            print(f"  trial {r.trial_id} failed: {r.error}")
    print(format_front(outcome))
    if outcome.change is not None:
        print(outcome.change.summary())
    print(f"\nMLflow: {outcome.ui_hint}")
    print(f"Tune results: {outcome.experiment_dir}")
    if outcome.report is not None:
        print(f"Report: {outcome.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
