"""A DDP trial on CPU: Ray Train's TorchTrainer with two gloo workers inside a Tune trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from search.run import SearchSettings, run_search

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def test_ddp_trial_reports_every_epoch_and_evaluates_once(tmp_path):
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING")  # 1 trial process + 2 workers
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        outcome = run_search(SearchSettings(space=str(HERE / "tiny_space.yaml"), num_samples=1, ddp_workers=2,
                                            storage_path=str(tmp_path / "runs"), mlflow_uri=uri, name="ddp",
                                            final=False))
    finally:
        ray.shutdown()
    (row,) = outcome.rows
    assert row.status == "complete" and row.metrics["ddp_workers"] == 2
    client = MlflowClient(uri)
    steps = [m.step for m in client.get_metric_history(row.run_id, "val_accuracy")]
    assert sorted(steps) == [1, 2]  # rank 0's epochs reached Tune and MLflow, once each
    metrics = client.get_run(row.run_id).data.metrics
    assert all(k in metrics for k in ("clean_accuracy", "sweep_area", "apgd_accuracy", "abc_auroc"))
    # the evaluation ran once, in the trial: no worker wrote an evaluation report
    ddp_folder = tmp_path / "runs" / "ddp-ddp"
    assert list(ddp_folder.rglob("checkpoint.pt")) and not list(ddp_folder.rglob("eval_report.json"))
    with row.checkpoint.as_directory() as folder:
        assert (Path(folder) / "eval_report.json").exists()
