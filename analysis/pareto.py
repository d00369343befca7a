"""Non-dominated sorting on arrays of objective values (any number of objectives).

Directions are normalised once at the start (every objective turned into one to
maximise), as Optuna's `_is_pareto_front` helpers do; the rest works on plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pareto_mask", "to_maximise"]


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
    finite = np.isfinite(v).all(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    w = v[finite]  # (K, M)
    # dominated[i] = any_j (w_j >= w_i everywhere and w_j > w_i somewhere): (K, K, M) comparisons
    geq = (w[None, :, :] >= w[:, None, :]).all(axis=2)
    gt = (w[None, :, :] > w[:, None, :]).any(axis=2)
    mask[np.flatnonzero(finite)] = ~(geq & gt).any(axis=1)
    return mask
