"""search.run end to end, against a real local Ray, real MLflow stores (SQLite and an
`mlflow server` process) and a real Optuna study. Tiny data, 2-4 epoch trials."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import ray
import requests
from mlflow.tracking import MlflowClient

from analysis import load_search, load_tune, pareto_mask
from nsde.data import PRESETS, prepare
from nsde.train import load_checkpoint
from search.run import SearchSettings, format_front, main, run_search

HERE = Path(__file__).parent
TINY = str(HERE / "tiny_space.yaml")
OBJECTIVES = ("clean_accuracy", "sweep_area", "apgd_accuracy", "abc_auroc")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _children(client: MlflowClient, exp_id: str, parent_id: str):
    return client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def _check_tracking(outcome, uri: str, expected_seeds: int = 1) -> None:
    """Every trial once as a child run with its objectives; the parent's front matches them."""
    client = MlflowClient(uri)
    children = _children(client, outcome.experiment_id, outcome.parent_run_id)
    trial_ids = [c.data.tags["nsde.trial_id"] for c in children]
    assert sorted(trial_ids) == sorted(r.trial_id for r in outcome.rows)  # once each
    by_trial = {c.data.tags["nsde.trial_id"]: c for c in children}
    for row in outcome.rows:
        run = by_trial[row.trial_id]
        assert run.info.status == "FINISHED" and run.data.tags["nsde.status"] == "complete"
        for name in OBJECTIVES:
            assert run.data.metrics[name] == pytest.approx(row.metrics[name])
            assert run.data.metrics[f"{name}_low"] <= run.data.metrics[name] <= run.data.metrics[f"{name}_high"]
        epochs = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in epochs) == list(range(1, int(row.config["train/epochs"]) + 1))
        assert run.data.params["noise/shape"] == row.config["noise/shape"]
        # the measured noise-to-signal ratio of the injected noise, per stage and epoch
        nsr = [k for k in run.data.metrics if k.startswith("nsr_stage")]
        assert bool(nsr) == (row.config["noise/shape"] != "none"), sorted(run.data.metrics)
        for k in nsr:
            assert len(client.get_metric_history(run.info.run_id, k)) == len(epochs)
        # clean accuracy per sensor location
        assert any(k.startswith("location_acc_") for k in run.data.metrics)
        assert {"eval_report.json", "attributions.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        for k, v in row.final.items():  # every final number, the search values it keeps included
            if math.isfinite(v):
                assert run.data.metrics[f"final_{k}"] == pytest.approx(v), k

    # the parent holds the Pareto table; it is the front of the child runs' final numbers
    local = client.download_artifacts(outcome.parent_run_id, "pareto_final.json")
    table = json.loads(Path(local).read_text())
    assert [r["trial_id"] for r in table] == outcome.front
    final = [c for c in children if "final_clean_accuracy" in c.data.metrics]
    values = np.array([[c.data.metrics[f"final_{n}"] for n in OBJECTIVES] for c in final])
    on_front = {c.data.tags["nsde.trial_id"] for c, m in zip(final, pareto_mask(values, ["max"] * 4)) if m}
    assert on_front == set(outcome.front)
    for r in table:
        run = by_trial[r["trial_id"]]
        assert all(r[n] == pytest.approx(run.data.metrics[f"final_{n}"]) for n in OBJECTIVES)

    # the printed front shows each member with the runs' values
    printed = format_front(outcome)
    for r in table:
        line = next(line for line in printed.splitlines() if line.startswith(r["trial_id"]))
        assert f"{r['clean_accuracy']:.4g}" in line and f"{r['abc_auroc']:.4g}" in line
    # every trial's convergence diagnostics are MLflow metrics; 2 epochs are too few to tell, so
    # the printed front says plainly that it did not converge
    assert all(by_trial[r.trial_id].data.metrics["converged"] == r.metrics["converged"] == 0.0 for r in outcome.rows)
    assert f"NOT CONVERGED: {len(table)} of the {len(table)} front trials" in printed

    # Selection never sees the test split: every trial's objectives and every final number come
    # from validation examples only; the final front and the baseline, and only they, are scored
    # on test examples only, as test_* numbers.
    data = prepare(PRESETS["tiny"], progress=False)
    val, test = set(data.indices("val").tolist()), set(data.indices("test").tolist())

    def indices(report: dict) -> set[int]:
        return {i for part in report["per_example"].values() for i in part["index"]}

    def artifact(run, name: str) -> dict:
        return json.loads(Path(client.download_artifacts(run.info.run_id, name)).read_text())

    assert len(val & test) == 0
    for row in outcome.rows:
        run = by_trial[row.trial_id]
        searched = artifact(run, "eval_report.json")
        assert searched["split"] == "val" and indices(searched) <= val and len(indices(searched)) > 0
        if row.final:
            rescored = artifact(run, "final_eval_report.json")
            assert rescored["split"] == "val" and indices(rescored) <= val
        tested = "test_clean_accuracy" in run.data.metrics
        assert tested == (row.trial_id in outcome.front or run.data.tags.get("nsde.baseline") == "true")
        if tested:
            held = artifact(run, "test_eval_report.json")
            assert all(r["split"] == "test" and indices(r) <= test for r in held["reports"])
            seeds = int(outcome.row(row.trial_id).config["train/seed"])
            assert run.data.metrics["test_seeds"] == len(held["seeds"]) == expected_seeds
            assert held["seeds"] == [seeds + 1000 * k for k in range(expected_seeds)]
            lo, hi = run.data.metrics["test_clean_accuracy_low"], run.data.metrics["test_clean_accuracy_high"]
            assert 0.0 <= lo <= run.data.metrics["test_clean_accuracy"] <= hi <= 1.0
            for name in OBJECTIVES:
                if math.isfinite(row.test[f"test_{name}"]):  # nan (e.g. an undefined AUROC) is not logged
                    assert run.data.metrics[f"test_{name}"] == pytest.approx(row.test[f"test_{name}"])
        assert run.data.tags["nsde.splits"].startswith("objectives and final_*: val")
    assert "Held-out TEST estimates" in format_front(outcome)

    # Pareto-optimal models are MLflow models that predict like their checkpoints
    x = data.split("test").x[:5].float()
    tid = outcome.front[0]
    model = mlflow.pyfunc.load_model(f"runs:/{by_trial[tid].info.run_id}/model")
    probs = model.predict(x.numpy())
    assert probs.shape == (5, 16) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with outcome.row(tid).checkpoint.as_directory() as folder:
        ref = load_checkpoint(Path(folder) / "model.pt")
        expected = ref(x).softmax(-1).detach().numpy()
    assert np.allclose(probs, expected, atol=1e-5)


def test_search_end_to_end_with_sqlite_tracking(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    outcome = run_search(SearchSettings(space=TINY, num_samples=3, storage_path=str(tmp_path / "runs"),
                                        mlflow_uri=uri, name="e2e", seed=3, final_seeds=2))
    assert [r.status for r in outcome.rows] == ["complete"] * 3
    assert outcome.front and outcome.change is not None
    _check_tracking(outcome, uri, expected_seeds=2)
    # the Optuna study holds the three trials as COMPLETE with the reported values
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    reported = sorted(tuple(r.metrics[n] for n in OBJECTIVES) for r in outcome.rows)
    assert np.allclose(sorted(tuple(t.values) for t in study.trials), reported)
    # the first trial is the space's starting point: the deterministic baseline
    assert study.trials[0].params["noise/shape"] == "none"
    assert json.loads((outcome.experiment_dir / "timing.json").read_text())["trials"]
    assert outcome.report == outcome.experiment_dir / "report.html" and outcome.report.exists()
    assert outcome.timing["tracking_replayed"] == 0  # the tracker wrote everything: nothing to replay
    # the printed end names the dashboard command for this study, and the command is installed
    assert outcome.optuna_hint.startswith(f"optuna-dashboard sqlite:///{outcome.experiment_dir / 'optuna.db'} ")
    assert shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    uri = f"http://127.0.0.1:{port}"
    while True:  # wait on the server's state: healthy, or the process gone (pytest-timeout bounds a hang)
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode} before it answered /health")
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.5)
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def test_search_against_an_mlflow_server(local_ray, mlflow_server, tmp_path):
    mlflow.set_tracking_uri(mlflow_server)
    outcome = run_search(SearchSettings(space=TINY, num_samples=2, storage_path=str(tmp_path / "runs"),
                                        mlflow_uri=mlflow_server, name="http", seed=5))
    assert [r.status for r in outcome.rows] == ["complete"] * 2
    _check_tracking(outcome, mlflow_server)
    assert outcome.ui_hint.startswith(f"open {mlflow_server}/#/experiments/")


