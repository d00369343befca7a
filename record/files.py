"""The files of a search, by name and schema: what `search` writes beside Tune's own files and
into MLflow, and what `analysis` reads back.

    <storage path>/<name>/search.json               SearchFile: objectives, final and test numbers
    <storage path>/<name>/final_reports/<id>.json   EvalReport.to_dict() of the final profile (val)
    <storage path>/<name>/test_reports/<id>.json    {"seeds": [...], "reports": [...]} on test
    <storage path>/<name>/rungs.json                the MOASHA rung tables and decisions
    <trial checkpoint>/model.pt, eval_report.json, attributions.png, data.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from record.objectives import OBJECTIVE_SPLIT, Objective

__all__ = ["DATA_FILE", "FIGURE_FILE", "FINAL_EVAL_SECONDS", "FINAL_FILE", "FINAL_REPORT_FILE", "FINAL_REPORTS",
           "MODEL_FILE", "REPORT_FILE", "RUNGS_FILE", "SEARCH_FILE", "TEST_EVAL_SECONDS", "TEST_FILE", "TEST_REPORTS",
           "TIMING_FILE", "SearchFile"]

SEARCH_FILE = "search.json"
TIMING_FILE = "timing.json"  # the search's steps in seconds (`<step>_s`), its trials' start and wall times
FINAL_EVAL_SECONDS = "final_eval_s"  # TIMING_FILE: re-scoring the front with the final profile
TEST_EVAL_SECONDS = "test_eval_s"  # TIMING_FILE: the held-out test scores
RUNGS_FILE = "rungs.json"  # search.moasha.RungTables.to_dict()
FINAL_REPORTS = "final_reports"
TEST_REPORTS = "test_reports"
# a trial's checkpoint folder; REPORT_FILE and FIGURE_FILE are also its MLflow artifacts
MODEL_FILE = "model.pt"  # weights + model config only (what load_checkpoint reads); logged to MLflow
REPORT_FILE = "eval_report.json"
FIGURE_FILE = "attributions.png"
DATA_FILE = "data.json"  # the data set's cache path and config
FINAL_FILE = "final.json"  # the trial's last result, so that a replayed finished trial repeats it
# MLflow artifacts of a trial's run beside REPORT_FILE: the final profile's report, the held-out record
FINAL_REPORT_FILE = "final_eval_report.json"
TEST_FILE = "test_eval_report.json"
SPLITS = {"objectives": OBJECTIVE_SPLIT, "final": OBJECTIVE_SPLIT, "test": "test"}


@dataclass
class SearchFile:
    """`search.json`: what `analysis.load_tune` needs beside Tune's own files."""

    name: str
    objectives: list[list[str]]  # [name, "max" | "min"]
    settings: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None  # the trial re-scored as the deterministic baseline
    final: dict[str, dict[str, float]] = field(default_factory=dict)  # trial id -> final profile's numbers
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # trial id -> `test_` numbers
    splits: dict[str, str] = field(default_factory=lambda: dict(SPLITS))
    front_change: dict[str, Any] | None = None
    run_ids: dict[str, str | None] = field(default_factory=dict)  # trial id -> MLflow child run
    mlflow: dict[str, str] = field(default_factory=dict)  # tracking_uri, experiment_id, parent_run_id

    @staticmethod
    def objective_pairs(objectives: tuple[Objective, ...]) -> list[list[str]]:
        return [[o.name, o.mode] for o in objectives]

    def write(self, folder: Path) -> Path:
        path = Path(folder) / SEARCH_FILE
        path.write_text(json.dumps(asdict(self), indent=2, default=str))
        return path

    @classmethod
    def read(cls, folder: Path) -> SearchFile | None:
        """The folder's `search.json`, or None when it has none (a search still running, or killed)."""
        path = Path(folder) / SEARCH_FILE
        if not path.exists():
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})
