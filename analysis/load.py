"""A finished (or running) search as a pandas DataFrame, from MLflow or from a Tune folder.

    search = load_search(experiment="nsde-search")              # the latest search in it
    search = load_search(run_id="3f2a...")                      # a search's parent run
    search = load_tune("runs/default-20261126-081617")          # the Tune folder, no MLflow
    search.trials                                               # one row a trial
    trials = load_runs("nsde-search")                           # the table alone

`Search.trials` is indexed by Tune's trial id and holds: `run_id` (the MLflow child run),
`status` (complete | pruned | failed; from MLflow also lost | running), `failure`,
`started` / `ended` (seconds since the epoch), `deterministic` (sigma 0: no noise),
`baseline` (the deterministic trial the search re-scored as its baseline), `rescored` (the
final profile re-scored it), `tested` (it has held-out test numbers), `flagged` /
`final_flagged` (its attack failed a sanity check, `checks_passed` == 0, in the search /
final profile's numbers), one column per config key (`"noise/hurst"`, ...;
`Search.params`), every metric the trial reported (the objectives with `_low` / `_high`,
their 95 % interval, and `_n`; `check_*` and `checks_passed`), `final_<metric>` for the
re-scored trials and `test_<metric>` for the tested ones (NaN for the others).

Splits: every number that steers the search (the trials' metrics, both fronts, the
`final_` numbers) comes from the VALIDATION split; only the `test_` numbers (the final front
and the baseline, scored once, `test_seeds` training seeds each) come from the TEST split.
Both loaders read the same table: MLflow from the runs' metrics, a Tune folder from its
`search.json` ("final", "test") and result files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.hypervolume import reference_point
from analysis.pareto import knee_index, pareto_mask, to_maximise
from record import (
    CHECKS_PASSED,
    COMPLETE,
    FINAL_PREFIX,
    FINAL_REPORT_FILE,
    FINAL_REPORTS,
    REPORT_FILE,
    RUNGS_FILE,
    RUNNING,
    SEARCH_FILE,
    TEST_FILE,
    TEST_PREFIX,
    TEST_REPORTS,
    TIMING_FILE,
    TRAINING_METRICS,
    Constraint,
    Objective,
    SearchFile,
    TrialRecord,
    baseline_trial,
    feasible,
    from_result,
    parse_constraints,
    parse_objectives,
    profile_prefix,
)
from record.schema import (
    BASELINE_TAG,
    ENDED_TAG,
    FAILURE_TAG,
    FRONT_CHANGE_FILE,
    PARENT_TAG,
    ROLE_SEARCH,
    ROLE_TAG,
    SEARCH_TAG,
    SPACE_FILE,
    STATUS_TAG,
    TRIAL_TAG,
)

__all__ = ["Search", "add_source_arguments", "load_runs", "load_search", "load_tune", "search_from_arguments",
           "trials_frame"]

CHECKS = CHECKS_PASSED


@dataclass
class Search:
    """One search: its trials and where its files are.

    Attributes:
        name: the search's name (`--name`).
        trials: one row a trial (see the module docstring).
        objectives: (name, "max" | "min") pairs, as the search optimised them.
        params: the config columns of `trials`, e.g. "noise/hurst".
        status: the parent run's status (FINISHED, RUNNING, FAILED, KILLED) or "unknown".
        source: where it was read from (an MLflow URI and run id, or a Tune folder).
        space, settings, front_change, timing: the search's own records (empty when absent);
            `settings["keep_flagged"]` (`--keep-flagged`) lets flagged trials onto the fronts.
        rungs: MOASHA's rung tables and decisions (`record.RUNGS_FILE`; empty without MOASHA);
            with `--rung-audit`, `rung_audit()` sets them against how the trials ended.
    """

    name: str
    trials: pd.DataFrame
    objectives: tuple[tuple[str, str], ...]
    params: list[str]
    status: str
    source: str
    space: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    front_change: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    rungs: dict = field(default_factory=dict)
    fetch: Callable[[str, str], Path | None] | None = field(default=None, repr=False)

    @classmethod
    def from_records(cls, name: str, records: Sequence[TrialRecord], objectives: Sequence[Objective], *,
                     baseline: str | None = None, **fields: Any) -> Search:
        """A search from its trial records (what the loaders read, and what `search.run` holds
        at the end of a search); `fields`: the other attributes (status, source, settings, ...)."""
        fields.setdefault("status", "unknown")
        fields.setdefault("source", "trial records")
        return cls(name=name, trials=trials_frame(records, objectives, baseline=baseline),
                   objectives=tuple((o.name, o.mode) for o in objectives),
                   params=sorted({k for r in records for k in r.config}), **fields)

    def rung_audit(self) -> pd.DataFrame:
        """`analysis.rungs.rung_audit` of this search: per rung and objective, how the rung ranked
        the trials against their final values (the search profile's, validation) and which front
        members the rule stopped (or, in an audit, would have stopped). Empty without rung tables."""
        from analysis.rungs import rung_audit

        if not self.rungs:
            return pd.DataFrame()
        return rung_audit(self.rungs, self.trials[self.objective_names], self.objective_names, self.front())

    @property
    def directions(self) -> list[str]:
        return [mode for _, mode in self.objectives]

    @property
    def objective_names(self) -> list[str]:
        return [name for name, _ in self.objectives]

    @property
    def varied_params(self) -> list[str]:
        """The config columns that take more than one value (the searched ones)."""
        return [p for p in self.params if self.trials[p].astype(str).nunique() > 1]

    @property
    def has_final(self) -> bool:
        """Whether the search re-scored trials with the final profile (validation split)."""
        return bool(self.trials["rescored"].any()) if "rescored" in self.trials else False

    @property
    def has_test(self) -> bool:
        """Whether the search scored trials on the held-out test split (`test_` columns)."""
        return bool(self.trials["tested"].any()) if "tested" in self.trials else False

    @property
    def keep_flagged(self) -> bool:
        """Whether trials whose attack failed a sanity check may be on the fronts (the search's
        `--keep-flagged`; by default they are kept off, as `search.run` keeps them)."""
        value = self.settings.get("keep_flagged", False)
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)

    def eligible(self, *, final: bool = False, keep_flagged: bool | None = None) -> np.ndarray:
        """Which trials' numbers count for the fronts and the hypervolume: complete ones, unless
        `keep_flagged` (default: the search's setting) not flagged in those numbers (`flagged`
        for the search profile, `final_flagged` for the final profile), and feasible under the
        search's constraints (`feasible`)."""
        keep = self.keep_flagged if keep_flagged is None else keep_flagged
        ok = (self.trials["status"] == COMPLETE).to_numpy()
        column = profile_prefix(final) + "flagged"
        if not keep and column in self.trials:
            ok = ok & ~self.trials[column].fillna(False).to_numpy(dtype=bool)
        if self.constraints:  # an infeasible trial is on no front (one that cannot be checked stays)
            ok = ok & (self.feasible(final=final) != False).to_numpy(dtype=bool)  # noqa: E712 - None stays
        return ok

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        """The search's `--constraint`s (settings["constraints"])."""
        return parse_constraints(self.settings.get("constraints") or ())

    def constraint_baseline(self) -> str | None:
        """The trial of the space's first point: the baseline relative constraints refer to."""
        points = self.space.get("points") if self.space else None
        if not points:
            return None
        from spaces import space_from_dict

        point = space_from_dict(self.space).config(points[0])
        return baseline_trial({t: self.config(t) for t in self.trials.index}, point)

    def feasible(self, *, final: bool = False) -> pd.Series:
        """Per trial: True (every constraint holds in its numbers; always without constraints),
        False (one is violated) or None (a relative one cannot be checked: the baseline has no
        value). With `final`, the final profile's numbers where the trial was re-scored."""
        constraints = self.constraints
        if not constraints:
            return pd.Series(True, index=self.trials.index, dtype=object)
        base = self.constraint_baseline()
        base_numbers = self._numbers(base, final) if base is not None else None
        return pd.Series([feasible(constraints, self._numbers(t, final), base_numbers) for t in self.trials.index],
                         index=self.trials.index, dtype=object)

    def _numbers(self, trial_id: str, final: bool) -> dict[str, float]:
        row = self.trials.loc[trial_id]
        prefix = profile_prefix(final and bool(row.get("rescored", False)))
        return {m: float(row.get(prefix + m, math.nan)) for m in {c.metric for c in self.constraints}}

    def complete_points(self, columns: Sequence[str]) -> list[tuple[str, dict[str, Any], list[float]]]:
        """(trial id, config, values of `columns`) of every complete trial whose values of
        `columns` are all finite, in table order."""
        out = []
        for tid, row in self.trials[self.trials["status"] == COMPLETE].iterrows():
            values = [float(row.get(c, math.nan)) for c in columns]
            if all(math.isfinite(v) for v in values):
                out.append((str(tid), self.config(tid), values))
        return out

    def config(self, trial_id: str) -> dict[str, Any]:
        """A trial's flat config as plain Python values, as the trial was configured (the
        table's cells back to ints, tuples and strings; keys the trial does not set left out)."""
        row = self.trials.loc[trial_id]
        return {k: _plain(row[k]) for k in self.params if k in row and not _is_missing(row[k])}

    def values(self, *, final: bool = False, keep_flagged: bool | None = None) -> np.ndarray:
        """(N, M) objective values (validation split), one row a trial; NaN for trials that did
        not complete (a pruned trial's val_accuracy is not an objective value), for flagged
        trials unless `keep_flagged` (default: the search's setting; see `eligible`) and, with
        `final`, for trials the final profile did not re-score."""
        prefix = profile_prefix(final)
        cols = [self.trials.get(prefix + n, pd.Series(np.nan, index=self.trials.index)).to_numpy(dtype=float)
                for n in self.objective_names]
        values = np.column_stack(cols)
        values[~self.eligible(final=final, keep_flagged=keep_flagged)] = np.nan
        return values

    def reference_point(self) -> np.ndarray:
        """The hypervolume reference point (`analysis.hypervolume.reference_point`) of the search
        and final numbers together, so that both fronts are measured from the same point."""
        return reference_point(np.vstack([self.values(), self.values(final=True)]), self.objectives)

    def front(self, *, final: bool = False) -> list[str]:
        """Trial ids on the Pareto front of the complete trials (search or final numbers, both
        on validation), flagged trials left out unless the search kept them (`eligible`).
        Ordered best first on the first objective, then by trial id: the same order whichever
        loader built the table (MLflow and Tune date a trial's start differently)."""
        values = self.values(final=final)
        rows = np.isfinite(values).all(axis=1)
        if not rows.any():
            return []
        mask = pareto_mask(values[rows], self.directions)
        ids = [str(t) for t in self.trials.index[rows][mask]]
        first = to_maximise(values[rows][mask], self.directions)[:, 0]
        return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-first[i], ids[i]))]

    def knee(self, *, final: bool = False) -> str | None:
        """The front's best compromise (`analysis.pareto.knee_index`), or None without a front."""
        front = self.front(final=final)
        if not front:
            return None
        return front[knee_index(self.values(final=final)[self.trials.index.get_indexer(front)], self.directions)]

    def artifact(self, trial_id: str, name: str) -> Path | None:
        """A trial's file (eval_report.json, final_eval_report.json, attributions.png), or None."""
        return self.fetch(trial_id, name) if self.fetch else None

    def eval_report(self, trial_id: str, *, final: bool = False) -> dict | None:
        """A trial's evaluation report (`EvalReport.to_dict()`) on validation, search or final profile."""
        path = self.artifact(trial_id, FINAL_REPORT_FILE if final else REPORT_FILE)
        return json.loads(path.read_text()) if path else None

    def test_report(self, trial_id: str) -> dict | None:
        """A tested trial's held-out record: {"seeds": [training seeds], "reports":
        [EvalReport.to_dict() on the test split, one a seed, in the order of "seeds"]} (MLflow
        artifact `test_eval_report.json`, or `<search folder>/test_reports/<trial id>.json`);
        None for a trial the search did not score on test."""
        path = self.artifact(trial_id, TEST_FILE)
        return json.loads(path.read_text()) if path else None


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    """A DataFrame cell as a plain Python value: numpy scalars unwrapped, lists as tuples, and
    integer-valued floats as ints (a column with NaN holds its ints as floats)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


# ------------------------------------------------------------------------- MLflow


def load_search(experiment: str | None = None, *, run_id: str | None = None, search: str | None = None,
                tracking_uri: str = "sqlite:///mlflow.db", cache_dir: str | Path | None = None) -> Search:
    """Read a search from MLflow: by its parent run id, or the latest (or `search`-named) search
    of an experiment. A child run's id also works (its parent is read). Artifacts (reports,
    figures) are downloaded on first use into `cache_dir` (default: a new temporary folder,
    left for the system to clean, since the paths handed out must stay valid).

    Raises:
        ValueError: no such experiment, run or search, naming what was looked for.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if run_id is not None:
        parent = _get_run(client, run_id, tracking_uri)
        if PARENT_TAG in parent.data.tags:  # a trial's run: go to its search
            parent = _get_run(client, parent.data.tags[PARENT_TAG], tracking_uri)
        if parent.data.tags.get(ROLE_TAG) != ROLE_SEARCH:
            raise ValueError(f"MLflow run {run_id} is not a search's parent run (tag {ROLE_TAG} = {ROLE_SEARCH})")
    else:
        if experiment is None:
            raise ValueError("name an MLflow experiment (e.g. nsde-search) or a search's run id")
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            known = [e.name for e in client.search_experiments()]
            raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}; known experiments: {known}")
        query = f"tags.`{ROLE_TAG}` = '{ROLE_SEARCH}'" + (f" and tags.`{SEARCH_TAG}` = '{search}'" if search else "")
        runs = client.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"],
                                  max_results=1)
        if not runs:
            what = f"search named {search!r}" if search else "search"
            raise ValueError(f"no {what} in MLflow experiment {experiment!r} at {tracking_uri}")
        parent = runs[0]

    return _mlflow_search(client, parent, tracking_uri, cache_dir)