def test_stopped_trials_are_pruned_and_a_nan_trial_fails_cleanly(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchSettings(
        space=str(HERE / "stop_space.yaml"), num_samples=3, storage_path=str(tmp_path / "runs"), mlflow_uri=uri,
        name="asha", scheduler="asha", scheduler_metric="val_accuracy", grace_period=2, max_concurrent=1))
    status = {r.config["train/lr"]: r for r in outcome.rows}
    assert status[4e-3].status == "complete"
    assert status[1e-9].status == "pruned" and status[1e-9].metrics["epoch"] == 2  # stopped by ASHA at its rung
    assert status[1e30].status == "failed" and "non-finite training loss" in status[1e30].error

    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    states = {t.params["train/lr"]: t.state for t in study.trials}
    assert states == {4e-3: optuna.trial.TrialState.COMPLETE, 1e-9: optuna.trial.TrialState.PRUNED,
                      1e30: optuna.trial.TrialState.FAIL}
    complete = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert complete.values == pytest.approx([status[4e-3].metrics[n] for n in OBJECTIVES])

    client = MlflowClient(uri)
    runs = {r.data.tags["nsde.trial_id"]: r for r in _children(client, outcome.experiment_id, outcome.parent_run_id)}
    assert len(runs) == 3
    failed = runs[status[1e30].trial_id]
    assert failed.info.status == "FAILED" and "non-finite training loss" in failed.data.tags["nsde.failure"]
    pruned = runs[status[1e-9].trial_id]
    assert pruned.data.tags["nsde.status"] == "pruned"
    assert [m.step for m in client.get_metric_history(pruned.info.run_id, "val_accuracy")] == [1, 2]
    assert "clean_accuracy" not in pruned.data.metrics
    assert outcome.front == [status[4e-3].trial_id]

    # the report and the loaders see the same statuses, and the report names the failure
    search = load_search(run_id=outcome.parent_run_id, tracking_uri=uri)
    assert {tid: search.trials.loc[tid, "status"] for tid in search.trials.index} == {r.trial_id: r.status
                                                                                      for r in outcome.rows}
    assert load_tune(outcome.experiment_dir).trials["status"].sort_index().equals(search.trials["status"].sort_index())
    html = outcome.report.read_text()
    assert ">Failed trials<" in html and "non-finite training loss" in html


