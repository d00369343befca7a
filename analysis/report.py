"""`python -m analysis.report`: one self-contained HTML file with everything about a search.

    python -m analysis.report --experiment nsde-search             # its latest search
    python -m analysis.report --experiment nsde-search --search default-20261126-081617
    python -m analysis.report --run-id 3f2a...                     # a search's parent run
    python -m analysis.report --tune-dir runs/default-20261126-081617

The file (default: `<search name>-report.html`) holds its figures as inline PNGs and no
scripts or links, so it can be mailed or archived as it is. Sections: the summary with the
hypervolume; the Pareto front (final and search profile) with 95 % intervals and the knee
point; deterministic vs NSDE models; the pairwise scatter matrix; the search-to-final shift;
parallel coordinates; the hypervolume over trials and time; the noise-sweep curves of the
front against the baseline; the front's attribution figures; the fBm surfaces of the front's
Hurst exponents; failed trials; every trial.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.compare import baseline_id, front_and_baseline, front_hursts, group_summary, versus_baseline
from analysis.hypervolume import hypervolume
from analysis.load import Search, load_search, load_tune

__all__ = ["main", "render_report", "write_report"]

MAX_ATTRIBUTION_FIGURES = 6
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}img{max-width:100%}p.note{color:#555;font-size:.9em;max-width:60em}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, caption: str) -> str:
    return f'<figure><img src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>none</p>"
    return df.to_html(float_format=lambda v: _fmt(v), na_rep="-", escape=True, border=0)


def front_table(search: Search, *, final: bool) -> pd.DataFrame:
    """The front's members: searched parameters and objectives as 'value [low, high]'."""
    prefix = "final_" if final else ""
    front = search.front(final=final)
    df = search.trials.loc[front]
    knee = search.knee(final=final)
    out = pd.DataFrame(index=df.index)
    out["kind"] = np.where(df["deterministic"], "deterministic", "NSDE")
    out["knee"] = ["*" if t == knee else "" for t in df.index]
    for p in search.varied_params:
        out[p.split("/")[-1]] = df[p].map(_fmt)
    for name, mode in search.objectives:
        out[f"{name} ({mode})"] = [
            f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" for v, lo, hi in
            zip(df[prefix + name], df.get(f"{prefix}{name}_low", np.nan), df.get(f"{prefix}{name}_high", np.nan))]
    out["run id"] = df["run_id"]
    return out