def _mlflow_search(client, parent, tracking_uri: str, cache_dir: str | Path | None) -> Search:
    parent_id, exp_id = parent.info.run_id, parent.info.experiment_id
    settings = {k: _parse_value(v) for k, v in parent.data.params.items()}
    cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="nsde-analysis-"))

    def parent_file(name: str) -> Any:
        return _read_json(_download(tracking_uri, parent_id, name, cache / "_parent"))

    timing = parent_file(TIMING_FILE) or {}
    ends = {t["trial_id"]: t["started_at"] + t["wall_s"] for t in timing.get("trials", [])
            if t.get("started_at") is not None and t.get("wall_s") is not None}
    children = _all_children(client, exp_id, parent_id)
    records = [_mlflow_record(run, ends) for run in children]
    baseline = next((r.trial_id for r, run in zip(records, children) if run.data.tags.get(BASELINE_TAG) == "true"),
                    None)
    run_ids = {r.trial_id: r.run_id for r in records}

    def fetch(trial_id: str, name: str) -> Path | None:
        run = run_ids.get(trial_id)
        return _download(tracking_uri, run, name, cache / trial_id) if run else None

    return Search.from_records(
        parent.data.tags.get(SEARCH_TAG, parent.info.run_name or parent_id), records,
        parse_objectives(settings.get("objectives")), baseline=baseline,
        status=parent.info.status, source=f"MLflow {tracking_uri}, experiment {exp_id}, run {parent_id}",
        space=parent_file(SPACE_FILE) or {}, settings=settings,
        front_change=parent_file(FRONT_CHANGE_FILE) or {}, timing=timing, rungs=parent_file(RUNGS_FILE) or {},
        fetch=fetch)


