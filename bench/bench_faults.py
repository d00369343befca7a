"""Time from a node's loss to the affected trials running again (a multi-node Ray cluster on
this machine, `ray.cluster_utils.Cluster`): a worker node with 2 running trials is killed
after their first checkpoint, a fresh node joins, Tune retries the trials from their checkpoints.

    .venv/bin/python bench/bench_faults.py

Reports, per affected trial: node killed -> Tune marks the trial failed (recover), -> the
trial runs again (on_trial_start on the new node), and the search's total time.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
import torch
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _first_epoch_seen(uri: str) -> bool:
    try:
        client = MlflowClient(uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        return bool(client.search_runs(ids, filter_string="metrics.val_accuracy >= 0"))
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return False


def main() -> int:
    from search.run import SearchSettings, run_search

    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    doomed = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, logging_level="WARNING")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    settings = SearchSettings(space=str(ROOT / "tests/search/fault_space.yaml"), num_samples=2,
                              storage_path=str(tmp / "runs"), mlflow_uri=uri, name="faults", final=False)
    out: list = []
    thread = threading.Thread(target=lambda: out.append(run_search(settings)), daemon=True)
    thread.start()
    while not _first_epoch_seen(uri):
        time.sleep(0.2)
    killed = time.time()
    cluster.remove_node(doomed, allow_graceful=False)
    cluster.add_node(num_cpus=2)
    joined = time.time()
    thread.join()
    timing = out[0].timing
    ray.shutdown()
    cluster.shutdown()
    rows = []
    for tid, t_restart in timing["restarts"]:
        t_recover = next(t for i, t in timing["recoveries"] if i == tid)
        rows.append({"trial": tid, "to_failure_detected_s": t_recover - killed,
                     "to_running_again_s": t_restart - killed, "new_node_join_s": joined - killed,
                     "search_total_s": timing["total_s"]})
    for r in rows:
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
    print("written:", write_results("faults", torch.device("cpu"), {"trials": 2, "epochs": 4, "preset": "tiny"}, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
