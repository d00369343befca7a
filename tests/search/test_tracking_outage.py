"""A tracking-server outage in the middle of a search: training goes on, the writes wait, and
every trial still ends with exactly one FINISHED child run holding all its numbers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import ray
import requests
from mlflow.tracking import MlflowClient

from search.run import SearchSettings, run_search

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(tmp_path: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on `port` over one store: a restart finds what the first process wrote."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        start_new_session=True)  # its own process group: `_kill` takes its workers down with it
    while True:  # healthy, or gone (pytest-timeout bounds a hang)
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode} before it answered /health")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)


def _kill(server: subprocess.Popen, port: int) -> None:
    """Kill the server and the workers it started (killing the parent alone leaves a worker
    serving the port), and wait until nothing answers there."""
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except requests.RequestException:
            return
        time.sleep(0.2)


@pytest.fixture
def start_server(tmp_path):
    """Starts `mlflow server` on a port over the test's store; every one still running at the
    end is killed with its workers (they run in sessions of their own)."""
    started: list[subprocess.Popen] = []

    def start(port: int) -> subprocess.Popen:
        started.append(_server(tmp_path, port))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until_an_epoch_is_tracked(uri: str, thread: threading.Thread) -> None:
    client = MlflowClient(uri)
    while True:
        assert thread.is_alive(), "the search ended before the outage"
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string="metrics.val_accuracy >= 0")
        if runs:
            return
        time.sleep(0.3)


def _check_children(client: MlflowClient, outcome) -> None:
    """One child run a trial, closed, every epoch once (none lost), the evaluation's numbers and files."""
    children = client.search_runs([outcome.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert sorted(c.data.tags["nsde.trial_id"] for c in children) == sorted(r.trial_id for r in outcome.rows)
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["nsde.status"] == "complete"
        assert "clean_accuracy" in child.data.metrics and "converged" in child.data.metrics
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2, 3, 4], steps
        assert "eval_report.json" in {a.path for a in client.list_artifacts(child.info.run_id)}


def _search_with_a_server(tmp_path: Path, start_server, **settings):
    """A server on a free port, a local Ray, and the settings of the two-trial fault search
    tracked there: (port, uri, server, settings)."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(port)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    return port, uri, server, SearchSettings(space=str(HERE / "fault_space.yaml"), num_samples=2,
                                             storage_path=str(tmp_path / "runs"), mlflow_uri=uri, final=False,
                                             **settings)


def _epochs_in_tune(folder: Path) -> int:
    """Results Tune has recorded so far (lines of every trial's result.json)."""
    return sum(p.read_text().count("\n") for p in folder.glob("*/result.json"))


def test_a_search_survives_a_tracking_server_outage(tmp_path, start_server):
    port, uri, server, settings = _search_with_a_server(tmp_path, start_server, name="outage")
    out: list = []
    thread = threading.Thread(target=lambda: out.append(run_search(settings)), daemon=True)
    try:
        thread.start()
        _wait_until_an_epoch_is_tracked(uri, thread)  # then the server goes down
        _kill(server, port)
        folder = tmp_path / "runs" / "outage"
        before = _epochs_in_tune(folder)
        while _epochs_in_tune(folder) < before + 2:  # training goes on while nothing can be tracked
            assert thread.is_alive(), "the search ended during the outage"
            time.sleep(0.3)
        start_server(port)  # back on the same store and port
        thread.join()
    finally:
        ray.shutdown()
    outcome = out[0]
    assert [r.status for r in outcome.rows] == ["complete", "complete"]
    _check_children(MlflowClient(uri), outcome)
    # nothing given up (a short outage may be absorbed by MLflow's own retries inside one write, so the
    # writer need not have seen it: the unit test below pins the writer's outage path)
    state = json.loads((tmp_path / "runs" / "outage" / "tracker.json").read_text())
    assert state["dropped_writes"] == 0 and outcome.timing["tracking_replayed"] == 0


def test_the_writer_keeps_order_retries_while_the_server_is_down_and_gives_up_past_its_limit():
    from search.tracking import _Writer

    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: the server is down
    writer, done, failures = _Writer(down, limit_s=60.0), [], {"left": 2}

    def flaky():  # fails twice (the server's fault: it does not answer), then goes through
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("refused")
        done.append("first")

    writer.submit(flaky)
    writer.submit(lambda: done.append("second"))
    writer.drain()
    assert done == ["first", "second"] and len(writer.outages) == 1 and writer.dropped == 0

    impatient = _Writer(down, limit_s=0.0)

    def never():
        raise ConnectionError("refused")

    impatient.submit(never)
    impatient.submit(lambda: done.append("late"))
    impatient.drain()
    assert impatient.dropped == 2 and done == ["first", "second"]  # past the limit: dropped, counted


def test_a_write_that_fails_with_the_server_up_is_raised_not_retried():
    from search.tracking import _Writer

    writer, calls = _Writer("sqlite:///unused.db", limit_s=60.0), []

    def broken():
        calls.append(1)
        raise ValueError("a bad metric name")

    writer.submit(broken)
    with pytest.raises(ValueError, match="bad metric name"):
        writer.drain()
    assert calls == [1]


def test_a_server_down_to_the_end_loses_nothing_and_resume_completes_the_tracking(tmp_path, monkeypatch,
                                                                                  start_server):
    """Past the outage limit the tracker drops its writes; the search ends in one line saying how
    to finish; once the server is back, --resume replays the tracking from Tune's records and
    trains nothing again."""
    from search.tracking import TrackingUnavailable

    # one try per MLflow request (its client would retry a refused request for about two minutes)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port, uri, server, settings = _search_with_a_server(tmp_path, start_server, name="down", tracking_outage_limit=1.0)
    out: list = []

    def search() -> None:
        try:
            out.append(run_search(settings))
        except Exception as err:  # noqa: BLE001 - the test reads it below
            out.append(err)

    thread = threading.Thread(target=search, daemon=True)
    try:
        thread.start()
        _wait_until_an_epoch_is_tracked(uri, thread)  # then the server goes down, to the end of the search
        _kill(server, port)
        thread.join()
        err = out[0]
        assert isinstance(err, TrackingUnavailable), err
        assert "--resume" in str(err) and "\n" not in str(err)
        folder = tmp_path / "runs" / "down"
        trained = _epochs_in_tune(folder)
        assert trained == 8  # both trials trained to the end while nothing could be tracked
        assert json.loads((folder / "tracker.json").read_text())["dropped_writes"] > 0

        start_server(port)
        outcome = run_search(replace(settings, resume=True))
    finally:
        ray.shutdown()
    assert _epochs_in_tune(folder) == trained  # nothing trained again
    assert [r.status for r in outcome.rows] == ["complete", "complete"]
    assert outcome.timing["tracking_replayed"] == 2
    client = MlflowClient(uri)
    _check_children(client, outcome)
    assert client.get_run(outcome.parent_run_id).info.status == "FINISHED"
