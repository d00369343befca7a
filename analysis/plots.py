"""Figures of a search (matplotlib; each function returns a Figure and draws nothing else).

Colours and markers mean the same in every figure: a Pareto-optimal trial is coloured, the
others grey; a deterministic model (sigma 0) is a square, an NSDE model a circle; the knee
point (best compromise) is a star and the deterministic baseline is outlined in black.

The figures are plain `matplotlib.figure.Figure` objects, not pyplot's: no global state, no
backend switch (a notebook shows them inline), `fig.savefig(path)` writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compare import baseline_id
from analysis.hypervolume import hypervolume_progress
from analysis.load import Search
from record import COMPLETE, FINAL_PREFIX, profile_prefix

__all__ = [
    "PALETTE",
    "colours",
    "front_shift",
    "hypervolume_curves",
    "importance_bars",
    "noise_surfaces",
    "parallel_coordinates",
    "scatter_matrix",
    "short_name",
    "sweep_curves",
]

# 18 distinct colours, none grey (grey means "off the front"): tab10 and tab20's light shades
# without their greys
PALETTE = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7] + \
          [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i % 2 and i != 15]
GREY = "#b0b0b0"


def short_name(column: str) -> str:
    """'noise/hurst' -> 'hurst', 'clean_accuracy' -> 'clean acc.' (axis labels)."""
    name = column.split("/")[-1]
    return name.replace("_accuracy", " acc.").replace("_correct", "").replace("_", " ")


def colours(search: Search, trial_ids: Sequence[str]) -> dict[str, tuple]:
    """A trial's colour, the same in every figure of the search: the trials a figure can
    highlight (both fronts, the re-scored trials, the baseline) are numbered in `search.trials`
    order and take the palette's colours in turn; other trials asked for come after them."""
    marked = set(search.front()) | set(search.front(final=True)) | {baseline_id(search), baseline_id(search, final=True)}
    if "rescored" in search.trials:
        marked |= set(search.trials.index[search.trials["rescored"].astype(bool)])
    order = [t for t in search.trials.index if t in marked]
    order += [t for t in trial_ids if t not in marked]
    return {tid: PALETTE[order.index(tid) % len(PALETTE)] for tid in trial_ids}


def _draw_points(ax, df: pd.DataFrame, x: str, y: str, colour: dict[str, tuple], knee: str | None, base: str | None):
    for tid, row in df.iterrows():
        if not (np.isfinite(row[x]) and np.isfinite(row[y])):
            continue
        on = tid in colour
        ax.scatter(row[x], row[y], s=90 if tid == knee else 30, marker="*" if tid == knee else
                   "s" if row["deterministic"] else "o", color=colour.get(tid, GREY), zorder=3 if on else 2,
                   edgecolors="black" if tid == base else "none", linewidths=1.2)


def scatter_matrix(search: Search, *, final: bool = False) -> Figure:
    """Every pair of objectives against each other, the front highlighted; the diagonal shows
    each objective's distribution over the complete trials."""
    prefix = profile_prefix(final)
    names = search.objective_names
    df = search.trials[search.trials["status"] == COMPLETE]
    if final:
        df = df[df[prefix + names[0]].notna()]
    front, knee, base = search.front(final=final), search.knee(final=final), baseline_id(search, final=final)
    colour = colours(search, front)
    m = len(names)
    fig = Figure(figsize=(2.6 * m, 2.6 * m))
    axes = fig.subplots(m, m, squeeze=False)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if i == j:
                values = df[prefix + xj].dropna()
                ax.hist(values, bins=min(20, max(3, len(values))), color=GREY)
                ax.set_yticks([])
            else:
                _draw_points(ax, df, prefix + xj, prefix + yi, colour, knee, base)
            if i == m - 1:
                ax.set_xlabel(f"{short_name(xj)} ({search.objectives[j][1]})")
            if j == 0 and i != j:
                ax.set_ylabel(f"{short_name(yi)} ({search.objectives[i][1]})")
            ax.tick_params(labelsize=7)
    which = "re-scored trials, final profile" if final else "complete trials, search profile"
    fig.suptitle(f"{search.name}: {len(front)} Pareto-optimal of {len(df)} {which} (validation split)")
    fig.legend(*_legend(colour), loc="lower center", ncol=min(6, len(front) + 3), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def _legend(colour: dict[str, tuple]):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=t) for t, c in colour.items()]
    handles += [Line2D([], [], ls="", marker="o", color=GREY, label="off the front"),
                Line2D([], [], ls="", marker="s", color="k", mfc="none", label="deterministic (sigma 0)"),
                Line2D([], [], ls="", marker="*", color="k", ms=9, label="knee point")]
    return handles, [h.get_label() for h in handles]