def load_runs(experiment: str, *, tracking_uri: str = "sqlite:///mlflow.db", search: str | None = None) -> pd.DataFrame:
    """The trials table of an experiment's latest (or `search`-named) search: `load_search(...).trials`."""
    return load_search(experiment, search=search, tracking_uri=tracking_uri).trials


def _get_run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ValueError(f"no MLflow run {run_id!r} at {uri}") from None


def _all_children(client, exp_id: str, parent_id: str) -> list:
    # MlflowClient pages by hand: mlflow.search_runs would page for us, but reads the
    # process-wide tracking URI, which a library call must not set.
    runs, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                  max_results=1000, page_token=token, order_by=["attributes.start_time ASC"])
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _mlflow_record(run, ends: dict[str, float]) -> TrialRecord:
    """One trial from its child run. Its end: the ENDED_TAG, else the search's TIMING_FILE
    (searches before the tag), else the run's end_time (which logging the model later moves)."""
    tags, info = run.data.tags, run.info
    trial_id = tags.get(TRIAL_TAG, info.run_name)
    if ENDED_TAG in tags:
        ended = float(tags[ENDED_TAG])
    elif trial_id in ends:
        ended = ends[trial_id]
    else:
        ended = info.end_time / 1000 if info.end_time and info.status != "RUNNING" else math.nan
    metrics = run.data.metrics
    return TrialRecord(
        trial_id=trial_id, run_id=info.run_id,
        status=tags.get(STATUS_TAG, RUNNING if info.status == "RUNNING" else "unknown"),
        config={k: _parse_value(v) for k, v in run.data.params.items()},
        metrics={k: v for k, v in metrics.items() if not k.startswith((FINAL_PREFIX, TEST_PREFIX))},
        final={k.removeprefix(FINAL_PREFIX): v for k, v in metrics.items() if k.startswith(FINAL_PREFIX)},
        test={k: v for k, v in metrics.items() if k.startswith(TEST_PREFIX)},
        error=tags.get(FAILURE_TAG),
        started=info.start_time / 1000 if info.start_time else math.nan, ended=ended)


