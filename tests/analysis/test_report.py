"""The report, the loaders and the CLI against a real search made by `python -m search.run`."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis import hypervolume, hypervolume_progress, load_search, load_tune, paired_versus_baseline, reference_point
from analysis.compare import baseline_id
from analysis.report import check_table, held_out_table, main

pytestmark = pytest.mark.slow

SECTIONS = ("Pareto front", "Held-out test estimates", "Paired comparison with the baseline (test split)",
            "Deterministic (sigma 0) vs NSDE models", "Sanity checks of the attack", "Objectives pairwise",
            "Search profile vs final profile", "Parameters and objectives", "Hypervolume over the search",
            "Which parameter matters for which objective", "Noise-sweep curves", "Attributions", "All trials")
PNG = b"\x89PNG\r\n\x1a\n"


def report_path(stdout: str) -> Path:
    """The report path `python -m search.run` prints last."""
    match = re.search(r"^Report: (.+)$", stdout, re.MULTILINE)
    assert match, f"no 'Report: ...' line in the search's output:\n{stdout[-2000:]}"
    return Path(match.group(1).strip())


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_the_search_prints_a_self_contained_report(finished_search):
    path = report_path(finished_search.stdout)
    assert path.parent == finished_search.tune_dir.resolve() and path.exists()
    html = path.read_text()
    for section in SECTIONS:
        assert f">{section}<" in html, section
    # self-contained: no scripts, no links, every image inline and a real PNG
    assert "<script" not in html and "href=" not in html and 'src="http' not in html
    images = _images(html)
    assert len(images) >= 7 and all(img.startswith(PNG) for img in images)
    search = load_search(finished_search.experiment, tracking_uri=finished_search.uri)
    for tid in search.trials.index:
        assert tid in html
    # every table names its split: validation for the search and its fronts, test for the held-out numbers
    assert html.count("Split: <b>test</b>") >= 1 and html.count("Split: <b>validation</b>") >= 4
    held = html[html.index(">Held-out test estimates<"):html.index(">Deterministic (sigma 0) vs NSDE models<")]
    assert "Split: <b>test</b>" in held and "Split: <b>validation</b>" not in held
    for tid in search.trials.index[search.trials["tested"]]:
        assert tid in held
    checks = html[html.index(">Sanity checks of the attack<"):html.index(">Objectives pairwise<")]
    assert "eps_zero" in checks and "large_eps" in checks and ("pass" in checks or "FAIL" in checks)
    assert "Validation split" in html  # figure captions name the split
    importance = html[html.index(">Which parameter matters for which objective<"):html.index(">Noise-sweep curves<")]
    assert "not computed: 4 complete trials" in importance  # 4 trials are too few to rate parameters
    # the report is also an artifact of the search's parent run
    parent = search.source.rsplit(" ", 1)[-1]
    assert "report.html" in {a.path for a in MlflowClient(finished_search.uri).list_artifacts(parent)}


def test_a_tune_folder_reads_by_a_relative_path(finished_search, monkeypatch):
    # Tune's reader takes a relative path for a URI without a scheme and fails; load_tune resolves it
    folder = Path(finished_search.tune_dir)
    monkeypatch.chdir(folder.parent)
    assert sorted(load_tune(folder.name).trials.index) == sorted(load_tune(folder).trials.index)


def test_mlflow_and_the_tune_folder_give_the_same_search(finished_search):
    a = load_search(finished_search.experiment, tracking_uri=finished_search.uri)
    b = load_tune(finished_search.tune_dir)
    assert a.name == b.name == "tiny" and a.status == b.status == "FINISHED"
    assert a.objectives == b.objectives and len(a.objectives) == 4
    assert sorted(a.trials.index) == sorted(b.trials.index) and len(a.trials) == 4
    ta, tb = a.trials.sort_index(), b.trials.sort_index()
    assert (ta["status"] == "complete").all() and (ta["status"] == tb["status"]).all()
    assert (ta["run_id"] == tb["run_id"]).all()
    assert (ta["deterministic"] == tb["deterministic"]).all() and ta["deterministic"].sum() >= 1
    assert a.varied_params == b.varied_params and "noise/shape" in a.varied_params
    for col in a.varied_params:
        assert ta[col].astype(str).tolist() == tb[col].astype(str).tolist(), col
    cols = [p + n + s for n in a.objective_names for p in ("", "final_") for s in ("", "_low", "_high")]
    cols += [p + n for n in ("val_accuracy", "train_seconds") for p in ("", "final_")]  # kept search values
    assert np.allclose(ta[cols].to_numpy(float), tb[cols].to_numpy(float), equal_nan=True)
    assert a.has_final and b.has_final and (ta["rescored"] == tb["rescored"]).all()
    assert ta.loc[ta["rescored"], "final_val_accuracy"].notna().all()
    # held-out numbers: search.json's "test" and the runs' test_ metrics give the same columns
    test_cols = [f"test_{n}{s}" for n in a.objective_names for s in ("", "_low", "_high", "_n")]
    test_cols += ["test_seeds", "test_checks_passed", "checks_passed", "final_checks_passed"]
    assert np.allclose(ta[test_cols].to_numpy(float), tb[test_cols].to_numpy(float), equal_nan=True)
    for col in ("tested", "flagged", "final_flagged"):
        assert (ta[col] == tb[col]).all(), col
    tested = sorted(ta.index[ta["tested"]])
    assert tested == sorted(set(a.front(final=True)) | {baseline_id(a, final=True)})
    assert a.has_test and b.has_test and (ta.loc[tested, "test_seeds"] == 1).all()
    assert ta.loc[tested, "test_clean_accuracy"].between(0, 1).all()
    assert a.front(final=True) == b.front(final=True) and a.front() == b.front()
    assert (ta["baseline"] == tb["baseline"]).all() and ta["baseline"].sum() == 1
    tid = a.front(final=True)[0]
    for final in (False, True):
        assert a.eval_report(tid, final=final) == b.eval_report(tid, final=final) is not None
    assert a.eval_report(tid)["split"] == a.eval_report(tid, final=True)["split"] == "val"
    record = a.test_report(tid)
    assert record == b.test_report(tid) is not None
    assert record["seeds"] == [3] and [r["split"] for r in record["reports"]] == ["test"]
    untested = [t for t in ta.index if not ta.loc[t, "tested"]]
    assert all(a.test_report(t) is None and b.test_report(t) is None for t in untested)
    assert a.artifact(tid, "attributions.png").read_bytes().startswith(PNG)
    assert b.artifact(tid, "attributions.png").read_bytes().startswith(PNG)


def test_the_front_and_hypervolume_match_the_search_records(finished_search):
    search = load_search(finished_search.experiment, search="tiny", tracking_uri=finished_search.uri)
    parent = MlflowClient(finished_search.uri).get_run(search.source.rsplit(" ", 1)[-1])
    assert search.front(final=True) == parent.data.tags["nsde.pareto_trials"].split(",")
    record = json.loads((finished_search.tune_dir / "search.json").read_text())
    assert record["front_change"]["search_front"] == search.front()
    # dominated trials add nothing: the front alone has the hypervolume of every trial
    values = search.values()
    ref = reference_point(values, search.objectives)
    front = search.trials.index.get_indexer(search.front())
    total = hypervolume(values, search.directions, ref)
    assert total > 0 and hypervolume(values[front], search.directions, ref) == pytest.approx(total)
    counted = search.trials.assign(status=np.where(search.eligible(), search.trials["status"], "flagged"))
    progress = hypervolume_progress(counted, search.objectives, ref)
    assert len(progress) == 4 and progress["hypervolume"].iloc[-1] == pytest.approx(total)
    assert progress["hypervolume"].is_monotonic_increasing and (np.diff(progress["seconds"]) >= 0).all()


def test_the_held_out_tables_and_the_paired_comparison(finished_search):
    search = load_tune(finished_search.tune_dir)
    front, base = search.front(final=True), baseline_id(search, final=True)
    held = held_out_table(search)
    assert list(held.index) == front + ([base] if base not in front else [])
    assert "baseline" in held.loc[base, "role"] and (held["seeds"] == 1).all()
    assert (held["clean_accuracy n"] > 0).all()
    paired = paired_versus_baseline(search, resamples=200)
    members = [t for t in front if t != base]
    assert list(paired.index) == [(t, n) for t in members for n in search.objective_names]
    if members:  # the two test reports were scored on the same examples, so they pair
        assert paired["p"].dropna().between(0, 1).all() and (paired["n"] > 0).all()
        accuracy = paired.xs("clean_accuracy", level="objective")
        assert accuracy["mcnemar_p"].between(0, 1).all()
        t = members[0]
        expected = search.trials.loc[t, "test_clean_accuracy"] - search.trials.loc[base, "test_clean_accuracy"]
        assert accuracy.loc[t, "difference"] == pytest.approx(expected)
    checks = check_table(search)
    assert set(front) | {base} <= set(checks.index)
    assert set(checks[["eps_zero", "large_eps"]].to_numpy().ravel()) <= {"pass", "FAIL", "n/a"}


def test_the_report_command(finished_search, tmp_path, capsys):
    out, figures = tmp_path / "r.html", tmp_path / "figures"
    assert main(["--experiment", finished_search.experiment, "--tracking-uri", finished_search.uri,
                 "--out", str(out), "--figures", str(figures)]) == 0
    assert f"report: {out.resolve()}" in capsys.readouterr().out
    assert len(_images(out.read_text())) >= 7
    assert {"scatter_matrix.png", "hypervolume.png", "sweep_curves.png"} <= {p.name for p in figures.iterdir()}
    assert main(["--tune-dir", str(finished_search.tune_dir), "--out", str(tmp_path / "t.html")]) == 0
    assert ">Pareto front<" in (tmp_path / "t.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--experiment", "nope"], "no MLflow experiment 'nope'"),
    (["--experiment", "analysis-test", "--search", "nope"], "no search named 'nope'"),
    (["--run-id", "0123456789abcdef"], "no MLflow run '0123456789abcdef'"),
    (["--tune-dir", "/nonexistent/search"], "is not a Tune experiment folder"),
])
def test_bad_sources_are_one_line_errors(finished_search, args, message, capsys):
    assert main([*args, "--tracking-uri", finished_search.uri]) == 2
    assert message in capsys.readouterr().err