def render_report(search: Search, *, figures_dir: Path | None = None) -> str:
    """The report of `search` as an HTML string; each figure also goes to `figures_dir` as PNG."""
    from analysis import plots

    parts: list[str] = []
    figures: dict[str, str] = {}

    def figure(key: str, fig, caption: str) -> None:
        data = _png(fig)
        figures[key] = data
        parts.append(_img(data, caption))

    df = search.trials
    counts = df["status"].value_counts().to_dict()
    final = search.has_final
    ref = search.reference_point()
    has_ref = bool(np.isfinite(ref).all())  # an unbounded objective without any finite value has none
    hv_search = hypervolume(search.values(), search.directions, ref) if has_ref else None
    hv_final = hypervolume(search.values(final=True), search.directions, ref) if final and has_ref else None
    seconds = search.timing.get("total_s")
    parts.append(f"<h1>Search {html.escape(search.name)}</h1>")
    parts.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in [
        ("source", search.source), ("status", search.status),
        ("objectives", ", ".join(f"{n} ({m})" for n, m in search.objectives)),
        ("trials", ", ".join(f"{counts.get(s, 0)} {s}" for s in ("complete", "pruned", "failed")) + f" of {len(df)}"),
        ("wall time", f"{seconds / 60:.1f} min" if seconds else "-"),
        ("hypervolume (search profile, all complete trials)", _fmt(hv_search)),
        ("hypervolume (final profile, re-scored trials)", _fmt(hv_final) if final else "not re-scored"),
        ("reference point", ", ".join(f"{n} {r:.3g}" for n, r in zip(search.objective_names, ref))),
        ("space", search.settings.get("space", search.space.get("name", "-"))),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S")),
    ]) + "</table>")
    parts.append("<p class='note'>The hypervolume is the share of objective space the trials dominate, measured "
                 "from the reference point (0 for accuracies and ABC, which lie in [0, 1]; 1 would be a perfect "
                 "model on every objective). The Pareto front holds the trials no other trial beats on every "
                 "objective at once; the knee point (*) is the front member closest to the ideal point once each "
                 "objective is rescaled to the front's range.</p>")

    parts.append("<h2>Pareto front</h2>")
    if final:
        parts.append("<p class='note'>Final profile (the front re-scored at full attack strength). Values are "
                     "estimates with their 95 % interval.</p>" + _table(front_table(search, final=True)))
        if search.front_change:
            fc = search.front_change
            parts.append(f"<p class='note'>Of {len(fc.get('search_front', []))} search-front trials, "
                         f"{len(fc.get('kept', []))} stay on the final front; dropped: {fc.get('dropped') or 'none'}; "
                         f"joined: {fc.get('added') or 'none'}.</p>")
    parts.append("<p class='note'>Search profile (every trial's cheap evaluation):</p>"
                 + _table(front_table(search, final=False)))

    parts.append("<h2>Deterministic (sigma 0) vs NSDE models</h2>")
    parts.append("<p class='note'>The study found that NSDE models give up a few points of clean accuracy for "
                 "robustness to random noise and APGD attacks and a higher ABC. The first table compares the two "
                 "kinds on and off the front; the second puts each front member next to the deterministic "
                 "baseline (positive: better than the baseline; <i>separated</i>: the 95 % intervals do not "
                 "overlap).</p>")
    parts.append(_table(group_summary(search, final=final)))
    parts.append(_table(versus_baseline(search, final=final)))

    complete = int((df["status"] == "complete").sum())
    if complete:
        parts.append("<h2>Objectives pairwise</h2>")
        figure("scatter_matrix", plots.scatter_matrix(search, final=final),
               "Each pair of objectives; coloured: Pareto-optimal, grey: dominated, square: deterministic, "
               "star: knee point, black edge: the baseline. Diagonal: each objective's distribution.")
        if final:
            parts.append("<h2>Search profile vs final profile</h2>")
            figure("front_shift", plots.front_shift(search),
                   "How the re-scored trials moved between the cheap search evaluation and the full-strength one.")
        parts.append("<h2>Parameters and objectives</h2>")
        figure("parallel_coordinates", plots.parallel_coordinates(search, final=final),
               "One line a trial; each axis scaled to its range (labels: its ends or categories).")
        if has_ref:
            parts.append("<h2>Hypervolume over the search</h2>")
            figure("hypervolume", plots.hypervolume_curves(search, ref), "Hypervolume of the trials ended so far "
                   "(search profile): it rises only when a trial extends the front.")
        base = baseline_id(search, final=final)
        chosen = front_and_baseline(search, final=final)
        parts.append("<h2>Noise-sweep curves</h2>")
        figure("sweep_curves", plots.sweep_curves(search, chosen),
               "Test accuracy as input noise grows, for the front's members and the deterministic baseline (dashed).")
        parts.append("<h2>Attributions</h2>")
        parts.append("<p class='note'>Integrated Gradients and NoiseTunnel maps on one example of each of the first "
                     "four classes (as the study's Figure 4); sharper, less noisy maps are better.</p>")
        knee = search.knee(final=final)
        picks = ([knee] if knee else []) + [t for t in chosen if t != knee]
        for tid in picks[:MAX_ATTRIBUTION_FIGURES]:
            path = search.artifact(tid, "attributions.png")
            if path is not None:
                label = "baseline" if tid == base else "knee point" if tid == knee else "front"
                parts.append(_img(base64.b64encode(path.read_bytes()).decode(), f"trial {tid} ({label})"))
        hursts = front_hursts(search, final=final)
        if hursts:
            parts.append("<h2>Injected noise of the front</h2>")
            figure("noise_surfaces", plots.noise_surfaces(hursts),
                   "Fractional Brownian surfaces at the front's Hurst exponents (H < 0.5 rough, H > 0.5 smooth).")

    failed = df[df["status"] == "failed"]
    if len(failed):
        parts.append("<h2>Failed trials</h2>" + _table(failed[["failure", "run_id"]]))
    parts.append("<h2>All trials</h2>")
    cols = ["status", "deterministic"] + search.varied_params + search.objective_names
    cols += [f"final_{n}" for n in search.objective_names if final]
    parts.append(_table(df[[c for c in cols if c in df]].rename(columns=lambda c: c.split("/")[-1])))

    if figures_dir is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
        for key, data in figures.items():
            (figures_dir / f"{key}.png").write_bytes(base64.b64decode(data))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(search.name)} report</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(search: Search, out: str | Path | None = None, *, figures_dir: str | Path | None = None) -> Path:
    """Write the report of `search` to `out` (default `<name>-report.html`); returns its path."""
    path = Path(out) if out is not None else Path(f"{search.name}-report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(search, figures_dir=Path(figures_dir) if figures_dir else None), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--experiment", help="MLflow experiment: report its latest search (or --search NAME)")
    src.add_argument("--run-id", help="MLflow run id of a search (its parent run, or one of its trials)")
    src.add_argument("--tune-dir", help="a search's Tune folder (<--storage-path>/<name>), without MLflow")
    p.add_argument("--search", default=None, help="with --experiment: the search's name")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI")
    p.add_argument("--out", default=None, help="the HTML file (default: <search name>-report.html)")
    p.add_argument("--figures", default=None, help="also write each figure as a PNG into this folder")
    args = p.parse_args(argv)
    try:
        if args.tune_dir:
            search = load_tune(args.tune_dir)
        else:
            search = load_search(args.experiment, run_id=args.run_id, search=args.search,
                                 tracking_uri=args.tracking_uri)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_report(search, args.out, figures_dir=args.figures)
    print(f"report: {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