def _download(uri: str, run_id: str, name: str, dest: Path) -> Path | None:
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file: noise
    target = dest / name
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(dest),
                                                        tracking_uri=uri))
    except Exception:  # noqa: BLE001 - MLflow raises several types for "no such artifact"
        return None


# --------------------------------------------------------------------------- Tune


def load_tune(path: str | Path) -> Search:
    """Read a search from its Tune folder (`<--storage-path>/<name>`, a local path), through
    Tune's own reader (`ResultGrid(ExperimentAnalysis(path))`).

    Objectives, the final profile's numbers and the held-out test numbers come from the
    folder's `search.json` (written by `search.run` at the end of a search; the test records
    from `test_reports/`); without it (a search still running, or killed) the default
    objectives are assumed and there are no final or test numbers, and a trial still
    running reads as `pruned` (ended without an evaluation); MLflow knows the difference.

    Raises:
        ValueError: `path` is not a Tune experiment folder.
    """
    folder = Path(path).expanduser().resolve()  # Tune's reader takes a relative path for a URI and fails
    results = _tune_results(folder)
    record = SearchFile.read(folder)
    if record is None:
        warnings.warn(f"{folder / SEARCH_FILE} is missing (a search still running, killed, or whose files "
                      f"went to $NSDE_CACHE_DIR/searches/ because Tune stored in the cloud): assuming the "
                      f"default objectives, without final numbers", RuntimeWarning, stacklevel=2)
        record = SearchFile(name=folder.name, objectives=[])
    records = [from_result(r, run_id=record.run_ids.get(str(r.metrics["trial_id"]))) for r in results]
    for r in records:
        r.final = record.final.get(r.trial_id, {})
        # held-out numbers: search.json keeps them under their MLflow names (test_<metric>)
        r.test = {k if k.startswith(TEST_PREFIX) else TEST_PREFIX + k: v for k, v in record.test.get(r.trial_id, {}).items()}
    checkpoints = {r.trial_id: r.checkpoint for r in records}

    def fetch(trial_id: str, name: str) -> Path | None:
        if name == FINAL_REPORT_FILE:
            path = folder / FINAL_REPORTS / f"{trial_id}.json"
        elif name == TEST_FILE:
            path = folder / TEST_REPORTS / f"{trial_id}.json"
        else:  # the trial's last checkpoint holds its outputs
            ckpt = checkpoints.get(trial_id)
            path = Path(ckpt.path) / name if ckpt is not None else None
        return path if path is not None and path.exists() else None

    return Search.from_records(
        record.name, records, parse_objectives(record.objectives or None), baseline=record.baseline,
        status="FINISHED" if record.objectives else "unknown", source=f"Tune folder {folder.resolve()}",
        space=record.space, settings=record.settings, front_change=record.front_change or {},
        timing=_read_json(folder / TIMING_FILE) or {}, rungs=_read_json(folder / RUNGS_FILE) or {}, fetch=fetch)


