"""One trial of a search, as the search writes it and the analysis reads it.

`TrialRecord` is built in one place from Tune's own result (`from_result`, a
`ray.tune.Result` of a live `ResultGrid` or of `ResultGrid(ExperimentAnalysis(folder))`),
and the status of a trial is decided in one place (`trial_status`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from record.objectives import CHECKS_PASSED, EVALUATED, Objective

__all__ = ["COMPLETE", "FAILED", "LOST", "PRUNED", "RUNNING", "SEED_KEY", "STATUSES", "TrialRecord", "config_differences", "failed_checks", "flatten", "from_result",
           "is_deterministic", "last_error_line", "trial_status", "unflatten"]

COMPLETE, PRUNED, FAILED = STATUSES = ("complete", "pruned", "failed")
LOST, RUNNING = "lost", "running"  # MLflow only: a run no Tune trial owns, a run not ended


def trial_status(last_result: Mapping[str, Any] | None, *, errored: bool) -> str:
    """complete (its evaluation reported), pruned (a scheduler stopped it, or it ended before its
    evaluation) or failed (it raised, after its retries)."""
    if errored:
        return FAILED
    return COMPLETE if (last_result or {}).get(EVALUATED) else PRUNED


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Tune hands trials nested dicts ({"noise": {"hurst": ...}}); the platform's keys are "noise/hurst"."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"noise/hurst": 0.7} -> {"noise": {"hurst": 0.7}}: the nested config Tune hands a trial
    (Ray's own unflatten_dict is private to Ray)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


SEED_KEY = "train/seed"  # a search sets it from --seed: two trials differ by it and still ran one configuration


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], *, keys: Iterable[str] | None = None) -> list[str]:
    """The keys (those of both flat configs, or `keys`) whose values differ, sorted, the
    training seed aside; a list and a tuple with the same items are equal."""
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            return list(x) == list(y)
        return x == y

    keys = set(a) | set(b) if keys is None else set(keys)
    return sorted(k for k in keys - {SEED_KEY} if not same(a.get(k), b.get(k)))


def is_deterministic(config: Mapping[str, Any]) -> bool:
    """A flat config without noise: `noise/shape` none, or sigma 0 (or unset)."""
    return config.get("noise/shape") == "none" or not config.get("noise/sigma", 0.0)


def failed_checks(values: Mapping[str, float]) -> list[str]:
    """The attack's sanity checks that failed in these numbers (`check_<name>` == 0)."""
    return [k.removeprefix("check_") for k, v in values.items() if k.startswith("check_") and v == 0.0]


def last_error_line(text_or_path: str | Path | BaseException | None) -> str | None:
    """The last line of an error (e.g. 'NonFiniteLossError: ...'): of an exception's text, or of
    a Tune trial's error file; None without one."""
    if isinstance(text_or_path, BaseException):
        text = str(text_or_path)
    elif isinstance(text_or_path, (str, Path)) and Path(text_or_path).exists():
        text = Path(text_or_path).read_text()
    else:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


@dataclass
class TrialRecord:
    """One trial: its flat config, the numbers it reported and the ones the search added.

    Attributes:
        status: complete | pruned | failed (`trial_status`).
        config: flat ("noise/hurst"), as the trial was configured.
        metrics: its last result's numbers (the search profile's, on validation).
        final: the final profile's numbers (validation), for the re-scored trials.
        test: the held-out numbers (`test_` keys), for the final front and the baseline.
        checkpoint: its last `ray.tune.Checkpoint` (driver side; None when read from MLflow).
        started / ended: seconds since the epoch (NaN unknown).
    """

    trial_id: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, float]
    run_id: str | None = None
    final: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    checkpoint: Any = None
    started: float = math.nan
    ended: float = math.nan
    path: str | None = None  # its Tune folder

    @property
    def deterministic(self) -> bool:
        return is_deterministic(self.config)

    def numbers(self, *, final: bool = False) -> dict[str, float]:
        """The final profile's numbers when asked for and present, else the search profile's."""
        return self.final if final and self.final else self.metrics

    def flagged(self, *, final: bool = False) -> bool:
        """Its attack failed a sanity check in these numbers (its robustness number is suspect)."""
        return self.numbers(final=final).get(CHECKS_PASSED, 1.0) == 0.0

    def values(self, objectives: Sequence[Objective], *, final: bool = False) -> list[float]:
        numbers = self.final if final else self.metrics
        return [float(numbers.get(o.name, math.nan)) for o in objectives]


def from_result(result: Any, *, run_id: str | None = None) -> TrialRecord:
    """The record of a `ray.tune.Result` (its last result, config, error, checkpoint, folder)."""
    last = dict(result.metrics or {})
    status = trial_status(last, errored=result.error is not None)
    config = result.config if result.config is not None else _params_file(result)
    first = _first_result(result)
    return TrialRecord(
        trial_id=str(last["trial_id"]),
        status=status,
        config={k: tuple(v) if isinstance(v, list) else v for k, v in flatten(config).items()},
        metrics={k: float(v) for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        run_id=run_id,
        error=(last_error_line(result.error) or "unknown error") if status == FAILED else None,
        checkpoint=result.checkpoint,
        started=first.get("timestamp", math.nan) - first.get("time_this_iter_s", 0.0) if first else math.nan,
        ended=float(last.get("timestamp", math.nan)) if "timestamp" in last else math.nan,
        path=result.path,
    )


def _params_file(result: Any) -> dict[str, Any]:
    """A trial that never reported has no config in its result: Tune's `params.json` beside it."""
    try:
        with result.filesystem.open_input_stream(f"{result.path}/params.json") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def _first_result(result: Any) -> dict[str, Any]:
    df = result.metrics_dataframe
    if df is None or df.empty:
        return {}
    return df.iloc[0].to_dict()