def front_shift(search: Search) -> Figure:
    """The re-scored trials with their search-profile numbers (hollow) and final-profile
    numbers (filled), an arrow from one to the other, for each pair of objectives."""
    names = search.objective_names
    df = search.trials[search.trials[FINAL_PREFIX + names[0]].notna()]
    final_front = search.front(final=True)
    pairs = list(combinations(range(len(names)), 2)) or [(0, 0)]
    cols = min(3, len(pairs))
    rows = int(np.ceil(len(pairs) / cols))
    fig = Figure(figsize=(3.6 * cols, 3.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    colour = colours(search, list(df.index))
    for ax, (a, b) in zip(axes.flat, pairs):
        xa, yb = names[a], names[b]
        for tid, row in df.iterrows():
            c = colour[tid]
            ax.scatter(row[xa], row[yb], s=30, facecolors="none", edgecolors=c)
            ax.scatter(row[FINAL_PREFIX + xa], row[FINAL_PREFIX + yb], s=60 if tid in final_front else 30, color=c,
                       marker="s" if row["deterministic"] else "o",
                       edgecolors="black" if tid in final_front else "none")
            ax.annotate("", xy=(row[FINAL_PREFIX + xa], row[FINAL_PREFIX + yb]), xytext=(row[xa], row[yb]),
                        arrowprops={"arrowstyle": "->", "color": c, "lw": 0.8})
        ax.set_xlabel(short_name(xa))
        ax.set_ylabel(short_name(yb))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle("validation split: search profile (hollow) -> final profile (filled; black edge: on the final "
                 "front)", fontsize=10)
    fig.tight_layout()
    return fig


def _missing(v) -> bool:
    """None or NaN (a tuple value, e.g. a list of depths, is a value)."""
    return v is None or (isinstance(v, float) and np.isnan(v))


def _axis_values(series: pd.Series) -> tuple[np.ndarray, list[str], list[float]]:
    """A column scaled to [0, 1] for a parallel-coordinates axis, with its tick labels."""
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().sum() >= series.notna().sum() and numeric.notna().any():
        lo, hi = float(numeric.min()), float(numeric.max())
        span = hi - lo if hi > lo else 1.0
        return ((numeric - lo) / span).to_numpy(dtype=float), [f"{lo:.3g}", f"{hi:.3g}"], [0.0, 1.0]
    labels = sorted({str(v) for v in series if not _missing(v)})
    pos = {v: i / max(1, len(labels) - 1) for i, v in enumerate(labels)}
    scaled = series.map(lambda v: np.nan if _missing(v) else pos.get(str(v), np.nan))
    return scaled.to_numpy(dtype=float), labels, [pos[v] for v in labels]


def parallel_coordinates(search: Search, *, final: bool = False) -> Figure:
    """One line a complete trial across the searched parameters and the objectives, every axis
    scaled to its own range (ticks: range ends, or the categories). A parameter a trial does
    not have (Hurst without fBm noise) leaves a gap in its line."""
    prefix = profile_prefix(final)
    df = search.trials[search.trials["status"] == COMPLETE]
    if final:
        df = df[df[prefix + search.objective_names[0]].notna()]
    columns = search.varied_params + [prefix + n for n in search.objective_names]
    front = search.front(final=final)
    colour = colours(search, front)
    fig = Figure(figsize=(max(6.0, 1.25 * len(columns)), 4.2))
    ax = fig.subplots()
    scaled, ticks = {}, {}
    for c in columns:
        scaled[c], labels, positions = _axis_values(df[c])
        ticks[c] = (labels, positions)
    x = np.arange(len(columns))
    order = [t for t in df.index if t not in colour] + [t for t in df.index if t in colour]
    for tid in order:
        i = df.index.get_loc(tid)
        y = np.array([scaled[c][i] for c in columns])
        on = tid in colour
        ax.plot(x, y, color=colour.get(tid, GREY), lw=2.0 if on else 0.8, alpha=1.0 if on else 0.6, marker="o",
                ms=4 if on else 2, ls="--" if df.loc[tid, "deterministic"] else "-", label=tid if on else None,
                zorder=3 if on else 2)
    for xi, c in zip(x, columns):
        ax.axvline(xi, color="k", lw=0.6)
        labels, positions = ticks[c]
        for label, pos in zip(labels, positions):
            ax.text(xi + 0.04, pos, label, fontsize=7, va="center")
    ax.set_xticks(x, [short_name(c.removeprefix(prefix)) for c in columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    if front:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="front", title_fontsize=7)
    ax.set_title("parameters and objectives, validation split (dashed: deterministic; colour: Pareto-optimal)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def hypervolume_curves(search: Search, ref: Sequence[float] | None = None) -> Figure:
    """Hypervolume of the trials ended so far (validation split, search profile), over trials
    and over time; flagged trials add nothing unless the search kept them on its fronts."""
    ref = search.reference_point() if ref is None else ref
    if not np.isfinite(ref).all():
        raise ValueError(f"no hypervolume without a finite reference point, but got {list(ref)} (an objective "
                         f"without bounds has no finite value in any complete trial)")
    trials = search.trials.assign(status=np.where(search.eligible(), search.trials["status"], "flagged"))
    progress = hypervolume_progress(trials, search.objectives, ref)
    fig = Figure(figsize=(9, 3.2))
    left, right = fig.subplots(1, 2, sharey=True)
    left.step(progress["trials"], progress["hypervolume"], where="post", marker="o", ms=3)
    left.set_xlabel("trials ended")
    left.set_ylabel("hypervolume")
    right.step(progress["seconds"] / 60, progress["hypervolume"], where="post", marker="o", ms=3)
    right.set_xlabel("minutes since the first trial started")
    ref_text = ", ".join(f"{short_name(n)} {r:.3g}" for n, r in zip(search.objective_names, ref))
    fig.suptitle(f"hypervolume as the search went on (validation split; reference point: {ref_text})", fontsize=9)
    fig.tight_layout()
    return fig


def sweep_curves(search: Search, trial_ids: Sequence[str], *, final: bool = True) -> Figure:
    """Accuracy against input-noise intensity, one panel per noise kind, and against the SNR of
    noise added to the waveform before the STFT (the `snr` sweep, when the reports have it), for
    `trial_ids` (e.g. the front's members and the baseline); shaded: the 95 % interval. Uses each
    trial's final-profile report when there is one (and `final`), else its search-profile report."""
    reports = {}
    for tid in trial_ids:
        report = (search.eval_report(tid, final=True) if final else None) or search.eval_report(tid)
        if report is not None:
            reports[tid] = report
    kinds = sorted({k for r in reports.values() for k in r["sweep"]}) or ["gaussian"]
    panels = kinds + (["snr"] if any(r.get("snr") for r in reports.values()) else [])
    fig = Figure(figsize=(4.6 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    base = baseline_id(search, final=final and search.has_final)
    colour = colours(search, list(reports))
    for ax, kind in zip(axes[0], panels):
        for tid, report in reports.items():
            if kind == "snr":  # no clean point: clean is +inf dB
                points = report.get("snr") or []
                x = np.array([p[0] for p in points])
                est = [p[1] for p in points]
            else:
                points = report["sweep"].get(kind, [])
                x = np.array([0.0] + [p[0] for p in points])
                est = [report["clean"]] + [p[1] for p in points]
            if not points:
                continue
            y = np.array([e["value"] for e in est])
            lo, hi = np.array([e["low"] for e in est]), np.array([e["high"] for e in est])
            c = "black" if tid == base else colour[tid]
            label = f"{tid} (baseline)" if tid == base else tid
            ax.plot(x, y, marker="o", ms=3, color=c, ls="--" if tid == base else "-", label=label)
            ax.fill_between(x, lo, hi, color=c, alpha=0.12)
        if kind == "snr":
            ax.set_title("noise floor in the waveform (before the STFT)", fontsize=9)
            ax.set_xlabel("SNR (dB; falling to the right)")
            ax.invert_xaxis()
        else:
            hurst = next((r["settings"].get("sweep_hurst") for r in reports.values() if "settings" in r), None)
            ax.set_title(f"{kind} input noise" + (f" (H {hurst:g})" if kind == "fbm" and hurst else ""), fontsize=9)
            ax.set_xlabel("noise intensity (std of the added noise; 0 = clean)")
        ax.set_ylim(0, 1.02)
    split = next((r.get("split") for r in reports.values()), "val")
    axes[0, 0].set_ylabel(f"{'validation' if split == 'val' else split} accuracy")
    if reports:
        axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def noise_surfaces(hursts: Sequence[float], *, size: int = 64, seed: int = 0) -> Figure:
    """A fractional Brownian surface for each Hurst exponent (as the study's Figure 1); the
    same seed for all, so the panels differ only in H. Requires `nsde` (torch)."""
    import torch

    from nsde.noise import fractional_brownian_field

    hursts = sorted({round(float(h), 3) for h in hursts})
    fig = Figure(figsize=(2.6 * max(1, len(hursts)), 2.9))
    axes = fig.subplots(1, max(1, len(hursts)), squeeze=False)
    for ax, h in zip(axes[0], hursts):
        gen = torch.Generator().manual_seed(seed)
        field = fractional_brownian_field((size, size), h, generator=gen)
        ax.imshow(field.numpy(), cmap="RdBu_r")
        ax.set_title(f"H = {h:.3g}", fontsize=9)
        ax.axis("off")
    for ax in axes[0][len(hursts):]:
        ax.axis("off")
    fig.suptitle(f"injected fBm noise of the front's Hurst exponents ({size}x{size}, unit variance)", fontsize=9)
    fig.tight_layout()
    return fig


def importance_bars(table: pd.DataFrame, *, trials: int | None = None) -> Figure:
    """One horizontal bar chart per objective: each parameter's share of the objective's
    variance (`analysis.importance.param_importances(...).table`), largest on top."""
    n = max(1, len(table.columns))
    fig = Figure(figsize=(3.2 * n, 0.35 * max(3, len(table)) + 1.2))
    axes = fig.subplots(1, n, squeeze=False, sharey=True)
    labels = [short_name(p) for p in table.index]
    for ax, objective in zip(axes[0], table.columns):
        ax.barh(range(len(table)), table[objective].to_numpy(), color=PALETTE[0])
        ax.set_yticks(range(len(table)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(short_name(objective), fontsize=9)
        ax.set_xlabel("importance (fANOVA)", fontsize=8)
    fig.suptitle("which parameter matters for which objective" + (f" ({trials} complete trials)" if trials else ""),
                 fontsize=9)
    fig.tight_layout()
    return fig