def add_source_arguments(parser, *, required: bool = True) -> None:
    """The CLI options that name a search (`python -m analysis.report`, `analysis.study`):
    --experiment [--search NAME] | --run-id | --tune-dir, and --tracking-uri (`required`: one
    of the three must be given; a CLI with a source of its own checks that itself)."""
    src = parser.add_mutually_exclusive_group(required=required)
    src.add_argument("--experiment", help="MLflow experiment: its latest search (or --search NAME)")
    src.add_argument("--run-id", help="MLflow run id of a search (its parent run, or one of its trials)")
    src.add_argument("--tune-dir", help="a search's Tune folder (<--storage-path>/<name>), without MLflow")
    parser.add_argument("--search", default=None, help="with --experiment: the search's name")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI")


def search_from_arguments(args) -> Search:
    """The search `add_source_arguments`' options name (ValueError when there is none)."""
    if args.tune_dir:
        return load_tune(args.tune_dir)
    return load_search(args.experiment, run_id=args.run_id, search=args.search, tracking_uri=args.tracking_uri)


def _tune_results(folder: Path) -> list:
    from ray.tune import ExperimentAnalysis, ResultGrid

    if not folder.is_dir() or not list(folder.glob("experiment_state*.json")):
        raise ValueError(f"{folder} is not a Tune experiment folder (no experiment_state*.json in it); "
                         f"pass <--storage-path>/<search name>, e.g. runs/default-20261126-081617")
    return list(ResultGrid(ExperimentAnalysis(str(folder))))