def test_moasha_stops_a_trial_at_its_rung_and_says_why_and_a_warm_start_reuses_the_search(local_ray, tmp_path):
    """The learning trial passes its rungs (alone there); the one that cannot learn meets it at
    the epoch-1 rung, ranks behind it on both objectives and stops: PRUNED in Optuna with its
    rung values, a pruned MLflow run with the rung and the reason, rung curves logged."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchSettings(
        space=str(HERE / "stop_space.yaml"), num_samples=2, storage_path=str(tmp_path / "runs"), mlflow_uri=uri,
        name="moasha", scheduler="moasha", grace_period=1, reduction_factor=2, max_concurrent=1,
        objectives="clean_accuracy,sweep_area", final=False))
    status = {r.config["train/lr"]: r for r in outcome.rows}
    learner, stuck = status[4e-3], status[1e-9]
    assert learner.status == "complete" and learner.metrics["epoch"] == 4
    assert stuck.status == "pruned" and stuck.metrics["epoch"] == 1 and stuck.metrics["rung_epoch"] == 1
    assert stuck.metrics["rung_clean_accuracy"] < learner.metrics["clean_accuracy"]

    study = optuna.load_study(study_name="moasha", storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    trials = {t.params["train/lr"]: t for t in study.trials if t.params}  # (the third point was never asked)
    assert trials[1e-9].state == optuna.trial.TrialState.PRUNED and trials[1e-9].values is None
    assert trials[1e-9].user_attrs["stopped_at_rung"] == 1
    assert trials[1e-9].user_attrs["rung_1"]["clean_accuracy"] == pytest.approx(stuck.metrics["rung_clean_accuracy"])
    assert trials[4e-3].state == optuna.trial.TrialState.COMPLETE
    assert set(trials[4e-3].user_attrs) == {"rung_1", "rung_2"}

    client = MlflowClient(uri)
    runs = {r.data.tags["nsde.trial_id"]: r for r in _children(client, outcome.experiment_id, outcome.parent_run_id)}
    pruned = runs[stuck.trial_id]
    assert pruned.data.tags["nsde.status"] == "pruned" and pruned.data.tags["nsde.stopped_at_rung"] == "1"
    assert pruned.data.tags["nsde.stop_reason"].startswith("stopped at the epoch-1 rung: ranked 2 of 2")
    assert "clean_accuracy" not in pruned.data.metrics  # its rung values never pass for its objectives
    curve = client.get_metric_history(runs[learner.trial_id].info.run_id, "rung_clean_accuracy")
    assert [m.step for m in curve] == [1, 2]

    # The next search warm-starts from this one: its study holds the earlier complete trial as a
    # prior trial (the pruned one stays out), which runs no Tune trial here.
    warm = run_search(SearchSettings(
        space=str(HERE / "stop_space.yaml"), num_samples=1, storage_path=str(tmp_path / "runs"), mlflow_uri=uri,
        name="warm", warm_start="moasha", objectives="clean_accuracy,sweep_area", final=False))
    assert len(warm.rows) == 1
    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{warm.experiment_dir / 'optuna.db'}")
    prior = [t for t in study.trials if "prior_trial_id" in t.user_attrs]
    assert [t.user_attrs["prior_trial_id"] for t in prior] == [learner.trial_id]
    assert prior[0].values == pytest.approx([learner.metrics["clean_accuracy"], learner.metrics["sweep_area"]])
    parent = client.get_run(warm.parent_run_id)
    assert parent.data.params["warm_start"] == "moasha" and parent.data.params["warm_start_trials"] == "1"
    assert "1 complete trials of search moasha" in warm.report.read_text()


def test_a_designed_space_runs_its_points_and_scores_each_on_test(local_ray, tmp_path, monkeypatch):
    from analysis.study import BASELINE, Study
    from nsde.metrics import EVAL_PROFILES

    # the rung profile plus a small randomized smoothing certification (profiles resolve on the driver)
    monkeypatch.setitem(EVAL_PROFILES, "rung-certify", {**EVAL_PROFILES["rung"], "smoothing_sigma": 0.25,
                                                        "smoothing_n0": 10, "smoothing_n": 50, "smoothing_subset": 8})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchSettings(space=str(HERE / "design_space.yaml"), storage_path=str(tmp_path / "runs"),
                                        mlflow_uri=uri, name="design", sampler="random",
                                        search_profile="rung-certify", final_profile="rung-certify"))
    # every point once (--num-samples defaulted to the 4 points), the seeds as the design set them
    runs = sorted((r.config["noise/shape"], r.config["train/seed"]) for r in outcome.rows)
    assert runs == [("none", 0), ("none", 1), ("white", 0), ("white", 1)]
    assert all(r.status == "complete" and r.test and not r.final for r in outcome.rows)  # tested; nothing re-scored
    assert outcome.change is None
    tests = sorted((outcome.experiment_dir / "test_reports").glob("*.json"))
    assert len(tests) == 4
    # the study's analysis pairs the noisy cell with the baseline seed by seed, from MLflow
    # (the noisy cell is crossed with input-noise augmentation: a cell of its own)
    cell = "white sigma=0.3 augment=gaussian s=0..0.1 adv=0.5 steps=1"
    search = load_search(run_id=outcome.parent_run_id, tracking_uri=uri)
    study = Study.of(search)
    assert study.cells() == [BASELINE, cell] and study.pair(cell)[2] == [0, 1]
    paired = study.paired()
    assert paired.loc[(cell, "clean_accuracy")]["seeds"] == 2
    assert len(paired.loc[cell]) == len(paired.index.get_level_values("metric").unique())
    # every trial recorded its convergence diagnostics in MLflow (1 epoch: too short to tell)
    assert (search.trials["converged"] == 0.0).all() and (search.trials["best_epoch"] == 1.0).all()
    assert study.convergence()["trials"].tolist() == [2, 2]
    # certified accuracy (randomized smoothing) on validation and on test, for every trial
    assert search.trials["certified_accuracy"].notna().all() and search.trials["test_certified_accuracy"].notna().all()
    html = outcome.report.read_text()  # the report shows the study beside its usual sections
    assert "The designed study: each cell against the baseline" in html and cell in html
    assert "How many of each cell's trials converged" in html and "converged trials" in html
    assert "Every complete trial of the design, scored once on the test split" in html


def _closed_port() -> int:
    return _free_port()  # bound, then released: nothing listens there


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nope"], "unknown search space 'nope'; known spaces"),
        (["--mlflow-uri", "http://127.0.0.1:{port}"], "MLflow tracking server http://127.0.0.1:{port} cannot be reached"),
        (["--address", "127.0.0.1:{port}"], "Ray cluster at 127.0.0.1:{port} cannot be reached"),
        (["--objectives", "clean_accuracy,speed"], "unknown objective 'speed'"),
        (["--num-samples", "0"], "`--num-samples >= 1` must hold, but got 0"),
        (["--scheduler", "asha", "--scheduler-metric", "clean_accuracy"], "must be a per-epoch metric"),
        (["--scheduler", "asha", "--grace-period", "5"], "`--grace-period < epochs` must hold for ASHA"),
        (["--address", "ray://127.0.0.1:10001"], "Ray Client (ray://) is not supported"),
        (["--scheduler", "moasha", "--reduction-factor", "1"], "`--reduction-factor > 1` must hold, but got 1.0"),
        (["--rung-audit"], "--rung-audit audits MOASHA's rule: it needs --scheduler moasha, but got --scheduler fifo"),
        (["--rung-brackets", "2"], "--rung-brackets splits MOASHA's trials into brackets: it needs --scheduler moasha"),
        (["--scheduler", "moasha", "--rung-brackets", "9"], "`--rung-brackets <= "),
        (["--rung-extrapolate"], "--rung-extrapolate changes MOASHA's ranking: it needs --scheduler moasha"),
        (["--warm-start", "nope"], "--warm-start nope: no MLflow store at sqlite:///mlflow.db"),
        (["--constraint", "clean>=0.7"], "--constraint 'clean>=0.7': unknown metric 'clean'"),
        (["--constraint", "clean_accuracy>0.7"], "must read METRIC>=BOUND or METRIC<=BOUND"),
        (["--space", "study", "--num-samples", "46"], "--num-samples 46: the designed space 'study' has 45 points"),
        (["--space", "study", "--scheduler", "moasha"], "a designed space ('study') runs every point to the end"),
        (["--space", "study", "--warm-start", "x"], "--warm-start: a designed space ('study') samples nothing"),
        (["--space", "study", "--final-seeds", "3"], "--final-seeds: a designed space's ('study') training seeds"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_trial(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    ray_before = ray.is_initialized()
    rc = main([a.format(port=port) for a in args] + ["--storage-path", str(tmp_path / "runs")])
    assert rc == 2
    assert message.format(port=port) in capsys.readouterr().err
    # nothing started: no Ray, no Tune folder, no MLflow store
    assert ray.is_initialized() == ray_before
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_invalid_range_in_a_user_space_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text("params:\n  noise/sigma: {low: -0.1, high: 0.5}\n")
    assert main(["--space", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "noise/sigma: `0.0 <= value` must hold, but got -0.1" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "search.run", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=True).stdout
    for opt in ("--space", "--num-samples", "--objectives", "--sampler", "--scheduler", "--gpus-per-trial",
                "--cpus-per-trial", "--max-concurrent", "--address", "--storage-path", "--mlflow-uri", "--name",
                "--seed", "--preset", "--search-profile", "--final-profile", "--reduction-factor", "--rung-profile",
                "--warm-start", "--constraint"):
        assert opt in out


def test_final_tasks_share_a_local_machine_without_a_last_round_on_one_core(monkeypatch):
    """task_cpus: fewer tasks than cores -> several cores each; up to twice as many -> a fraction
    each, all at once; more -> one core each (rounds); on a cluster or a GPU the trial's share."""
    from types import SimpleNamespace

    from search.final import task_cpus

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    ctx = SimpleNamespace(settings=SimpleNamespace(gpus_per_trial=0.0, address=None, cpus_per_trial=1.0))
    assert [task_cpus(ctx, n) for n in (1, 2, 3, 4, 5)] == [2.0, 1.0, 2 / 3, 0.5, 1.0]
    ctx.settings.address = "auto"
    assert task_cpus(ctx, 3) == 1.0
    ctx.settings.address, ctx.settings.gpus_per_trial = None, 0.5
    assert task_cpus(ctx, 3) == 1.0
