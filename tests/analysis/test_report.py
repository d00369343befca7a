"""The report, the loaders and the CLI against a real search made by `python -m search.run`."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis import hypervolume, hypervolume_progress, load_search, load_tune, reference_point
from analysis.report import main

pytestmark = pytest.mark.slow

SECTIONS = ("Pareto front", "Deterministic (sigma 0) vs NSDE models", "Objectives pairwise",
            "Search profile vs final profile", "Parameters and objectives", "Hypervolume over the search",
            "Noise-sweep curves", "Attributions", "All trials")
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
    # the report is also an artifact of the search's parent run
    parent = search.source.rsplit(" ", 1)[-1]
    assert "report.html" in {a.path for a in MlflowClient(finished_search.uri).list_artifacts(parent)}


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
    assert a.front(final=True) == b.front(final=True) and a.front() == b.front()
    assert (ta["baseline"] == tb["baseline"]).all() and ta["baseline"].sum() == 1
    tid = a.front(final=True)[0]
    for final in (False, True):
        assert a.eval_report(tid, final=final) == b.eval_report(tid, final=final) is not None
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
    progress = hypervolume_progress(search.trials, search.objectives, ref)
    assert len(progress) == 4 and progress["hypervolume"].iloc[-1] == pytest.approx(total)
    assert progress["hypervolume"].is_monotonic_increasing and (np.diff(progress["seconds"]) >= 0).all()


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
