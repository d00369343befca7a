"""The designed study (`python -m search.run --space study`, docs/study.md): each cell against
the deterministic baseline on the TEST split, paired example by example and seed by seed,
with Holm's correction over the cells; whether the protection follows the injected shape;
the figures; and every number as one JSON record.

    from analysis import load_search
    from analysis.study import Study
    study = Study.of(load_search(experiment="nsde-study"))
    study.paired()              # (cell, metric): difference [low, high], p, Holm p, significant
    study.crossing()            # the gain of each cell under each input noise
    study.shape_match()         # gain at the matched input noise minus the mean gain at the others
    study.levels()              # each trial's accuracy at every noise level and attack eps
    python -m analysis.study --experiment nsde-study --out bench/results/study-cpu.json --figures docs/img

A cell is one configuration of the design without its seed (e.g. "fbm H=0.5 sigma=0.1"); its
trials are its seeds. Seed k of a cell is paired with seed k of the baseline (both trained
with the same seed, scored on the same test examples), and each difference is the mean over
the paired seeds of the per-seed statistic, with a paired-bootstrap interval (examples
resampled jointly in every seed; `analysis.compare.paired_test`). The family of a Holm
correction is one metric's comparisons over all cells.

Nothing here selects on test numbers: the cells are fixed by the design, and the cells the
SNR figure singles out are chosen on the validation numbers (the search profile's).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import paired_test
from analysis.load import Search
from nsde.metrics.objectives import FARTHEST, LOCATION_PREFIX, STUDY_METRICS, sweep_kind_objective
from nsde.noise import hurst_shapes
from record import CHECKS_PASSED, COMPLETE, SEED_KEY, TEST_PREFIX

__all__ = ["BASELINE", "FARTHEST", "METRICS", "PUBLISHED_LEVELS", "Study", "cell_of", "figures", "front_figure",
           "hurst_figure", "levels_markdown", "main", "markdown", "record", "snr_figure"]

BASELINE = "baseline"  # the cell of the deterministic trials (noise shape "none")


METRICS = STUDY_METRICS  # nsde.metrics.evaluate: clean, SNR and image sweeps, APGD, ABC AUROC, stability, far sensors


def cell_of(config: dict[str, Any]) -> str:
    """A trial's cell: its noise shape, H (for the shapes that have one) and sigma."""
    shape = config.get("noise/shape", "none")
    if shape == "none" or not config.get("noise/sigma"):
        return BASELINE
    hurst = f" H={float(config['noise/hurst']):g}" if shape in hurst_shapes() and "noise/hurst" in config else ""
    return f"{shape}{hurst} sigma={float(config['noise/sigma']):g}"


