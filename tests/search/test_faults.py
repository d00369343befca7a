"""Faults on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster):
a worker node is removed while its trials run; they retry from their last checkpoint on
another node, the search finishes, and MLflow holds exactly one finished child run per trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from search.run import SearchSettings, run_search

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def _epoch_reported(uri: str) -> bool:
    """Some trial has reported (and checkpointed) at least one epoch."""
    try:
        client = MlflowClient(uri)
        exps = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in exps], filter_string="metrics.val_accuracy >= 0")
        return bool(runs)
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return False


def test_trials_on_a_lost_node_retry_from_their_checkpoint(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node runs no trial
    doomed = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, logging_level="WARNING")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out: list = []
    settings = SearchSettings(space=str(HERE / "fault_space.yaml"), num_samples=2, storage_path=str(tmp_path / "runs"),
                              mlflow_uri=uri, name="faults", max_failures=2, final=False)
    thread = threading.Thread(target=lambda: out.append(run_search(settings)), daemon=True)
    try:
        thread.start()
        # wait on states, not the clock: an epoch reported, or the search gone (pytest-timeout bounds a hang)
        while not _epoch_reported(uri):
            assert thread.is_alive(), "the search ended before any trial reported an epoch"
            time.sleep(0.5)
        cluster.remove_node(doomed, allow_graceful=False)
        cluster.add_node(num_cpus=2)
        thread.join()
    finally:
        if not thread.is_alive():
            ray.shutdown()
            cluster.shutdown()
    outcome = out[0]
    assert [r.status for r in outcome.rows] == ["complete", "complete"]
    assert outcome.timing["restarts"], "no trial was restarted, so the node loss hit nothing"

    client = MlflowClient(uri)
    children = client.search_runs([outcome.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert sorted(c.data.tags["nsde.trial_id"] for c in children) == sorted(r.trial_id for r in outcome.rows)
    for child in children:
        assert child.info.status == "FINISHED" and "clean_accuracy" in child.data.metrics
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2, 3, 4], steps  # resumed from the checkpoint: no epoch twice, none lost


def _children(client):
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string="tags.`nsde.trial_id` != ''")


def test_killed_driver_resumes_without_rerunning_or_duplicating(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--space", str(HERE / "fault_space.yaml"), "--num-samples", "3", "--max-concurrent", "1",
            "--name", "killed", "--storage-path", str(tmp_path / "runs"), "--mlflow-uri", uri, "--no-final"]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient(uri)
    try:
        while True:  # kill while the second trial is between epochs, after the first finished
            assert proc.poll() is None, "the search ended before it could be killed"
            try:
                runs = _children(client)
            except Exception:  # noqa: BLE001 - the store may not exist yet
                runs = []
            done = [r for r in runs if r.data.tags.get("nsde.status") == "complete"]
            busy = [r for r in runs if r.info.status == "RUNNING" and "val_accuracy" in r.data.metrics]
            if done and busy:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished_before = {r.data.tags["nsde.trial_id"] for r in done}
    results_before = {p.parent.name: p.read_text().count("\n") for p in (tmp_path / "runs/killed").glob("*/result.json")}

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        outcome = run_search(SearchSettings(space=str(HERE / "fault_space.yaml"), num_samples=3, max_concurrent=1,
                                            name="killed", storage_path=str(tmp_path / "runs"), mlflow_uri=uri,
                                            final=False, resume=True))
    finally:
        ray.shutdown()
    assert [r.status for r in outcome.rows] == ["complete"] * 3
    rerun = {t["trial_id"] for t in outcome.timing["trials"] if t["started_at"] is not None}
    for row in outcome.rows:
        if row.trial_id in finished_before and row.trial_id in rerun:
            # Tune's last snapshot predated its end: it was restarted, and repeated its stored
            # final result without training or evaluating again
            assert row.metrics.get("replayed") == 1.0, row.trial_id
        elif row.trial_id in finished_before:  # not restarted at all: nothing new reported
            folder = next(f for f in results_before if row.trial_id in f)
            assert (tmp_path / "runs/killed" / folder / "result.json").read_text().count("\n") == results_before[folder]

    children = _children(client)
    assert sorted(c.data.tags["nsde.trial_id"] for c in children) == sorted(r.trial_id for r in outcome.rows)
    assert all(c.info.status == "FINISHED" for c in children)
    for child in children:  # the interrupted trial continued from its checkpoint: every epoch once
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert sorted(steps) == [1, 2, 3, 4], (child.data.tags["nsde.trial_id"], steps)
    interrupted = busy[0].data.tags["nsde.trial_id"]
    assert interrupted in rerun
    # its training time counts the epochs before the kill too (their own seconds), not only the resumed ones
    child = next(c for c in children if c.data.tags["nsde.trial_id"] == interrupted)
    epoch_seconds = sum(m.value for m in client.get_metric_history(child.info.run_id, "seconds"))
    row = next(r for r in outcome.rows if r.trial_id == interrupted)
    assert row.metrics["train_seconds"] >= epoch_seconds > 0
    parents = client.search_runs([outcome.experiment_id], filter_string="tags.`nsde.role` = 'search'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"

    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.WAITING not in states  # the starting points were not queued again
