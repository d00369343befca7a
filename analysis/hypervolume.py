"""Hypervolume of a set of trials, and how it grew as a search went on.

The hypervolume is the volume of objective space that the trials dominate, bounded by a
*reference point* that every useful trial beats; larger is better, and it grows only when a
trial extends the front. The computation is moocore's exact `hypervolume` (HV3D+ / HV4D+
and a recursive algorithm above four objectives).

**Reference point.** `reference_point` puts it at each objective's worst possible value
where the objective has one (`BOUNDS`, from each objective's spec: accuracies and ABC lie
in [0, 1], so 0 when maximised, 1 when minimised). Hypervolumes of different searches over those objectives are
then comparable: a search whose trials are all perfect reaches 1. An objective without
bounds (e.g. `attribution_stability`, `train_seconds`) takes the worst value observed
moved out by 10 % of the observed range, so every finite trial counts; such hypervolumes
compare only within one table. Pass `ref` yourself to fix it across searches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from analysis.pareto import to_maximise
from record import COMPLETE, METRIC_BOUNDS

__all__ = ["BOUNDS", "hypervolume", "hypervolume_progress", "reference_point"]

# Metrics with a known range, (lowest, highest) whatever the direction: the objectives' spec
# bounds (nsde.metrics.objectives) and the training's val_accuracy, read at each use.
BOUNDS: Mapping[str, tuple[float, float]] = METRIC_BOUNDS
MARGIN = 0.1  # of the observed range, for objectives without bounds


def reference_point(values: np.ndarray, objectives: Sequence[tuple[str, str]],
                    bounds: Mapping[str, tuple[float, float]] = BOUNDS) -> np.ndarray:
    """The reference point (in the objectives' own units and directions); see the module docstring.

    Args:
        values: (N, M) objective values (NaN rows are ignored).
        objectives: M (name, "max" | "min") pairs.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    ref = np.empty(len(objectives))
    for j, (name, mode) in enumerate(objectives):
        if name in bounds:
            lo, hi = bounds[name]
            ref[j] = lo if mode == "max" else hi
            continue
        col = values[:, j][np.isfinite(values[:, j])]
        if col.size == 0:
            ref[j] = np.nan
            continue
        span = col.max() - col.min()
        margin = MARGIN * span if span > 0 else MARGIN * max(abs(col.max()), 1.0)
        ref[j] = col.min() - margin if mode == "max" else col.max() + margin
    return ref


def hypervolume(values: np.ndarray, directions: Sequence[str], ref: Sequence[float]) -> float:
    """Hypervolume of the (N, M) `values` against `ref` (both in the objectives' units).

    Rows holding NaN and rows that do not beat `ref` in every objective add nothing.

    Raises:
        ValueError: `ref` has the wrong length or holds NaN.
    """
    v = to_maximise(values, directions)
    r = to_maximise(np.asarray(ref, dtype=float).reshape(1, -1), directions)[0] if len(ref) == v.shape[1] else None
    if r is None or not np.isfinite(r).all():
        raise ValueError(f"ref must be {v.shape[1]} finite numbers (one per objective), but got {list(ref)}")
    v = v[np.isfinite(v).all(axis=1)]
    v = v[(v > r).all(axis=1)]
    if len(v) == 0:
        return 0.0
    return float(moocore.hypervolume(v, ref=r, maximise=True))


def hypervolume_progress(trials: pd.DataFrame, objectives: Sequence[tuple[str, str]], ref: Sequence[float],
                         *, prefix: str = "") -> pd.DataFrame:
    """The hypervolume of the trials ended so far, after each trial's end.

    Args:
        trials: one row per trial with an `ended` time (seconds since the epoch) and the
            objective columns (`prefix + name`, e.g. `record.FINAL_PREFIX` for re-evaluated numbers);
            with a `status` column, only complete trials add volume (every ended trial counts
            in `trials`).
        objectives: (name, mode) pairs; ref: the reference point (`reference_point`).

    Returns:
        One row per ended trial, in the order they ended: `trials` (how many had ended),
        `trial_id`, `seconds` (since the first trial started), `hypervolume`.
    """
    cols = [prefix + name for name, _ in objectives]
    directions = [mode for _, mode in objectives]
    done = trials[trials["ended"].notna()].sort_values("ended", kind="stable")
    values = done[cols].to_numpy(dtype=float, copy=True)
    if "status" in done:
        values[(done["status"] != COMPLETE).to_numpy()] = np.nan
    start = trials["started"].min()
    out = []
    for k in range(1, len(done) + 1):
        out.append({"trials": k, "trial_id": done.index[k - 1], "seconds": float(done["ended"].iloc[k - 1] - start),
                    "hypervolume": hypervolume(values[:k], directions, ref)})
    return pd.DataFrame(out, columns=["trials", "trial_id", "seconds", "hypervolume"])
