"""The study's comparison: deterministic models (sigma 0) against NSDE models, on the front and off it.

`group_summary` sets the two kinds side by side (how many trials, mean and best of each
objective, on and off the Pareto front); `versus_baseline` puts each front member next to
the search's deterministic baseline, objective by objective, and says where the 95 %
intervals do not overlap (a difference the evaluation's sample sizes can tell apart).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import Search

__all__ = ["baseline_id", "front_and_baseline", "front_hursts", "group_summary", "versus_baseline"]


def baseline_id(search: Search, *, final: bool = False) -> str | None:
    """The deterministic baseline: the trial the search re-scored as such, else the complete
    deterministic trial with the best clean accuracy; None when the search ran none."""
    df = search.trials
    prefix = "final_" if final else ""
    chosen = df.index[df["baseline"].astype(bool)]
    if len(chosen) and (not final or np.isfinite(df.loc[chosen[0], prefix + search.objective_names[0]])):
        return str(chosen[0])
    det = df[(df["status"] == "complete") & df["deterministic"]]
    name, mode = "clean_accuracy", "max"
    if prefix + name not in det:  # a search without clean accuracy: its first objective
        name, mode = search.objectives[0]
    det = det[det[prefix + name].notna()]
    if det.empty:
        return None
    return str(det[prefix + name].idxmax() if mode == "max" else det[prefix + name].idxmin())


def front_and_baseline(search: Search, *, final: bool = False) -> list[str]:
    """The front's trial ids, then the baseline's when it is not on the front (what the sweep
    curves and attribution figures show)."""
    front = search.front(final=final)
    base = baseline_id(search, final=final)
    return front + ([base] if base is not None and base not in front else [])


def front_hursts(search: Search, *, final: bool = False) -> list[float]:
    """The Hurst exponents of the front's fBm models (sorted, each once)."""
    df = search.trials.loc[search.front(final=final)]
    if "noise/hurst" not in df or "noise/shape" not in df:
        return []
    return sorted({float(h) for h, shape in zip(df["noise/hurst"], df["noise/shape"]) if shape == "fbm" and pd.notna(h)})


def group_summary(search: Search, *, final: bool = False) -> pd.DataFrame:
    """Deterministic vs NSDE trials, on and off the front: count, mean and best of each objective.

    Only complete trials count (with final numbers: only the re-scored ones). "Best" is the
    maximum for an objective to maximise and the minimum for one to minimise.
    """
    prefix = "final_" if final else ""
    df = search.trials[search.trials["status"] == "complete"].copy()
    cols = [prefix + n for n in search.objective_names]
    df = df[df[cols].notna().all(axis=1)]
    front = set(search.front(final=final))
    df["model"] = np.where(df["deterministic"], "deterministic", "NSDE")
    df["where"] = np.where(df.index.isin(list(front)), "on front", "off front")
    rows = []
    for (model, where), part in df.groupby(["model", "where"], sort=True):
        row = {"model": model, "where": where, "trials": len(part)}
        for name, mode in search.objectives:
            values = part[prefix + name]
            row[f"mean {name}"] = float(values.mean())
            row[f"best {name}"] = float(values.max() if mode == "max" else values.min())
        rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "where"]) if rows else pd.DataFrame()


def versus_baseline(search: Search, *, final: bool = False) -> pd.DataFrame:
    """Each front member minus the baseline, per objective, signed so that positive is better
    whatever the direction, and whether the two 95 % intervals are disjoint (`<objective> separated`).

    Returns an empty frame when the search has no deterministic baseline or no front.
    """
    base = baseline_id(search, final=final)
    front = search.front(final=final)
    if base is None or not front:
        return pd.DataFrame()
    prefix = "final_" if final else ""
    df = search.trials
    knee = search.knee(final=final)
    b = df.loc[base]
    rows = []
    for tid in front:
        t = df.loc[tid]
        row = {"trial": tid, "kind": "baseline" if tid == base else "deterministic" if t["deterministic"] else "NSDE",
               "knee": tid == knee}
        for name, mode in search.objectives:
            sign = 1.0 if mode == "max" else -1.0
            row[f"{name} vs baseline"] = sign * (float(t[prefix + name]) - float(b[prefix + name]))
            lo, hi = t.get(f"{prefix}{name}_low", np.nan), t.get(f"{prefix}{name}_high", np.nan)
            blo, bhi = b.get(f"{prefix}{name}_low", np.nan), b.get(f"{prefix}{name}_high", np.nan)
            row[f"{name} separated"] = bool(np.isfinite([lo, hi, blo, bhi]).all() and (lo > bhi or hi < blo))
        rows.append(row)
    return pd.DataFrame(rows).set_index("trial")
