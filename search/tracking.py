"""MLflow tracking: one parent run per search, exactly one child run per trial.

All MLflow writes happen on the driver: the trials' in a Ray Tune callback (`TrialTracker`),
the search's at its end (`log_final`, `log_held_out`, `log_parent`, `log_pareto_model`). A
single writer, so the SQLite default needs no locking, and a trial retried after a failure
finds its child run again (by the `nsde.trial_id` tag) instead of opening a second one.

The tracker keeps no state the driver reads back from the object: Tune pickles it into the
experiment, and a `--resume` runs the restored copy. What the driver needs (each trial's
start and wall time, retries, the callback's own time) the tracker writes to
`tracker.json` in the search's folder when the experiment ends (`TrialTracker.read_state`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import mlflow
import numpy as np
import requests
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from record import (
    COMPLETE,
    FAILED,
    FIGURE_FILE,
    FINAL_PREFIX,
    FINAL_REPORT_FILE,
    LOST,
    MODEL_FILE,
    OBJECTIVE_SPLIT,
    PRUNED,
    REPORT_FILE,
    RUNG_PREFIX,
    STATUSES,
    TEST_FILE,
    TEST_PREFIX,
    TIMING_FILE,
    TrialRecord,
    failed_checks,
    flatten,
    last_error_line,
    trial_status,
)
from record.schema import (
    BASELINE_TAG,
    ENDED_TAG,
    FAILURE_TAG,
    FRONT_CHANGE_FILE,
    FRONT_CHANGE_TAG,
    IMPORTANCE_FILE,
    PARENT_TAG,
    PARETO_FINAL_FILE,
    PARETO_SEARCH_FILE,
    PARETO_TAG,
    ROLE_SEARCH,
    ROLE_TAG,
    SEARCH_TAG,
    SPACE_FILE,
    SPLIT_TAG,
    STATUS_TAG,
    STOP_REASON_TAG,
    STOP_TAG,
    TEST_ESTIMATES_FILE,
    TRIAL_TAG,
)
from search.moasha import read_decisions

__all__ = ["OUTAGE_LIMIT_S", "TrackingUnavailable", "TrialTracker", "check_mlflow", "check_resumed_block", "replay_trials", "server_alive", "child_run_ids", "close_lost_runs", "failure_reason",
           "find_parent_run", "front_records", "log_final", "log_held_out", "log_importance", "log_numbers",
           "log_parent", "log_pareto_model", "mlflow_ui_hint", "start_parent_run"]

logger = logging.getLogger(__name__)

# Where a run's numbers come from (SPLIT_TAG): the objectives, their intervals and `final_*` on
# the validation split (selection), `test_*` on the test split (the held-out estimates).
SPLIT_NOTE = (f"objectives and {FINAL_PREFIX}*: {OBJECTIVE_SPLIT}; {TEST_PREFIX}*: test (held out, final front "
              f"and baseline)")
_EPOCH_KEYS = ("train_loss", "val_accuracy", "lr", "seconds", "examples_per_second")
_EPOCH_PREFIX = "nsr_"  # the measured noise-to-signal ratio per stage (nsde.train.EpochMetrics.flat)



def _is_epoch_key(key: str) -> bool:
    """A per-epoch curve (logged at step = epoch), not a number of the evaluation; MOASHA's rung
    results (`rung_<objective>`) are curves over the rungs."""
    return key in _EPOCH_KEYS or key.startswith((_EPOCH_PREFIX, RUNG_PREFIX))


def check_mlflow(uri: str, *, timeout: float = 5.0) -> None:
    """Raise ValueError, before any trial starts, when the tracking server can't be reached."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as err:
            raise ValueError(f"MLflow tracking server {uri} cannot be reached ({type(err).__name__}); "
                             f"start it (`mlflow server ...`) or pass another --mlflow-uri") from None
        if response.status_code != 200:
            raise ValueError(f"MLflow tracking server {uri} answered /health with HTTP {response.status_code}")
    elif scheme not in ("sqlite", "file", "") and not Path(uri).exists():
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - any failure means the store is unusable
            raise ValueError(f"MLflow tracking URI {uri} cannot be used: {err}") from None


