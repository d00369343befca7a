"""A small finished search, made once per test session by the real CLI (`python -m search.run`
in a subprocess: its own local Ray, an MLflow SQLite store and a Tune folder in a temp dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY = Path(__file__).parents[1] / "search" / "tiny_space.yaml"


@dataclass(frozen=True)
class FinishedSearch:
    root: Path  # the working directory of the search (mlflow.db, mlruns/, runs/)
    uri: str
    experiment: str
    name: str
    stdout: str

    @property
    def tune_dir(self) -> Path:
        return self.root / "runs" / self.name


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory) -> FinishedSearch:
    root = tmp_path_factory.mktemp("search")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # 4 trials: the deterministic starting point and three sampled ones (seed 3 samples fBm and white)
    cmd = [sys.executable, "-m", "search.run", "--space", str(TINY), "--num-samples", "4", "--seed", "3",
           "--storage-path", "runs", "--mlflow-uri", uri, "--experiment", "analysis-test", "--name", "tiny"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    if proc.returncode != 0:
        pytest.fail(f"the search failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return FinishedSearch(root, uri, "analysis-test", "tiny", proc.stdout)