@dataclass
class Study:
    """A finished designed search, read for the study.

    Attributes:
        search: the search (`analysis.load_search` / `load_tune`).
        design: one row a trial: cell, shape, hurst, sigma, seed, status, tested.
        reports: trial id -> its test report (`EvalReport.to_dict()`), for the tested trials.
    """

    search: Search
    design: pd.DataFrame
    reports: dict[str, dict]

    @classmethod
    def of(cls, search: Search) -> Study:
        rows = []
        for tid in search.trials.index:
            config = search.config(tid)
            rows.append({"trial_id": str(tid), "cell": cell_of(config), "shape": config.get("noise/shape", "none"),
                         "hurst": config.get("noise/hurst", math.nan), "sigma": config.get("noise/sigma", 0.0),
                         "seed": config.get(SEED_KEY), "status": search.trials.loc[tid, "status"],
                         "tested": bool(search.trials.loc[tid, "tested"])})
        design = pd.DataFrame(rows).set_index("trial_id")
        reports = {}
        for tid in design.index[design["tested"]]:
            record = search.test_report(tid)
            if record is not None:
                reports[tid] = record["reports"][0]
        if BASELINE not in set(design["cell"]):
            raise ValueError(f"search {search.name!r} has no deterministic trial (noise shape 'none'): "
                             f"the study compares every cell with it")
        return cls(search, design, reports)

    # ------------------------------------------------------------------ cells and pairs

    def cells(self) -> list[str]:
        """The cells in design order, the baseline first."""
        order = list(dict.fromkeys(self.design["cell"]))
        return [BASELINE] + [c for c in order if c != BASELINE]

    def seeds(self, cell: str) -> dict[Any, str]:
        """Seed -> trial id of the cell's tested trials."""
        part = self.design[(self.design["cell"] == cell) & self.design.index.isin(list(self.reports))]
        return {seed: str(tid) for tid, seed in zip(part.index, part["seed"])}

    def pair(self, cell: str) -> tuple[dict, dict, list]:
        """The cell's and the baseline's test records over the seeds both have, in one seed order."""
        mine, base = self.seeds(cell), self.seeds(BASELINE)
        seeds = sorted(set(mine) & set(base))
        return ({"seeds": seeds, "reports": [self.reports[mine[s]] for s in seeds]},
                {"seeds": seeds, "reports": [self.reports[base[s]] for s in seeds]}, seeds)

    def checks_failed(self, cell: str) -> bool:
        """Whether an attack sanity check failed on test for any of the cell's tested trials
        (its APGD numbers are then suspect: `paired` marks them)."""
        checks = [self.reports[t].get("checks", {}) for t in self.seeds(cell).values()]
        return any(c.get("passed") is False for report in checks for c in report.values())

    def paired(self, metrics: Sequence[tuple[str, str]] = METRICS, *, alpha: float = 0.05) -> pd.DataFrame:
        """Every cell against the baseline, per metric (`paired_test`), with `p_holm` (Holm over
        the cells, one family a metric), `significant` (p_holm < alpha) and `checks_failed`
        (an attack sanity check failed on test for the cell or the baseline: the APGD rows are
        suspect). A cell without a seed in common with the baseline is left out. Rows: (cell,
        metric)."""
        from nsde.metrics.stats import holm

        parts = []
        for cell in self.cells()[1:]:
            member, base, seeds = self.pair(cell)
            if not seeds:
                continue
            table = paired_test(member, base, metrics, names=(cell, BASELINE))
            table.insert(0, "cell", cell)
            table["checks_failed"] = self.checks_failed(cell) or self.checks_failed(BASELINE)
            parts.append(table.reset_index().rename(columns={"objective": "metric"}))
        if not parts:
            return pd.DataFrame()
        df = pd.concat(parts, ignore_index=True)
        df["p_holm"] = np.nan
        for _, rows in df.groupby("metric", sort=False):
            df.loc[rows.index, "p_holm"] = holm(rows["p"].to_numpy())
        df["significant"] = df["p_holm"] < alpha
        return df.set_index(["cell", "metric"])

    def sweep_kinds(self) -> list[str]:
        """The test reports' image-domain input noises (e.g. "gaussian", "fbm:0.1")."""
        first = next(iter(self.reports.values()), None)
        return [] if first is None else list(first["settings"]["sweep_kinds"])

    def input_noises(self) -> list[str]:
        """The test reports' input noises: each sweep kind's area (`sweep_area@<kind>`), then the SNR sweep."""
        first = next(iter(self.reports.values()), None)
        if first is None:
            return []
        kinds = [sweep_kind_objective(k) for k in self.sweep_kinds()]
        return kinds + (["snr_accuracy"] if "snr" in first["per_example"] else [])

    def crossing(self, *, alpha: float = 0.05) -> pd.DataFrame:
        """The gain of every cell under every input noise (`input_noises`), paired as `paired`."""
        return self.paired([(n, "max") for n in self.input_noises()], alpha=alpha)

    def shape_match(self, *, alpha: float = 0.05) -> pd.DataFrame:
        """Does the gain follow the injected shape? For each noisy cell whose shape has a
        matching input noise (white -> `gaussian`, fBm or its stationary control at H ->
        `fbm:<H>`): the gain (vs the baseline) under the matched input noise minus the mean gain
        under the other image-domain input noises, per example and seed, with its paired
        bootstrap interval and p-value, and Holm over the cells. Positive: the protection is
        largest against the noise the model was trained with."""
        from nsde.metrics import objective_samples, paired_difference
        from nsde.metrics.stats import holm

        kinds = self.sweep_kinds()
        rows = []
        for cell in self.cells()[1:]:
            matched = _matched_kind(self.design[self.design["cell"] == cell].iloc[0], kinds)
            member, base, seeds = self.pair(cell)
            if matched is None or not seeds or len(kinds) < 2:
                continue
            others = [k for k in kinds if k != matched]

            def contrast(report: dict) -> tuple[np.ndarray, np.ndarray]:
                idx, match, _ = objective_samples(report["per_example"], sweep_kind_objective(matched))
                rest = [objective_samples(report["per_example"], sweep_kind_objective(k))[1][:, 0] for k in others]
                return idx, match[:, 0] - np.mean(rest, axis=0)

            a = [contrast(r) for r in member["reports"]]
            b = [contrast(r) for r in base["reports"]]
            if any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b)):
                raise ValueError(f"cell {cell!r} and the baseline were swept on different examples")
            est, p = paired_difference(np.column_stack([x[1] for x in a]), np.column_stack([y[1] for y in b]),
                                       np.mean, resamples=int(base["reports"][0]["settings"].get("resamples", 2000)))
            rows.append({"cell": cell, "matched": matched, "others": ", ".join(others), "contrast": est.value,
                         "low": est.low, "high": est.high, "p": p, "n": est.n, "seeds": len(seeds)})
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df["p_holm"] = holm(df["p"].to_numpy())
        df["significant"] = df["p_holm"] < alpha
        return df.set_index("cell")

    # ------------------------------------------------------------------ summaries

    def cell_means(self, metrics: Sequence[tuple[str, str]] = METRICS) -> pd.DataFrame:
        """Each cell's test numbers: the mean over its seeds with a two-level bootstrap interval
        (seeds, then examples: `nsde.metrics.stats.bootstrap_seeds`). Rows: cell; columns: metric,
        metric_low, metric_high, seeds."""
        from nsde.metrics.evaluate import objective_samples
        from nsde.metrics.stats import bootstrap_seeds

        rows = []
        for cell in self.cells():
            ids = list(self.seeds(cell).values())
            if not ids:
                continue
            row: dict[str, Any] = {"cell": cell, "seeds": len(ids)}
            reports = [self.reports[t] for t in ids]
            for name, _ in metrics:
                parts = [objective_samples(r["per_example"], name) for r in reports]
                est = bootstrap_seeds([p[1] for p in parts], parts[0][2],
                                      resamples=int(reports[0]["settings"].get("resamples", 2000)))
                row.update({name: est.value, f"{name}_low": est.low, f"{name}_high": est.high})
            rows.append(row)
        return pd.DataFrame(rows).set_index("cell")

    def importance(self) -> dict[str, Any]:
        """fANOVA importance per objective (`analysis.importance`, validation numbers) over every
        trial (where only the noise shape and the seed are set in all of them), and over the
        trials of the shapes with an H (where the shape, H, sigma and the seed are)."""
        from dataclasses import replace

        from analysis.importance import param_importances

        shaped = self.design.index[self.design["shape"].isin(hurst_shapes())]
        return {"all trials": param_importances(self.search),
                "fbm and stationary trials": param_importances(
                    replace(self.search, trials=self.search.trials.loc[list(shaped)]))}

    def levels(self) -> pd.DataFrame:
        """Each tested trial's test accuracy at every level of every input noise and attack, read
        from its report's summaries: `clean_accuracy`, `<kind>@<intensity>` for the image sweeps, `snr@<dB>`,
        `apgd@<eps>`, and `abc_correct` (mean ABC on correct predictions). These are the
        single-level numbers the published study tabulates (noise 0.25, APGD L2 0.05), so that a
        comparison with it reads them from the record. Rows: trial id, with its cell and seed."""
        rows = []
        for tid, report in self.reports.items():
            row: dict[str, Any] = {"trial_id": tid, "cell": self.design.loc[tid, "cell"],
                                   "seed": self.design.loc[tid, "seed"],
                                   "clean_accuracy": (report.get("clean") or {}).get("value", math.nan)}
            for kind, points in (report.get("sweep") or {}).items():
                row.update({f"{kind}@{float(level):g}": est["value"] for level, est in points})
            row.update({f"snr@{float(level):g}": est["value"] for level, est in report.get("snr") or []})
            row.update({f"apgd@{float(eps):g}": est["value"] for eps, est in (report.get("apgd") or {}).items()})
            row["abc_correct"] = (report.get("abc") or {}).get("mean_correct", {}).get("value", math.nan)
            rows.append(row)
        return pd.DataFrame(rows).set_index("trial_id") if rows else pd.DataFrame()

    def best_cells(self, metric: str = "snr_accuracy", k: int = 3) -> list[str]:
        """The k cells with the best mean VALIDATION value of `metric` (the search profile's
        numbers; never the test split), for the figures."""
        df = self.search.trials.join(self.design[["cell"]])
        df = df[(df["status"] == COMPLETE) & (df["cell"] != BASELINE)]
        if metric not in df:
            return []
        means = df.groupby("cell")[metric].mean().dropna()
        return list(means.sort_values(ascending=False).index[:k])