def start_parent_run(client: MlflowClient, experiment: str, name: str, params: Mapping[str, Any],
                     space: dict) -> tuple[str, str]:
    """Create (or get) the experiment and the search's parent run; returns their ids."""
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=name, tags={ROLE_TAG: ROLE_SEARCH, SEARCH_TAG: name,
                                                         SPLIT_TAG: SPLIT_NOTE})
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    client.log_dict(run.info.run_id, space, SPACE_FILE)
    return exp_id, run.info.run_id


def find_parent_run(client: MlflowClient, experiment: str, name: str) -> tuple[str, str]:
    """The experiment and parent run ids of the search `name` (to resume it)."""
    exp = client.get_experiment_by_name(experiment)
    runs = [] if exp is None else client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{name}' and tags.`{ROLE_TAG}` = '{ROLE_SEARCH}'")
    if not runs:
        raise ValueError(f"no search named {name!r} in MLflow experiment {experiment!r} to resume")
    client.update_run(runs[0].info.run_id, status="RUNNING")
    return exp.experiment_id, runs[0].info.run_id


def check_resumed_block(client: MlflowClient, parent_run_id: str, name: str, points: str | None) -> None:
    """--resume of a block of a designed space must name the block the search ran (`--points`):
    another block would resume the Tune state with points it never had."""
    ran = client.get_run(parent_run_id).data.params.get("points")
    if ran != points:
        def shown(v):
            return f"--points {v}" if v else "no --points (every point)"
        raise ValueError(f"--resume: the search {name!r} ran {shown(ran)}, but this call has {shown(points)}; "
                         f"resume it with the same --points")


def close_lost_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, known: set[str]) -> list[str]:
    """Child runs still RUNNING for trials Tune no longer knows (started after the last experiment
    snapshot before a driver crash): mark them KILLED, tag nsde.status = lost. Returns their trial ids."""
    lost = []
    for run in client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'"):
        tid = run.data.tags.get(TRIAL_TAG)
        if run.info.status == "RUNNING" and tid not in known:
            client.set_tag(run.info.run_id, STATUS_TAG, LOST)
            client.set_terminated(run.info.run_id, "KILLED")
            lost.append(tid)
    return lost


