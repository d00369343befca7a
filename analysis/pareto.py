"""Non-dominated sorting on arrays of objective values (any number of objectives).

Directions are normalised once at the start (every objective turned into one to
maximise), as Optuna's `_is_pareto_front` helpers do; the rest works on plain arrays.
Rows holding NaN (a trial that failed, or was stopped before its evaluation) are never on
a front; the functions drop them with a `RuntimeWarning` that says how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import moocore
import numpy as np
import pandas as pd

__all__ = ["crowding_distance", "knee_index", "pareto_front", "pareto_mask", "pareto_ranks", "to_maximise"]


def to_maximise(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """(N, M) values -> (N, M) values where larger is better in every column."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise ValueError(f"values must be (N, {len(directions)}) for {len(directions)} directions, "
                         f"but got shape {values.shape}")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', but got {bad}")
    signs = np.array([1.0 if d == "max" else -1.0 for d in directions])
    return values * signs


def _finite_rows(v: np.ndarray) -> np.ndarray:
    finite = np.isfinite(v).all(axis=1)
    if not finite.all():
        warnings.warn(f"{int((~finite).sum())} of {len(v)} rows hold NaN or inf and are left off the front",
                      RuntimeWarning, stacklevel=3)
    return finite


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows are Pareto-optimal (not dominated by any other row).

    A row is dominated when another row is at least as good in every objective and
    strictly better in one; equal rows therefore do not dominate each other. Rows holding
    NaN are never on the front (and dominate nothing).

    Args:
        values: (N, M) objective values.
        directions: M entries, "max" or "min".

    Returns:
        (N,) bool mask of the front.
    """
    v = to_maximise(values, directions)
    finite = _finite_rows(v)
    mask = np.zeros(len(v), dtype=bool)
    w = v[finite]  # (K, M)
    # dominated[i] = any_j (w_j >= w_i everywhere and w_j > w_i somewhere): (K, K, M) comparisons
    geq = (w[None, :, :] >= w[:, None, :]).all(axis=2)
    gt = (w[None, :, :] > w[:, None, :]).any(axis=2)
    mask[np.flatnonzero(finite)] = ~(geq & gt).any(axis=1)
    return mask


def pareto_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting: rank 0 is the Pareto front, rank 1 the front once rank 0 is
    removed, and so on (NSGA-II's fronts). Equal rows share a rank; NaN rows get -1.

    The ranking itself is moocore's `pareto_rank`.
    """
    v = to_maximise(values, directions)
    finite = _finite_rows(v)
    ranks = np.full(len(v), -1, dtype=int)
    if finite.any():
        ranks[finite] = moocore.pareto_rank(v[finite], maximise=True)
    return ranks


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row of one front (Deb et al. 2002): per objective,
    the gap between a row's two neighbours in sort order over the front's range, summed.
    The rows at either end of an objective get inf; an objective on which the rows are all
    equal adds 0 (and has no ends). Scale-free (each objective over its own range) and direction-free (a gap is
    the same read either way), so `values` may be as reported.

    Args:
        values: (K, M) finite objective values of K mutually non-dominated rows.

    Returns:
        (K,) distances; larger = a less crowded region of the front.
    """
    v = np.asarray(values, dtype=float)
    k = len(v)
    distance = np.zeros(k)
    if k <= 2:
        return np.full(k, np.inf)
    for column in v.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        if span > 0:  # (on a flat objective no row is an end)
            distance[order[0]] = distance[order[-1]] = np.inf
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def knee_index(values: np.ndarray, directions: Sequence[str]) -> int:
    """The best compromise on the front: the Pareto-optimal row closest (Euclidean) to the
    ideal point once every objective is rescaled to [0, 1] over the front (0 = the front's
    worst value, 1 = its best; an objective on which the front is flat counts as 1).

    Returns:
        The row index into `values`.

    Raises:
        ValueError: no row is finite.
    """
    mask = pareto_mask(values, directions)
    if not mask.any():
        raise ValueError("no row without NaN: there is no front and no knee point")
    v = to_maximise(values, directions)[mask]
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.where(hi > lo, (v - lo) / span, 1.0)
    distance = np.linalg.norm(1.0 - scaled, axis=1)
    return int(np.flatnonzero(mask)[int(np.argmin(distance))])


def pareto_front(df: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]) -> pd.DataFrame:
    """The rows of `df` on the Pareto front of its `objectives` columns (NaN rows dropped with a warning).

        pareto_front(search.trials, ["clean_accuracy", "apgd_accuracy"], ["max", "max"])
    """
    missing = [c for c in objectives if c not in df]
    if missing:
        raise ValueError(f"objectives {missing} are not columns of the table; columns: {list(df.columns)}")
    return df[pareto_mask(df[list(objectives)].to_numpy(dtype=float), directions)]