def _matched_kind(row: pd.Series, kinds: Sequence[str]) -> str | None:
    """The input noise shaped like a cell's injected noise, when the sweep has it."""
    if row["shape"] == "white":
        return "gaussian" if "gaussian" in kinds else None
    if row["shape"] in hurst_shapes():
        name = f"fbm:{float(row['hurst']):g}"
        return name if name in kinds else None
    return None


# ------------------------------------------------------------------------ figures


def snr_figure(study: Study, cells: Sequence[str]):
    """Test accuracy against SNR of `cells` (mean over seeds, two-level bootstrap band)."""
    from matplotlib.figure import Figure

    from analysis.plots import PALETTE
    from nsde.metrics.stats import bootstrap_seeds

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for colour, cell in zip(["black", *PALETTE], cells):
        reports = [study.reports[t] for t in study.seeds(cell).values()]
        if not reports or "snr" not in reports[0]["per_example"]:
            continue
        part = [r["per_example"]["snr"] for r in reports]
        levels = [float(k.split("_", 1)[1]) for k in part[0] if k.startswith("correct_")]
        ests = [bootstrap_seeds([np.asarray(p[f"correct_{lv:g}"], dtype=float) for p in part], np.mean,
                                resamples=500) for lv in levels]
        ax.plot(levels, [e.value for e in ests], "o-", color=colour, label=f"{cell} ({len(reports)} seeds)", ms=3)
        ax.fill_between(levels, [e.low for e in ests], [e.high for e in ests], color=colour, alpha=0.15)
    ax.set_xlabel("SNR (dB; noise added to the waveform)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def hurst_figure(study: Study, paired: pd.DataFrame, metrics: Sequence[str] | None = None):
    """Each metric's difference from the baseline (test, paired, 95 % interval) against H, one
    line per shape and sigma; white noise (no H) as a dashed level per sigma."""
    from matplotlib.figure import Figure

    from analysis.plots import PALETTE, short_name

    metrics = list(metrics or [m for m, _ in METRICS[:6]])
    fig = Figure(figsize=(3.4 * min(3, len(metrics)), 2.8 * math.ceil(len(metrics) / 3)))
    axes = fig.subplots(math.ceil(len(metrics) / 3), min(3, len(metrics)), squeeze=False).ravel()
    cells = study.design.drop_duplicates("cell").set_index("cell")
    sigmas = sorted({float(s) for s in cells["sigma"] if s})
    for ax, metric in zip(axes, metrics):
        for j, sigma in enumerate(sigmas):
            for shape, style in zip(hurst_shapes(), itertools.cycle(("o-", "s--", "^:", "v-."))):
                part = [(float(cells.loc[c, "hurst"]), paired.loc[(c, metric)]) for c in cells.index
                        if cells.loc[c, "shape"] == shape and float(cells.loc[c, "sigma"]) == sigma
                        and (c, metric) in paired.index]
                if part:
                    part.sort(key=lambda t: t[0])
                    h = [t[0] for t in part]
                    d = np.array([[t[1]["difference"], t[1]["low"], t[1]["high"]] for t in part])
                    ax.errorbar(h, d[:, 0], yerr=[d[:, 0] - d[:, 1], d[:, 2] - d[:, 0]], fmt=style,
                                color=PALETTE[j], capsize=2, ms=3, label=f"{shape} sigma={sigma:g}")
            white = [c for c in cells.index if cells.loc[c, "shape"] == "white" and float(cells.loc[c, "sigma"]) == sigma]
            if white and (white[0], metric) in paired.index:
                ax.axhline(paired.loc[(white[0], metric)]["difference"], color=PALETTE[j], ls=":",
                           label=f"white sigma={sigma:g}")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(short_name(metric), fontsize=9)
        ax.set_xlabel("Hurst exponent H", fontsize=8)
        ax.set_ylabel("NSDE - baseline (better > 0)", fontsize=8)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def front_figure(study: Study, means: pd.DataFrame, robust: Sequence[str] = ("snr_accuracy", "apgd_accuracy")):
    """Cell means (test, 95 % intervals) of clean accuracy against each robustness metric; the
    cells on that plane's Pareto front are labelled."""
    from matplotlib.figure import Figure

    from analysis.pareto import pareto_mask
    from analysis.plots import GREY, PALETTE, short_name

    fig = Figure(figsize=(5.0 * len(robust), 4.0))
    for ax, metric in zip(fig.subplots(1, len(robust), squeeze=False)[0], robust):
        x, y = means["clean_accuracy"].to_numpy(), means[metric].to_numpy()
        front = pareto_mask(np.column_stack([x, y]), ["max", "max"])
        for i, cell in enumerate(means.index):
            colour = "black" if cell == BASELINE else PALETTE[i % len(PALETTE)] if front[i] else GREY
            row = means.loc[cell]
            ax.errorbar(x[i], y[i], xerr=[[x[i] - row["clean_accuracy_low"]], [row["clean_accuracy_high"] - x[i]]],
                        yerr=[[y[i] - row[f"{metric}_low"]], [row[f"{metric}_high"] - y[i]]], fmt="s" if cell == BASELINE
                        else "o", color=colour, capsize=2, ms=4)
            if front[i] or cell == BASELINE:
                ax.annotate(cell, (x[i], y[i]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("clean accuracy (test)")
        ax.set_ylabel(f"{short_name(metric)} (test)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figures(study: Study, paired: pd.DataFrame, means: pd.DataFrame) -> dict:
    """The study's three figures by name: `study_snr` (the baseline and the three cells best on
    validation), `study_hurst` and `study_front` (`analysis.report` and `main` draw these)."""
    return {"study_snr": snr_figure(study, [BASELINE, *study.best_cells()]),
            "study_hurst": hurst_figure(study, paired), "study_front": front_figure(study, means)}


# ------------------------------------------------------------------------ records


def _rows(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.reset_index().to_json(orient="records")) if not df.empty else []


def record(study: Study, *, paired: pd.DataFrame | None = None, crossing: pd.DataFrame | None = None,
           match: pd.DataFrame | None = None, means: pd.DataFrame | None = None,
           levels: pd.DataFrame | None = None) -> dict:
    """Every number of the study as one JSON-ready dict: the design, each trial's validation
    and test numbers, the paired table, the crossing, the shape match, the cell means and the
    parameter importance (validation numbers), and each trial's accuracy at every level (`levels`)."""
    s = study.search
    trials = s.trials.join(study.design[["cell", "seed"]])
    keep = ["cell", "seed", "status", *s.objective_names, *(TEST_PREFIX + m for m, _ in METRICS),
            TEST_PREFIX + CHECKS_PASSED]
    keep = list(dict.fromkeys(keep + [c for c in trials if c.startswith(TEST_PREFIX + LOCATION_PREFIX)]))
    return {
        "search": s.name, "source": s.source, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "design": {"cells": study.cells(), "seeds": sorted({x for x in study.design["seed"] if x is not None}),
                   "space": s.space, "settings": s.settings, "metrics": [list(m) for m in METRICS],
                   "input_noises": study.input_noises(), "correction": "Holm over the cells, one family per metric"},
        "timing": {k: v for k, v in s.timing.items() if k.endswith("_s")},
        "trials": _rows(trials[[c for c in keep if c in trials]]),
        "paired": _rows(study.paired() if paired is None else paired),
        "crossing": _rows(study.crossing() if crossing is None else crossing),
        "shape_match": _rows(study.shape_match() if match is None else match),
        "cell_means": _rows(study.cell_means() if means is None else means),
        "levels": _rows(study.levels() if levels is None else levels),
        "importance": {k: v.to_dict() for k, v in study.importance().items()},
    }


def _ci(value: float, low: float, high: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def markdown(paired: pd.DataFrame, match: pd.DataFrame, means: pd.DataFrame) -> str:
    """The study's tables as Markdown (docs/study.md): differences from the baseline with 95 %
    intervals, a star where Holm's p < 0.05 (and APGD differences whose attack failed a sanity
    check marked); the shape-match contrasts; the cell means."""
    out = []
    if not paired.empty:
        metrics = list(dict.fromkeys(paired.index.get_level_values("metric")))
        out.append("| cell | " + " | ".join(metrics) + " |")
        out.append("|---|" + "---|" * len(metrics))
        for cell in dict.fromkeys(paired.index.get_level_values("cell")):
            cells = []
            for m in metrics:
                r = paired.loc[(cell, m)] if (cell, m) in paired.index else None
                cells.append("" if r is None else _ci(r["difference"], r["low"], r["high"]) +
                             (" *" if r["significant"] else "") +
                             (" (attack check failed)" if m.startswith("apgd") and r.get("checks_failed") else ""))
            out.append(f"| {cell} | " + " | ".join(cells) + " |")
    if not match.empty:
        out += ["", "| cell | matched input noise | gain there minus mean gain at the others | Holm p |", "|---|---|---|---|"]
        for cell, r in match.iterrows():
            p_text = "< 1/resamples" if r["p_holm"] == 0 else f"{r['p_holm']:.3g}"  # no resample crossed 0
            out.append(f"| {cell} | {r['matched']} | {_ci(r['contrast'], r['low'], r['high'])}"
                       f"{' *' if r['significant'] else ''} | {p_text} |")
    if not means.empty:
        metrics = [c for c in means.columns if not c.endswith(("_low", "_high")) and c != "seeds"]
        out += ["", "| cell | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for cell, r in means.iterrows():
            out.append(f"| {cell} | {int(r['seeds'])} | " + " | ".join(
                f"{r[m]:.3f} [{r[m + '_low']:.3f}, {r[m + '_high']:.3f}]" for m in metrics) + " |")
    return "\n".join(out) + "\n"


# the published study's single-level numbers: clean, white noise 0.25, APGD-CE L2 0.05, ABC on correct predictions
PUBLISHED_LEVELS = ("clean_accuracy", "gaussian@0.25", "apgd@0.05", "abc_correct")


def levels_markdown(levels: pd.DataFrame, columns: Sequence[str] = PUBLISHED_LEVELS) -> str:
    """Each cell's mean over its seeds (and the seeds' range) of single-level test numbers
    (`Study.levels`): by default the ones the published study tabulates, clean accuracy, white noise at
    intensity 0.25, APGD-CE L2 at eps 0.05 and the mean ABC on correct predictions."""
    columns = [c for c in columns if c in levels]
    if levels.empty or not columns:
        return ""
    out = ["| cell | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for cell, part in levels.groupby("cell", sort=False):
        out.append(f"| {cell} | {len(part)} | " + " | ".join(
            f"{part[c].mean():.3f} ({part[c].min():.3f}-{part[c].max():.3f})" for c in columns) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from analysis.load import add_source_arguments, search_from_arguments

    p = argparse.ArgumentParser(prog="python -m analysis.study", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_source_arguments(p)
    p.add_argument("--out", default="bench/results/study-cpu.json", help="the JSON record of every number")
    p.add_argument("--figures", default=None, help="write study_snr.png, study_hurst.png, study_front.png here")
    p.add_argument("--markdown", default=None, help="write the tables as Markdown to this file")
    args = p.parse_args(argv)
    try:
        study = Study.of(search_from_arguments(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paired, crossing, match, means = study.paired(), study.crossing(), study.shape_match(), study.cell_means()
    levels = study.levels()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record(study, paired=paired, crossing=crossing, match=match, means=means,
                                     levels=levels), indent=1))
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(paired, match, means) + "\n" + markdown(crossing, match.iloc[:0],
                                                                                       means.iloc[:0, :0])
                                       + "\n" + levels_markdown(levels))
        print(f"wrote {args.markdown}")
    if args.figures:
        folder = Path(args.figures)
        folder.mkdir(parents=True, exist_ok=True)
        for name, fig in figures(study, paired, means).items():
            fig.savefig(folder / f"{name}.png", dpi=110)
            print(f"wrote {folder / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