def mlflow_ui_hint(uri: str, experiment_id: str, run_id: str) -> str:
    """The command (or URL) that shows the search's runs in the MLflow UI."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if urlparse(uri).scheme in ("http", "https"):
        return f"open {uri.rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {uri}   # then open http://127.0.0.1:5000/{page}"


# How long the tracker keeps retrying while an MLflow server is down, counted from the first
# failure, before it gives up on the writes still waiting (and says so).
OUTAGE_LIMIT_S = 600.0


def server_alive(uri: str, *, timeout: float = 2.0) -> bool:
    """Whether an http(s) tracking server answers /health (other stores: True)."""
    if urlparse(uri).scheme not in ("http", "https"):
        return True
    try:
        return requests.get(uri.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


class _Writer:
    """The tracker's MLflow writes, in order, on a thread of their own.

    Tune's event loop only queues a write, so a slow or unreachable tracking server never holds
    up training (MLflow's client alone retries a request for about two minutes). A write that
    fails while the server does not answer /health is retried, in order, with a backoff of up to
    15 s, until the server is back or `OUTAGE_LIMIT_S` has passed since the first failure; past
    it, writes are dropped and counted (`dropped`) while the server stays down, and go through
    again once it answers. What was dropped is replayed from Tune's records when the trials end
    (`replay_trials`). A write that fails with the server up is a fault of the write: it is
    re-raised by `drain`.
    """

    def __init__(self, uri: str, limit_s: float) -> None:
        self.uri, self.limit_s = uri, limit_s
        self.queue: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.down_since: float | None = None
        self.outages: list[tuple[float, float]] = []  # (start, end) of each outage the writes met
        self.dropped = 0
        self.error: BaseException | None = None
        self.seconds = 0.0  # time spent in writes (MLflow calls), for the overhead benchmark

    def submit(self, write) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="mlflow-tracker", daemon=True)
            self.thread.start()
        self.queue.put(write)

    def _loop(self) -> None:
        while True:
            write = self.queue.get()
            try:
                self._run(write)
            finally:
                self.queue.task_done()

    def _run(self, write) -> None:
        delay = 1.0
        while True:
            if self.down_since is not None and time.time() - self.down_since > self.limit_s:
                if not server_alive(self.uri):
                    self.dropped += 1
                    return
                self._back()
            start = time.perf_counter()
            try:
                write()
            except Exception as err:  # noqa: BLE001 - sorted below: the server's fault or the write's
                self.seconds += time.perf_counter() - start
                if server_alive(self.uri):
                    logger.error("an MLflow write failed: %s", err)
                    self.error = self.error or err
                    return
                if self.down_since is None:
                    self.down_since = time.time()
                    logger.warning("MLflow server %s does not answer; the search goes on and its tracking waits "
                                   "(up to %.0f s)", self.uri, self.limit_s)
                time.sleep(delay)
                delay = min(2 * delay, 15.0)
                continue
            self.seconds += time.perf_counter() - start
            if self.down_since is not None:
                self._back()
            return

    def _back(self) -> None:
        logger.warning("MLflow server %s is back after %.0f s; the waiting writes go through%s", self.uri,
                       time.time() - self.down_since,
                       f" ({self.dropped} dropped so far are replayed when the trials end)" if self.dropped else "")
        self.outages.append((self.down_since, time.time()))
        self.down_since = None

    def drain(self) -> None:
        """Wait until every queued write is made or dropped; re-raise a write's own fault."""
        while self.queue.unfinished_tasks:
            time.sleep(0.1)
        if self.error is not None:
            err, self.error = self.error, None
            raise err


class TrialTracker(Callback):
    """Tune callback: mirrors each trial into its child run (params, epochs, objectives, files).

    The hooks read what they need of the trial at once and queue the MLflow writes (`_Writer`),
    which run in order on a thread of their own; `on_experiment_end` waits for them."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, search_name: str,
                 state_file: Path | None = None, rungs_file: Path | None = None,
                 outage_limit_s: float = OUTAGE_LIMIT_S) -> None:
        self.uri, self.experiment_id, self.parent_run_id, self.search_name = uri, experiment_id, parent_run_id, search_name
        self.state_file = state_file
        self.rungs_file = rungs_file  # MOASHA's decisions (search.moasha), to say why a trial stopped
        self.outage_limit_s = outage_limit_s
        self.runs: dict[str, str] = {}  # trial id -> child run id
        self.started: dict[str, float] = {}  # trial id -> time of its first start (driver clock)
        self.wall_seconds: dict[str, float] = {}  # trial id -> start to end, as the driver sees it
        self.recoveries: list[tuple[str, float]] = []  # (trial id, time Tune saw it fail and scheduled a retry)
        self.restarts: list[tuple[str, float]] = []
        self.evaluated: set[str] = set()  # trials whose objectives are logged
        self.last_epoch: dict[str, int] = {}  # trial id -> last epoch logged (a retry resumes after it)
        self._writer: _Writer | None = None
        self._lock = threading.Lock()  # the writer thread updates runs / last_epoch / evaluated under it

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment (in its own thread, while the writer may be
        updating the tables): a consistent copy, without the thread, the queue or the lock."""
        with self.lock:
            state = {**self.__dict__, "runs": dict(self.runs), "last_epoch": dict(self.last_epoch),
                     "evaluated": set(self.evaluated)}
        return {**state, "_writer": None, "_lock": None}

    @property
    def lock(self) -> threading.Lock:
        if getattr(self, "_lock", None) is None:
            self._lock = threading.Lock()
        return self._lock

    @property
    def writer(self) -> _Writer:
        if getattr(self, "_writer", None) is None:
            self._writer = _Writer(self.uri, getattr(self, "outage_limit_s", OUTAGE_LIMIT_S))
        return self._writer

    @property
    def logging_seconds(self) -> float:
        return self.writer.seconds

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    def run_id(self, trial_id: str, config: Mapping[str, Any]) -> str:
        """The trial's child run (found again after a retry or a --resume, else created). Writer thread only."""
        if trial_id not in self.runs:
            run_id = self._find_or_create(trial_id, config)
            with self.lock:
                self.runs[trial_id] = run_id
        return self.runs[trial_id]

    def _find_or_create(self, trial_id: str, config: Mapping[str, Any]) -> str:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
        )
        if found:  # a retry, or a --resume: continue the trial's run, logging nothing twice
            run = found[0]
            history = self.client.get_metric_history(run.info.run_id, "val_accuracy")
            with self.lock:
                self.last_epoch[trial_id] = max((m.step for m in history), default=0)
                if "clean_accuracy" in run.data.metrics:
                    self.evaluated.add(trial_id)
            if not run.data.params:  # created just before an outage cut the write of its params
                self.client.log_batch(run.info.run_id, params=[Param(k, _param_value(v))
                                                               for k, v in flatten(config).items()])
            return run.info.run_id
        run = self.client.create_run(self.experiment_id, run_name=trial_id, tags={
            PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id, SEARCH_TAG: self.search_name,
            SPLIT_TAG: SPLIT_NOTE})
        params = [Param(k, _param_value(v)) for k, v in flatten(config).items()]
        self.client.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    # ----------------------------------------------------------------- Tune hooks
    # (each reads the trial now and queues the writes; the writes run on the writer's thread)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in self.started:  # a retry after a failure (a lost node): same child run
            self.restarts.append((trial.trial_id, time.time()))
        self.started.setdefault(trial.trial_id, time.time())
        tid, config = trial.trial_id, dict(trial.config)
        self.writer.submit(lambda: self.run_id(tid, config))

    def _end_now(self, trial_id: str) -> float:
        now = time.time()
        self.wall_seconds[trial_id] = now - self.started.get(trial_id, now)
        return now

    def _ended(self, run_id: str, trial_id: str, ended: float, status: str, run_status: int,
               tags: Mapping[str, str] | None = None) -> None:
        """Tag the trial's run with its status and end time (and `tags`), then close it."""
        # ENDED_TAG: the run's own end_time moves when a front member's model is logged later
        tags = {STATUS_TAG: status, ENDED_TAG: f"{ended:.3f}", **(tags or {})}
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, RunStatus.to_string(run_status))
        logger.info("trial %s %s after %.0f s (%d ended)", trial_id, status, self.wall_seconds.get(trial_id, 0.0),
                    len(self.wall_seconds))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tid, config, result = trial.trial_id, dict(trial.config), dict(result)
        self.writer.submit(lambda: self._log_result(tid, config, result))

    def _log_result(self, tid: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        run_id, ts = self.run_id(tid, config), _millis(result)
        # the epoch's curves at step = epoch, once per epoch (the last epoch arrives with the
        # evaluation; a DDP trial's final result repeats its last epoch)
        epoch = int(result.get("epoch", 0))
        metrics = []
        if epoch > self.last_epoch.get(tid, 0):
            # (nsr_* are finite: a non-finite activation stops training with a non-finite loss)
            metrics = [Metric(k, float(v), ts, epoch) for k, v in result.items() if _is_epoch_key(k)]
        evaluated = trial_status(result, errored=False) == COMPLETE and tid not in self.evaluated
        if evaluated:
            metrics += _evaluation_metrics(result, ts)
        self.client.log_batch(run_id, metrics=metrics)
        # (after the write: a write retried after an outage logs nothing twice, and nothing is skipped)
        with self.lock:
            self.last_epoch[tid] = max(epoch, self.last_epoch.get(tid, 0))
            if evaluated:
                self.evaluated.add(tid)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        tid, config = trial.trial_id, dict(trial.config)
        status = trial_status(trial.last_result, errored=False)  # pruned: stopped before its evaluation
        checkpoint = trial.checkpoint if status == COMPLETE else None
        tags = self._stop_tags(trial) if status == PRUNED else None
        ended = self._end_now(tid)

        def write() -> None:
            run_id = self.run_id(tid, config)
            if checkpoint is not None:
                self._log_outputs(run_id, checkpoint)
            self._ended(run_id, tid, ended, status, RunStatus.FINISHED, tags=tags)

        self.writer.submit(write)

    def _stop_tags(self, trial) -> dict[str, str]:
        """Where and why a scheduler stopped the trial (MOASHA's decision, when it made one)."""
        decision = read_decisions(self.rungs_file).get(trial.trial_id) if self.rungs_file else None
        if decision is not None:
            return {STOP_TAG: str(decision.epoch), STOP_REASON_TAG: decision.reason()}
        epoch = int((trial.last_result or {}).get("epoch", 0))
        return {STOP_REASON_TAG: f"stopped by the scheduler after epoch {epoch}, before its evaluation"}

    def on_experiment_end(self, trials, **info) -> None:
        writer = self.writer
        writer.drain()
        if writer.dropped:
            logger.warning("%d tracking writes were dropped while the MLflow server %s did not answer (past %.0f s); "
                           "they are replayed from the trial records", writer.dropped, self.uri, self.outage_limit_s)
        if self.state_file is not None:
            self.state_file.write_text(json.dumps({
                "started": self.started, "wall_seconds": self.wall_seconds, "recoveries": self.recoveries,
                "restarts": self.restarts, "logging_seconds": writer.seconds, "outages": writer.outages,
                "dropped_writes": writer.dropped}))

    @staticmethod
    def read_state(path: Path) -> dict[str, Any]:
        """What the tracker of the experiment that just ended wrote (empty fields without one)."""
        state = json.loads(path.read_text()) if path.exists() else {}
        return {"started": {}, "wall_seconds": {}, "recoveries": [], "restarts": [], "logging_seconds": 0.0,
                "outages": [], "dropped_writes": 0, **state}

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.recoveries.append((trial.trial_id, time.time()))
        logger.info("trial %s failed and will retry from its last checkpoint (%s)", trial.trial_id,
                    failure_reason(trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        tid, config = trial.trial_id, dict(trial.config)
        reason, ended = failure_reason(trial)[:4000], self._end_now(tid)
        self.writer.submit(lambda: self._ended(self.run_id(tid, config), tid, ended, trial_status(None, errored=True),
                                               RunStatus.FAILED, {FAILURE_TAG: reason}))

    def _log_outputs(self, run_id: str, checkpoint) -> None:
        with checkpoint.as_directory() as folder:
            for name in (REPORT_FILE, FIGURE_FILE):
                if (Path(folder) / name).exists():
                    self.client.log_artifact(run_id, str(Path(folder) / name))


def _evaluation_metrics(result: Mapping[str, Any], ts: int) -> list[Metric]:
    """A trial's evaluated numbers (objectives, intervals, checks, diagnostics) at step 0."""
    skip = {"epoch", "training_iteration", "time_this_iter_s", "timestamp", "pid"}
    return [Metric(k, float(v), ts, 0) for k, v in result.items()
            if k not in skip and not _is_epoch_key(k) and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(float(v))]


class TrackingUnavailable(ConnectionError):
    """The MLflow server does not answer where the search needs it; the message says how to finish."""


def replay_trials(tracker: TrialTracker, results: Sequence[Any]) -> int:
    """Complete every trial's child run from Tune's records, the source of truth: what the
    tracker's writes could not log (dropped in an outage past its limit, or never made because
    the driver stopped) is logged now, nothing twice. `results`: the `ray.tune.Result`s of the
    experiment. Returns how many runs needed something (0 when the tracking was complete).

    Per trial: its run (found by its tag, else created with its parameters), the epochs its
    `val_accuracy` history lacks, the evaluated numbers and files of a complete trial whose run
    lacks them, and the status tags and end of a run still open. Needs the server up."""
    client, fixed = tracker.client, 0
    for result in results:
        last = dict(result.metrics or {})
        if "trial_id" not in last:  # it never reported: nothing of it to track
            continue
        tid, config = str(last["trial_id"]), dict(result.config or {})
        run_id = tracker.run_id(tid, config)
        run = client.get_run(run_id)
        logged = {m.step for m in client.get_metric_history(run_id, "val_accuracy")}
        metrics: list[Metric] = []
        rows = result.metrics_dataframe
        for row in ([] if rows is None else rows.to_dict("records")):
            epoch = int(row.get("epoch", 0) or 0)
            if epoch > 0 and epoch not in logged:
                logged.add(epoch)
                metrics += [Metric(k, float(v), _millis(row), epoch) for k, v in row.items()
                            if _is_epoch_key(k) and isinstance(v, (int, float)) and math.isfinite(float(v))]
        status = trial_status(last, errored=result.error is not None)
        evaluated = status == COMPLETE and "clean_accuracy" not in run.data.metrics
        if evaluated:
            metrics += _evaluation_metrics(last, _millis(last))
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        if evaluated and result.checkpoint is not None and not client.list_artifacts(run_id):
            tracker._log_outputs(run_id, result.checkpoint)
        still_open = run.info.status not in ("FINISHED", "FAILED", "KILLED") or STATUS_TAG not in run.data.tags
        if still_open:
            ended = float(last.get("timestamp", time.time()))
            tracker.wall_seconds.setdefault(tid, ended - tracker.started.get(tid, ended))
            if status == FAILED:
                tags = {FAILURE_TAG: (last_error_line(result.error) or "unknown error")[:4000]}
            else:
                tags = tracker._stop_tags(SimpleNamespace(trial_id=tid, last_result=last)) if status == PRUNED else None
            tracker._ended(run_id, tid, ended, status, RunStatus.FAILED if status == FAILED else RunStatus.FINISHED,
                           tags=tags)
        fixed += bool(metrics or still_open)
    if fixed:
        logger.info("tracking completed from the Tune records: %d trial runs needed it", fixed)
    return fixed


def failure_reason(trial) -> str:
    """The last line of the trial's error (e.g. 'NonFiniteLossError: non-finite training loss ...')."""
    return last_error_line(trial.error_file) or "unknown error (see the trial's folder under the Tune storage path)"


def _param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def _millis(result: Mapping[str, Any]) -> int:
    return int(float(result.get("timestamp", 0)) * 1000)


# ------------------------------------------------------------------------ models


class NSDEPyfunc(mlflow.pyfunc.PythonModel):
    """An NSDE classifier as an MLflow model: spectrograms (N, 1, S, S) in [0, 1] -> class probabilities.

    `predict`'s type hints (numpy arrays in and out) are what MLflow reads to validate inputs;
    without them it warns at every import of this module."""

    def load_context(self, context) -> None:
        from nsde.train import load_checkpoint

        self.model = load_checkpoint(context.artifacts["checkpoint"], device="cpu")

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return torch.softmax(self.model(x), dim=-1).numpy()


def log_pareto_model(uri: str, run_id: str, checkpoint) -> None:
    """Log a Pareto-optimal trial's weights (`model.pt` of its final checkpoint) as an MLflow model."""
    # mlflow.pyfunc.log_model logs to the active run of the process-wide tracking URI: set both
    # for this call only, and put the caller's URI back.
    # MLflow logs a warning that a Python object is pickled: it is our own class, not user input.
    previous, quiet = mlflow.get_tracking_uri(), _Quiet()
    bar = os.environ.get(_PROGRESS_BAR)
    mlflow.set_tracking_uri(uri)
    logging.getLogger("mlflow.pyfunc").addFilter(quiet)
    os.environ[_PROGRESS_BAR] = bar or "false"  # one bar per file: noise
    try:
        _log_model(run_id, checkpoint)
    finally:
        mlflow.set_tracking_uri(previous)
        logging.getLogger("mlflow.pyfunc").removeFilter(quiet)
        if bar is None:
            os.environ.pop(_PROGRESS_BAR, None)


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _log_model(run_id: str, checkpoint) -> None:
    with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as tmp:
        src = Path(folder) / MODEL_FILE
        dst = Path(tmp) / MODEL_FILE
        dst.write_bytes(src.read_bytes())  # as_directory may hand a folder that vanishes on exit
        # the signature says what goes in and out; an input example would make MLflow run the model
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
            mlflow.pyfunc.log_model(
                name="model",
                python_model=NSDEPyfunc(),
                artifacts={"checkpoint": str(dst)},
                pip_requirements=["torch", "timm", "nsde-search"],
                signature=_signature(dst),
            )


def _signature(model_file: Path):
    """(N, 1, S, S) float32 spectrograms -> (N, K) class probabilities, any N and S."""
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    classes = int(torch.load(model_file, map_location="cpu", weights_only=False)["model_config"]["num_classes"])
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes))]))