# ------------------------------------------------------------------------ helpers


def _parse_value(text: str) -> Any:
    """MLflow stores params as strings: '0.004' -> 0.004, '[1, 2]' -> (1, 2), 'None' -> None, 'fbm' -> 'fbm'."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
    return tuple(value) if isinstance(value, list) else value


def _row(record: TrialRecord, baseline: str | None) -> dict[str, Any]:
    return {"trial_id": record.trial_id, "run_id": record.run_id, "status": record.status, "failure": record.error,
            "started": record.started, "ended": record.ended, "baseline": record.trial_id == baseline,
            "deterministic": record.deterministic, **record.config, **record.metrics,
            **{FINAL_PREFIX + k: v for k, v in record.final.items()}, **record.test}


def trials_frame(records: Sequence[TrialRecord], objectives: Sequence[Objective], *,
                 baseline: str | None = None) -> pd.DataFrame:
    """The trials table of `Search.trials` (see the module docstring), indexed by trial id."""
    df = pd.DataFrame([_row(r, baseline) for r in records])
    if df.empty:
        df = pd.DataFrame(columns=["trial_id", "run_id", "status", "failure", "started", "ended", "baseline",
                                   "deterministic"])
    for name in (o.name for o in objectives):  # every objective column exists, NaN where a trial has none
        for prefix in ("", FINAL_PREFIX, TEST_PREFIX):
            for col in (name, f"{name}_low", f"{name}_high", f"{name}_n"):
                if prefix + col not in df:
                    df[prefix + col] = np.nan
    for col in (CHECKS, f"{FINAL_PREFIX}{CHECKS}", f"{TEST_PREFIX}{CHECKS}", f"{TEST_PREFIX}seeds"):
        if col not in df:
            df[col] = np.nan
    # re-scored: the final profile's numbers exist; tested: the held-out ones. Metrics the
    # evaluation does not produce keep their search values there (as search.run's final
    # numbers do; older MLflow runs lack them).
    df["rescored"] = df.filter(regex=f"^{FINAL_PREFIX}").notna().any(axis=1)
    df["tested"] = df.filter(regex=f"^{TEST_PREFIX}").notna().any(axis=1)
    # flagged: an attack sanity check failed (checks_passed 0) in these numbers; NaN (no check
    # ran, or no numbers) is not a failure
    df["flagged"] = df[CHECKS].to_numpy(dtype=float) == 0.0
    df[f"{FINAL_PREFIX}flagged"] = df[f"{FINAL_PREFIX}{CHECKS}"].to_numpy(dtype=float) == 0.0
    for name in TRAINING_METRICS:
        if name in df:
            final = FINAL_PREFIX + name
            if final not in df:
                df[final] = np.nan
            df[final] = df[final].where(~df["rescored"] | df[final].notna(), df[name])
    return df.set_index("trial_id").sort_values("started", kind="stable")


def _read_json(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.exists() else None
