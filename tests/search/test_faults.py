"""Faults on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster):
a worker node is removed while its trials run; they retry from their last checkpoint on
another node, the search finishes, and MLflow holds exactly one finished child run per trial."""

from __future__ import annotations

import threading
import time
from pathlib import Path

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
        deadline = time.time() + 240
        while not _epoch_reported(uri):
            assert time.time() < deadline, "no trial reported an epoch within 240 s"
            time.sleep(0.5)
        cluster.remove_node(doomed, allow_graceful=False)
        cluster.add_node(num_cpus=2)
        thread.join(timeout=600)
        assert not thread.is_alive(), "the search did not finish after the node loss"
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
