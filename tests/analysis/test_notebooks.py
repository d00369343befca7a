"""Every notebook in notebooks/ is stored without outputs and runs, top to bottom, on a real search."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["pareto_fronts.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_finished_search(path, finished_search, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "store notebooks without outputs"
    monkeypatch.setenv("NSDE_TRACKING_URI", finished_search.uri)
    monkeypatch.setenv("NSDE_EXPERIMENT", finished_search.experiment)
    monkeypatch.setenv("NSDE_SEARCH", finished_search.name)
    # the kernel inherits this environment; a failing cell raises CellExecutionError
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # scatter matrix, hypervolume, sweep, shift, parallel coordinates, attributions
    text = "".join(o.get("text", "") for o in outputs)
    assert finished_search.uri in text  # it read the search it was pointed at
    assert "front (final profile)" in text
    # the held-out test table, the paired comparison with the baseline and the attack's checks
    shown = "".join(o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "attack checks (test)" in shown
    assert "difference [95 % interval]" in shown or "no paired comparison" in shown
    assert "eps_zero" in shown