# ----------------------------------------------------------------- the search's end


def child_run_ids(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """Trial id -> its child run (every trial the tracker saw, this session or before a --resume)."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
    return {r.data.tags[TRIAL_TAG]: r.info.run_id for r in runs if TRIAL_TAG in r.data.tags}


def log_numbers(client: MlflowClient, run_id: str, values: Mapping[str, float]) -> None:
    ts = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in values.items() if math.isfinite(v)])


def log_final(client: MlflowClient, record: TrialRecord, report: dict, *, baseline: bool) -> None:
    """A re-scored trial: its `final_` numbers, the final profile's report, whether it is the baseline."""
    log_numbers(client, record.run_id, {f"{FINAL_PREFIX}{k}": v for k, v in record.final.items()})
    client.log_dict(record.run_id, report, FINAL_REPORT_FILE)
    client.set_tag(record.run_id, BASELINE_TAG, str(baseline).lower())


def log_held_out(client: MlflowClient, record: TrialRecord, held: dict) -> None:
    """A tested trial: its `test_` numbers and its held-out record ({"seeds", "reports"})."""
    log_numbers(client, record.run_id, record.test)
    client.log_dict(record.run_id, held, TEST_FILE)


def front_records(records: Sequence[TrialRecord], front: Sequence[str], objectives, *, final: bool
                  ) -> list[dict[str, Any]]:
    """The front's members as PARETO_SEARCH_FILE / PARETO_FINAL_FILE hold them (validation numbers)."""
    by_id = {r.trial_id: r for r in records}
    table = []
    for tid in front:
        r = by_id[tid]
        values = r.numbers(final=final)
        table.append({"trial_id": tid, "run_id": r.run_id, "split": OBJECTIVE_SPLIT, **r.config,
                      **{o.name: values.get(o.name) for o in objectives},
                      **{f"{o.name}_low": values.get(f"{o.name}_low") for o in objectives},
                      **{f"{o.name}_high": values.get(f"{o.name}_high") for o in objectives},
                      "checks_failed": failed_checks(values)})
    return table


def log_importance(client: MlflowClient, parent_id: str, importance) -> None:
    """IMPORTANCE_FILE on the parent run: fANOVA per objective (`analysis.importance`), or why it
    was not computed."""
    client.log_dict(parent_id, importance.to_dict(), IMPORTANCE_FILE)


def log_parent(client: MlflowClient, parent_id: str, objectives, records: Sequence[TrialRecord],
               front: Sequence[str], change, timing: dict[str, Any]) -> None:
    """The search's own numbers: the fronts, how they moved, held-out estimates, timing, counts."""
    search_front = list(change.search_front) if change else list(front)
    client.log_dict(parent_id, front_records(records, search_front, objectives, final=False), PARETO_SEARCH_FILE)
    if change is not None:
        client.log_dict(parent_id, front_records(records, front, objectives, final=True), PARETO_FINAL_FILE)
        client.log_dict(parent_id, asdict(change), FRONT_CHANGE_FILE)
        client.set_tag(parent_id, FRONT_CHANGE_TAG, change.summary()[:4000])
    tested = {r.trial_id: r.test for r in records if r.test}
    if tested:
        client.log_dict(parent_id, tested, TEST_ESTIMATES_FILE)
    client.log_dict(parent_id, timing, TIMING_FILE)
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    ts = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(f"trials_{k}", v, ts, 0) for k, v in counts.items()]
                     + [Metric("pareto_size", len(front), ts, 0)])
    client.set_tag(parent_id, PARETO_TAG, ",".join(front))
