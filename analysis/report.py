"""`python -m analysis.report`: one self-contained HTML file with everything about a search.

    python -m analysis.report --experiment nsde-search             # its latest search
    python -m analysis.report --experiment nsde-search --search default-20261126-081617
    python -m analysis.report --run-id 3f2a...                     # a search's parent run
    python -m analysis.report --tune-dir runs/default-20261126-081617

The file (default: `<search name>-report.html`) holds its figures as inline PNGs and no
scripts or links, so it can be mailed or archived as it is. Sections: the summary with the
hypervolume; the Pareto front (final and search profile) with 95 % intervals and the knee
point; the held-out test estimates of the final front and the baseline; their paired
comparison on the test split; deterministic vs NSDE models; the sanity checks of the attack;
the pairwise scatter matrix; the search-to-final shift; parallel coordinates; the
hypervolume over trials and time; the parameter importance per objective; the noise-sweep
curves of the front against the baseline; the front's attribution figures; the fBm surfaces of the front's Hurst exponents; failed
trials; every trial.

Every table and every figure with numbers says which split they come from: the search
selects on the VALIDATION split (every trial's numbers, both fronts, the hypervolumes), and
only the held-out sections are on the TEST split, which the search scored once, for the
final front and the baseline, after choosing them.
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

from analysis.compare import (
    baseline_id,
    front_and_baseline,
    front_hursts,
    group_summary,
    paired_versus_baseline,
    versus_baseline,
)
from analysis.hypervolume import hypervolume
from analysis.load import CHECKS, TEST_PREFIX, Search, add_source_arguments, search_from_arguments
from nsde.cli import user_errors
from nsde.metrics import OBJECTIVE_METRICS
from nsde.train.convergence import ConvergenceRule
from record import COMPLETE, FAILED, FIGURE_FILE, FINAL_PREFIX, STATUSES, profile_prefix

__all__ = ["check_table", "front_table", "held_out_table", "main", "paired_table", "render_report", "write_report"]

VALIDATION, TEST = "validation", "test"  # the splits' names in every caption
CHECK_ORDER = ("eps_zero", "large_eps", "eot", "transfer")  # nsde.metrics.adaptive_checks

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


def _table(df: pd.DataFrame, split: str | None = None, what: str = "") -> str:
    """A table as HTML; `split` (and `what`) go into its caption: which split its numbers are from."""
    caption = ""
    if split is not None:
        caption = f"<caption style='text-align:left;font-size:.9em'>Split: <b>{html.escape(split)}</b>" + (
            f"; {html.escape(what)}" if what else "") + "</caption>"
    if df.empty:
        return "<p>none</p>"
    text = df.to_html(float_format=lambda v: _fmt(v), na_rep="-", escape=True, border=0)
    return text.replace(">", ">" + caption, 1) if caption else text


def _interval(v, lo, hi) -> str:
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"


def _verdict(v) -> str:
    """A check's MLflow number as a word: 1 pass, 0 FAIL, NaN/absent not applicable."""
    if v is None or (isinstance(v, (float, np.floating)) and not math.isfinite(v)):
        return "n/a"
    return "pass" if float(v) == 1.0 else "FAIL"


def _check_names(search: Search) -> list[str]:
    found = {c.split("check_", 1)[1] for c in search.trials.columns
             if c.startswith(("check_", FINAL_PREFIX + "check_", TEST_PREFIX + "check_"))}
    return [c for c in CHECK_ORDER if c in found] + sorted(found - set(CHECK_ORDER))


def _checks_cell(row: pd.Series, prefix: str, checks: list[str]) -> str:
    """'pass', 'FAILED: large_eps (flagged)' or 'n/a' for one trial's numbers (`prefix`)."""
    passed = row.get(prefix + CHECKS, np.nan)
    if _verdict(passed) == "n/a":
        return "n/a"
    if float(passed) == 1.0:
        return "pass"
    failed = [c for c in checks if _verdict(row.get(f"{prefix}check_{c}", np.nan)) == "FAIL"]
    return f"FAILED: {', '.join(failed) or 'a check'} (flagged)"


def front_table(search: Search, *, final: bool) -> pd.DataFrame:
    """The front's members (validation numbers): searched parameters, objectives as
    'value [low, high]' and the attack's sanity checks ('pass', 'FAILED: ... (flagged)': only
    on a front the search kept flagged trials on, 'n/a')."""
    prefix = profile_prefix(final)
    front = search.front(final=final)
    df = search.trials.loc[front]
    knee = search.knee(final=final)
    checks = _check_names(search)
    out = pd.DataFrame(index=df.index)
    out["kind"] = np.where(df["deterministic"], "deterministic", "NSDE")
    out["knee"] = ["*" if t == knee else "" for t in df.index]
    for p in search.varied_params:
        out[p.split("/")[-1]] = df[p].map(_fmt)
    for name, mode in search.objectives:
        out[f"{name} ({mode})"] = [
            _interval(v, lo, hi) for v, lo, hi in
            zip(df[prefix + name], df.get(f"{prefix}{name}_low", np.nan), df.get(f"{prefix}{name}_high", np.nan))]
    out["attack checks"] = [_checks_cell(row, prefix, checks) for _, row in df.iterrows()]
    out["run id"] = df["run_id"]
    return out


def _held_out_ids(search: Search) -> list[str]:
    """The tested trials: the final front's first (in its order), then the others (the baseline)."""
    if not search.has_test:
        return []
    tested = [t for t in search.trials.index if search.trials.loc[t, "tested"]]
    front = [t for t in search.front(final=True) if t in tested]
    return front + [t for t in tested if t not in front]


def _examples(search: Search, tid: str, name: str, seeds: float) -> float:
    """Examples behind a test number: its `_n` with one seed (with several, `_n` counts seeds)."""
    if seeds == 1:
        return search.trials.loc[tid].get(f"{TEST_PREFIX}{name}_n", np.nan)
    record = search.test_report(tid)
    if not record or not record.get("reports"):
        return np.nan
    from nsde.metrics import objective_samples

    try:
        return float(len(objective_samples(record["reports"][0]["per_example"], name)[0]))
    except (KeyError, ValueError):
        return np.nan


def held_out_table(search: Search) -> pd.DataFrame:
    """The held-out TEST estimates of the final front and the baseline: per objective
    'value [low, high]' (with several training seeds: the mean over seeds, with Student's t on
    the seeds for 2-4 and a two-level bootstrap from 5) and `n` (examples), beside each
    robustness objective its retention above chance (`ObjectiveSpec.retention`: absolute
    robustness is capped by clean accuracy), the training seeds and the attack checks on test.
    Empty when the search scored nothing on test."""
    from nsde.metrics import objective
    ids = _held_out_ids(search)
    if not ids:
        return pd.DataFrame()
    df = search.trials.loc[ids]
    front, knee = search.front(final=True), search.knee(final=True)
    base = baseline_id(search, final=True)
    checks = _check_names(search)
    out = pd.DataFrame(index=df.index)
    out["role"] = [", ".join(r for r, on in (("front", t in front), ("knee", t == knee), ("baseline", t == base))
                             if on) or "-" for t in df.index]
    out["kind"] = np.where(df["deterministic"], "deterministic", "NSDE")
    seeds = df[f"{TEST_PREFIX}seeds"].fillna(1.0)
    for name, mode in search.objectives:
        t = TEST_PREFIX + name
        out[f"{name} ({mode})"] = [_interval(v, lo, hi) for v, lo, hi in
                                   zip(df[t], df.get(f"{t}_low", np.nan), df.get(f"{t}_high", np.nan))]
        out[f"{name} n"] = [_examples(search, tid, name, k) for tid, k in zip(df.index, seeds)]
        spec = objective(name) if name in OBJECTIVE_METRICS else None
        for retained in (spec.retention[-1:] if spec else ()):  # the chance-corrected one
            r = TEST_PREFIX + retained
            if r in df and df[r].notna().any():
                out[retained] = [_interval(v, lo, hi) for v, lo, hi in
                                 zip(df[r], df.get(f"{r}_low", np.nan), df.get(f"{r}_high", np.nan))]
    out["seeds"] = seeds.astype(int)
    out["attack checks (test)"] = [_checks_cell(row, TEST_PREFIX, checks) for _, row in df.iterrows()]
    return out


def _signed_interval(d: float, lo: float, hi: float) -> str:
    return f"{d:+.4g} [{lo:+.4g}, {hi:+.4g}]" if math.isfinite(d) and math.isfinite(lo) else "-"


def paired_table(paired: pd.DataFrame) -> pd.DataFrame:
    """`paired_versus_baseline`'s frame for reading: the difference with its interval and p for
    these trained models (examples resampled; McNemar), and at the method level (seeds as
    replicates) with the minimal detectable effect, where there are seeds to say it."""
    if paired.empty:
        return paired
    out = pd.DataFrame(index=paired.index)
    out["kind"] = paired["kind"]
    out["knee"] = np.where(paired["knee"], "*", "")
    out["member"] = paired["member"]
    out["baseline"] = paired["baseline"]
    out["these models: difference [95 % interval]"] = [
        _signed_interval(d, lo, hi) for d, lo, hi in zip(paired["difference"], paired["low"], paired["high"])]
    out["p (bootstrap)"] = [f"< {p:.2g}" if bound else p for p, bound in zip(paired["p"], paired["p_bound"])]
    out["p (McNemar)"] = paired["mcnemar_p"]
    out["n"] = paired["n"]
    out["seeds"] = paired["seeds"]
    if "method_p" in paired and paired["method_p"].notna().any():
        out["the method: difference [95 % interval]"] = [
            _signed_interval(d, lo, hi) for d, lo, hi in
            zip(paired["method_difference"], paired["method_low"], paired["method_high"])]
        out["p (method)"] = paired["method_p"]
        out["minimal detectable effect"] = paired["mde"]
    return out


def _flags(df: pd.DataFrame) -> pd.Series:
    """Flagged in the search or the final profile's numbers (False where a table lacks the columns)."""
    none = pd.Series(False, index=df.index)
    return (df.get("flagged", none).fillna(False).astype(bool)
            | df.get(FINAL_PREFIX + "flagged", none).fillna(False).astype(bool))


def check_table(search: Search) -> pd.DataFrame:
    """The attack's sanity checks (`nsde.metrics.adaptive_checks`) of the final front, the
    baseline and every flagged trial: each check 'pass', 'FAIL' or 'n/a' (not applicable, e.g.
    EOT for a deterministic model), from the final profile's numbers where the trial was
    re-scored (else the search profile's; both validation), and the verdict on test."""
    df = search.trials
    final = search.has_final
    front = search.front(final=final)
    base = baseline_id(search, final=final)
    is_flagged = _flags(df)
    flagged = [t for t in df.index if is_flagged[t]]
    ids = front + [t for t in [base] + flagged if t is not None and t not in front]
    ids = list(dict.fromkeys(ids))
    if not ids:
        return pd.DataFrame()
    checks = _check_names(search)
    rows = []
    for tid in ids:
        row = df.loc[tid]
        prefix = profile_prefix(bool(row.get("rescored", False)))
        roles = [r for r, on in (("front", tid in front), ("baseline", tid == base),
                                 ("flagged", bool(is_flagged[tid]))) if on]
        entry = {"trial": tid, "role": ", ".join(roles),
                 "kind": "deterministic" if row["deterministic"] else "NSDE",
                 "profile": "final" if prefix else "search"}
        entry.update({c: _verdict(row.get(f"{prefix}check_{c}", np.nan)) for c in checks})
        entry["all"] = _verdict(row.get(prefix + CHECKS, np.nan))
        entry["test"] = _verdict(row.get(TEST_PREFIX + CHECKS, np.nan)) if row.get("tested", False) else "-"
        rows.append(entry)
    return pd.DataFrame(rows).set_index("trial")


def location_table(search: Search, trial_ids: list[str], *, prefix: str = "") -> pd.DataFrame:
    """Clean accuracy per sensor location (columns, from the injection point to main power) of
    `trial_ids`: validation numbers of the search profile, or with prefix TEST_PREFIX the held-out ones."""
    from nsde.metrics.evaluate import LOCATION_PREFIX

    columns = [c for c in search.trials.columns if c.startswith(prefix + LOCATION_PREFIX)]
    if prefix == "":
        columns = [c for c in columns if c.startswith(LOCATION_PREFIX)]
    ids = [t for t in trial_ids if t in search.trials.index]
    if not columns or not ids:
        return pd.DataFrame()
    out = search.trials.loc[ids, columns].rename(columns=lambda c: c[len(prefix + LOCATION_PREFIX):])
    base = baseline_id(search, final=search.has_final)
    out.index = [f"{t} (baseline)" if t == base else t for t in out.index]
    return out


class _Page:
    """The report being written: its HTML parts in order and its figures (key -> base64 PNG)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: dict[str, str] = {}

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def figure(self, key: str, fig, caption: str) -> None:
        self.figures[key] = data = _png(fig)
        self.parts.append(_img(data, caption))


def _profile(search: Search) -> str:
    return "final profile" if search.has_final else "search profile"


def _summary(page: _Page, search: Search) -> None:
    """The title, the table of what the search was and found, and how to read it."""
    df, final = search.trials, search.has_final
    counts = df["status"].value_counts().to_dict()
    ref = search.reference_point()
    has_ref = bool(np.isfinite(ref).all())  # an unbounded objective without any finite value has none
    hv_search = hypervolume(search.values(), search.directions, ref) if has_ref else None
    hv_final = hypervolume(search.values(final=True), search.directions, ref) if final and has_ref else None
    seconds = search.timing.get("total_s")
    held = _held_out_ids(search)
    seeds = int(df.loc[held, f"{TEST_PREFIX}seeds"].fillna(1).max()) if held else 0
    rows = [
        ("source", search.source), ("status", search.status),
        ("objectives", ", ".join(f"{n} ({m})" for n, m in search.objectives)),
        ("splits", f"{VALIDATION}: every trial, both fronts, the hypervolumes; {TEST}: "
                   + (f"the final front and the baseline, scored once ({seeds} training seed"
                      f"{'s' if seeds > 1 else ''} each)" if held else "not scored")),
        ("trials", ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + f" of {len(df)}"),
        ("flagged trials (an attack sanity check failed)",
         f"{int(_flags(df).sum())}, "
         + ("kept on the fronts (--keep-flagged)" if search.keep_flagged else "kept off the fronts")),
        (f"converged trials ({ConvergenceRule().describe()})", _converged(df)),
        ("wall time", f"{seconds / 60:.1f} min" if seconds else "-"),
        (f"hypervolume ({VALIDATION}, search profile, all complete trials)", _fmt(hv_search)),
        (f"hypervolume ({VALIDATION}, final profile, re-scored trials)", _fmt(hv_final) if final else "not re-scored"),
        ("reference point", ", ".join(f"{n} {r:.3g}" for n, r in zip(search.objective_names, ref))),
        ("space", search.settings.get("space", search.space.get("name", "-"))),
        ("warm start (prior trials)", _warm_start(search)),
        ("constraints", _constraints(search)),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S")),
    ]
    page.add(f"<h1>Search {html.escape(search.name)}</h1>",
             "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>"
                                 f"{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>")
    page.add("<p class='note'>The hypervolume is the share of objective space the trials dominate, measured "
             "from the reference point (0 for accuracies and ABC, which lie in [0, 1]; 1 would be a perfect "
             "model on every objective). The Pareto front holds the trials no other trial beats on every "
             "objective at once; the knee point (*) is the front member closest to the ideal point once each "
             "objective is rescaled to the front's range. The search chooses everything on the validation "
             "split; the test split is touched once, at the end, for what it chose, so the held-out numbers "
             "below are unbiased estimates.</p>")


def _converged(df: pd.DataFrame) -> str:
    known = df["converged"].dropna() if "converged" in df else pd.Series(dtype=float)
    if known.empty:
        return "not recorded"
    n = int((known == 1).sum())
    return (f"{n} of {len(known)}" + (f"; the other {len(known) - n} are marked NO in the trials table: their "
                                      "numbers measure a run still learning, not the method" if n < len(known) else ""))


def _constraints(search: Search) -> str:
    if not search.constraints:
        return "none"
    complete = search.trials["status"] == COMPLETE
    ok = search.feasible()[complete]
    n_unknown = int(ok.isna().sum())
    unknown = f" (a bound relative to the baseline could not be checked for {n_unknown})" if n_unknown else ""
    return (f"{', '.join(map(str, search.constraints))}: {int((ok == True).sum())} of {int(complete.sum())} "  # noqa: E712
            f"complete trials feasible{unknown}; an infeasible trial is on no front and adds no hypervolume "
            f"(baseline: trial {search.constraint_baseline() or 'none'})")


def _warm_start(search: Search) -> str:
    source = search.settings.get("warm_start")
    if not source:
        return "none"
    n = search.settings.get("warm_start_trials", "?")
    return (f"{n} complete trials of search {source}, added to the sampler's study before the first trial; "
            f"they ran no trial here, are not in these tables and do not count toward the trials above")


def _fronts(page: _Page, search: Search) -> None:
    """The Pareto front in the final profile (if re-scored) and in the search profile."""
    page.add("<h2>Pareto front</h2>")
    if search.has_final:
        page.add("<p class='note'>Final profile (the front re-scored at full attack strength). Values are "
                 "estimates with their 95 % interval.</p>"
                 + _table(front_table(search, final=True), VALIDATION, "final profile"))
        if search.front_change:
            fc = search.front_change
            page.add(f"<p class='note'>Of {len(fc.get('search_front', []))} search-front trials, "
                     f"{len(fc.get('kept', []))} stay on the final front; dropped: {fc.get('dropped') or 'none'}; "
                     f"joined: {fc.get('added') or 'none'}.</p>")
    page.add("<p class='note'>Search profile (every trial's cheap evaluation):</p>"
             + _table(front_table(search, final=False), VALIDATION, "search profile"))


def _held_out(page: _Page, search: Search) -> None:
    """The test-split estimates of the final front and the baseline, and their paired comparison."""
    page.add("<h2>Held-out test estimates</h2>")
    which = ("Every complete trial of the design, scored once on the test split (a designed study selects "
             "nothing; its analysis: python -m analysis.study)." if search.space.get("designed") else
             "The final front and the deterministic baseline, scored once on the test split after the search "
             "had chosen them on validation (nothing was selected on these numbers).")
    if _held_out_ids(search):
        page.add(f"<p class='note'>{which} Value [95 % interval]; <i>n</i>: the examples behind each number; "
                 "with several training seeds each number is the mean over the seeds (retrained on the same data) with a "
                 "two-level bootstrap interval (seeds, then examples).</p>"
                 + _table(held_out_table(search), TEST, "held out, final profile"))
    else:
        page.add("<p class='note'>The search scored nothing on the test split (run without the final "
                 "re-evaluation, or before held-out scoring existed).</p>")
    page.add("<h2>Paired comparison with the baseline (test split)</h2>",
             "<p class='note'>Each final-front member against the baseline on the same test examples "
             "(seed k against seed k with several seeds): the difference member - baseline, signed so that "
             "positive is better for the member whatever the direction. <i>These models</i>: its "
             "paired-bootstrap 95 % interval and two-sided p-value over the test examples (a p that no "
             "resample reached is a bound, '&lt; 1/B'), and for clean accuracy the exact McNemar p-value on "
             "the examples where the two models disagree (several seeds: combined by Cochran-Mantel-Haenszel). "
             "That describes the trained models, not the training method: with one training seed a retrained "
             "model may land elsewhere. With several seeds (<code>--final-seeds</code>), <i>the method</i>: the "
             "seeds as replicates in a seed-blocked linear model, with Student-t intervals and the smallest "
             "difference the design detects with 80 % power; a difference below it is not evidence of no "
             "effect.</p>")
    try:
        paired = paired_versus_baseline(search)
        page.add(_table(paired_table(paired), TEST, "held out, paired with the baseline")
                 if not paired.empty else "<p>none (no held-out records, no baseline, or the front is only "
                                           "the baseline)</p>")
    except (ValueError, KeyError) as err:  # unpaired reports, or records without per-example outcomes
        page.add(f"<p class='note'>not compared: {html.escape(str(err))}</p>")


def _deterministic_and_checks(page: _Page, search: Search) -> None:
    """Deterministic vs NSDE models, and the attack's sanity checks of every trial."""
    profile = _profile(search)
    page.add("<h2>Deterministic (sigma 0) vs NSDE models</h2>",
             "<p class='note'>The study found that NSDE models give up a few points of clean accuracy for "
             "robustness to random noise and APGD attacks and a higher ABC. The first table compares the two "
             "kinds on and off the front; the second puts each front member next to the deterministic "
             "baseline (positive: better than the baseline; <i>separated</i>: the two 95 % intervals do not "
             "overlap, a comparison of intervals, not of pairs; the paired test is above).</p>",
             _table(group_summary(search, final=search.has_final), VALIDATION, profile),
             _table(versus_baseline(search, final=search.has_final), VALIDATION, profile + ", intervals compared"))
    page.add("<h2>Sanity checks of the attack</h2>",
             "<p class='note'>The adaptive-attack checks behind the APGD numbers: at eps -> 0 robust accuracy "
             "equals clean accuracy (<i>eps_zero</i>); at a very large eps it reaches chance "
             "(<i>large_eps</i>); for stochastic models more EOT samples do not change it beyond noise "
             "(<i>eot</i>) and the noise-off twin's adversarial examples are not stronger (<i>transfer</i>). "
             "n/a: not applicable (a model without noise at evaluation). A trial that fails one is "
             "<b>flagged</b>: its robustness number is suspect, and "
             + ("the search kept such trials on its fronts (--keep-flagged)." if search.keep_flagged
                else "the fronts leave it out (--keep-flagged keeps it).")
             + " Final-profile numbers where the trial was re-scored, else the search profile's; "
               "<i>test</i>: the verdict on the held-out split.</p>",
             _table(check_table(search), VALIDATION, "final profile where re-scored; column 'test': test split"))


def _objective_figures(page: _Page, search: Search) -> None:
    """The objectives pairwise, the search-to-final shift, parallel coordinates and the hypervolume curve."""
    from analysis import plots

    final, profile = search.has_final, _profile(search)
    page.add("<h2>Objectives pairwise</h2>")
    page.figure("scatter_matrix", plots.scatter_matrix(search, final=final),
                f"Validation split, {profile}: each pair of objectives; coloured: Pareto-optimal, grey: dominated, "
                "square: deterministic, star: knee point, black edge: the baseline. Diagonal: each objective's "
                "distribution.")
    if final:
        page.add("<h2>Search profile vs final profile</h2>")
        page.figure("front_shift", plots.front_shift(search),
                    "Validation split: how the re-scored trials moved between the cheap search evaluation and the "
                    "full-strength one.")
    page.add("<h2>Parameters and objectives</h2>")
    page.figure("parallel_coordinates", plots.parallel_coordinates(search, final=final),
                f"Validation split, {profile}: one line a trial; each axis scaled to its range (labels: its ends or "
                "categories).")
    ref = search.reference_point()
    if np.isfinite(ref).all():
        page.add("<h2>Hypervolume over the search</h2>")
        page.figure("hypervolume", plots.hypervolume_curves(search, ref), "Validation split, search profile: "
                    "hypervolume of the trials ended so far; it rises only when a trial extends the front.")


def _importance(page: _Page, search: Search) -> None:
    """Per objective, which parameters its variance over the complete trials comes from."""
    from analysis import plots
    from analysis.importance import param_importances

    imp = param_importances(search, final=False)
    page.add("<h2>Which parameter matters for which objective</h2>",
             "<p class='note'>fANOVA (Optuna's importance evaluator) per objective over the complete trials' "
             "search-profile numbers: each parameter's share of the objective's variance. Only parameters "
             "every trial has are rated (a conditional one, such as the Hurst exponent, counts through its "
             "parent, the noise shape). It is descriptive: it depends on the ranges searched and tests "
             "nothing (a designed study's factor tests are in its section).</p>")
    if imp.reason:
        page.add(f"<p class='note'>{html.escape(imp.reason)}.</p>")
    else:
        page.figure("importance", plots.importance_bars(imp.table, trials=imp.trials),
                    f"Validation split, search profile: {imp.trials} complete trials.")


def _front_figures(page: _Page, search: Search) -> None:
    """The front against the baseline: noise sweeps, accuracy per location, attributions, injected noise."""
    from analysis import plots

    final, profile = search.has_final, _profile(search)
    base = baseline_id(search, final=final)
    chosen = front_and_baseline(search, final=final)
    page.add("<h2>Noise-sweep curves</h2>")
    page.figure("sweep_curves", plots.sweep_curves(search, chosen),
                f"Validation split, {profile}: accuracy as input noise grows, for the front's members and the "
                "deterministic baseline (dashed).")
    locations = location_table(search, chosen)
    if not locations.empty:
        page.add("<h2>Accuracy per sensor location</h2>",
                 "<p class='note'>Clean accuracy of the front's members and the baseline at each sensor "
                 "location, from the injection point (left) to main power (right): where the noise floor "
                 "rises and the channel low-passes the harmonics away.</p>"
                 + _table(locations, VALIDATION, "search profile"))
        tested = location_table(search, _held_out_ids(search), prefix=TEST_PREFIX)
        if not tested.empty:
            page.add(_table(tested, TEST, "held out, final profile"))
    page.add("<h2>Attributions</h2>",
             "<p class='note'>Integrated Gradients and NoiseTunnel maps on one example of each of the first "
             "four classes (as the study's Figure 4); sharper, less noisy maps are better. A regular "
             "grid (ResNet: blobs every 16-32 px; ConvNeXt: a 4-px texture, block edges every 16-32 px) "
             "is the backbone's downsampling lattice, not the spectrogram: compare maps within one "
             "backbone (docs/metrics.md, 'Attribution maps').</p>")
    knee = search.knee(final=final)
    picks = ([knee] if knee else []) + [t for t in chosen if t != knee]
    for tid in picks[:MAX_ATTRIBUTION_FIGURES]:
        path = search.artifact(tid, FIGURE_FILE)
        if path is not None:
            label = "baseline" if tid == base else "knee point" if tid == knee else "front"
            page.add(_img(base64.b64encode(path.read_bytes()).decode(), f"trial {tid} ({label})"))
    hursts = front_hursts(search, final=final)
    if hursts:
        page.add("<h2>Injected noise of the front</h2>")
        page.figure("noise_surfaces", plots.noise_surfaces(hursts),
                    "Fractional Brownian surfaces at the front's Hurst exponents (H < 0.5 rough, H > 0.5 smooth).")


def _trials(page: _Page, search: Search) -> None:
    """The failed trials with their errors, and every trial with its parameters, objectives and checks."""
    df, final = search.trials, search.has_final
    failed = df[df["status"] == FAILED]
    if len(failed):
        page.add("<h2>Failed trials</h2>" + _table(failed[["failure", "run_id"]]))
    page.add("<h2>All trials</h2>")
    checks = _check_names(search)
    table = df.copy()
    table["attack checks"] = [_checks_cell(row, "", checks) for _, row in df.iterrows()]
    cols = ["status", "deterministic"] + search.varied_params + search.objective_names + ["attack checks"]
    if "converged" in df:
        table["converged"] = [{1.0: "yes", 0.0: "NO"}.get(v, "-") for v in df["converged"]]
        cols.append("converged")
    if search.constraints:
        table["feasible"] = [{True: "yes", False: "NO"}.get(v, "unknown") for v in search.feasible()]
        cols.append("feasible")
    if final:
        table["final attack checks"] = [_checks_cell(row, FINAL_PREFIX, checks) if row["rescored"] else "-"
                                        for _, row in df.iterrows()]
        cols += [FINAL_PREFIX + n for n in search.objective_names] + ["final attack checks"]
    page.add(_table(table[[c for c in cols if c in table]].rename(columns=lambda c: c.split("/")[-1]),
                    VALIDATION, "search profile; final_: final profile; flagged: an attack check failed"))


def _study(page: _Page, search: Search) -> None:
    """A designed search: every cell against the baseline (test, paired, Holm), the shape match
    and the study's figures (`analysis.study`)."""
    from analysis.study import Study, figures

    page.add("<h2>The designed study: each cell against the baseline (test split)</h2>")
    try:
        study = Study.of(search)
        paired, match, means = study.paired(), study.shape_match(), study.cell_means()
    except (ValueError, KeyError) as err:  # no baseline, or reports without the per-example columns
        page.add(f"<p class='note'>not analysed: {html.escape(str(err))}</p>")
        return
    if paired.empty:
        page.add("<p>none: no cell shares a tested seed with the baseline</p>")
        return
    page.add("<p class='note'>Each cell (a configuration without its seed) against the deterministic baseline "
             "(positive = better than the baseline). <i>The method</i>: every trained model's test number is one "
             "observation, the cells are compared in a seed-blocked linear model (value ~ cell + seed, the "
             "residual pooled over the cells) with Student-t intervals; <i>Holm p</i> corrects over the cells, one "
             "family per metric, * = Holm p &lt; 0.05; a difference below the <i>minimal detectable effect</i> "
             "(80 % power at Holm's first step) is not evidence of no effect. <i>These models</i>: seed k against "
             "seed k on the same test examples, the paired bootstrap over the examples: it describes the trained "
             "models, not the method. Every family is exploratory unless the study names it confirmatory. "
             "docs/study.md explains the design.</p>")
    table = pd.DataFrame({
        "the method: difference [95 % interval]": [_signed_interval(d, lo, hi) for d, lo, hi in zip(
            paired["method_difference"], paired["method_low"], paired["method_high"])],
        "Holm p (method)": paired["method_p_holm"], "significant": np.where(paired["significant"], "*", ""),
        "minimal detectable effect": paired["mde"],
        "these models: difference [95 % interval]": [_signed_interval(d, lo, hi) for d, lo, hi in zip(
            paired["difference"], paired["low"], paired["high"])],
        "Holm p (models)": paired["p_holm"], "seeds": paired["seeds"], "family": paired["family"]},
        index=paired.index)
    page.add(_table(table, TEST, "final profile; the method and these models"))
    convergence = study.convergence()
    if not convergence.empty:
        page.add(f"<p class='note'>How many of each cell's trials converged ({ConvergenceRule().describe()}, "
                 "<code>nsde.train.convergence</code>): a cell whose "
                 "trials did not is compared while still learning, and its difference measures speed, not the "
                 "method.</p>", _table(convergence, VALIDATION, "training"))
    power, factors = study.power(), study.factor_tests()
    if not power.empty:
        page.add("<p class='note'>What the design can detect, per metric: the seeds' residual standard deviation, "
                 "the minimal detectable effect, and the seeds per cell that would detect a difference of 0.02 "
                 "and 0.05.</p>", _table(power, TEST, "the method"))
    if not factors.empty:
        page.add("<p class='note'>Each design factor in a seed-blocked factorial ANOVA on the test numbers (type II, "
                 "p-values): the test of a factor. The importance section below describes the validation numbers "
                 "and tests nothing.</p>", _table(factors[["F", "df", "df_resid", "p"]], TEST, "the method"))
    if not match.empty:
        page.add("<p class='note'>Is the protection shape-matched? The gain under the input noise shaped like the "
                 "injected one, minus the mean gain under the other input noises.</p>",
                 _table(match[["matched", "contrast", "method_low", "method_high", "method_p_holm", "significant",
                               "low", "high", "p_holm"]], TEST, "the method and these models"))
    captions = {"study_snr": "Test accuracy against SNR: the baseline and the three cells best on validation",
                "study_hurst": "Each metric's difference from the baseline against H",
                "study_front": "Cell means (test) with their intervals; front labelled"}
    for name, fig in figures(study, paired, means).items():
        page.figure(name, fig, captions[name])


def _rung_audit(page: _Page, search: Search) -> None:
    """`--rung-audit`: what MOASHA's rule would have stopped, and how well each rung ranked the trials."""
    audit = search.rung_audit()
    if audit.empty:
        return
    regret = sorted({t for cell in audit["regret_trials"] for t in cell.split(", ") if t})
    page.add("<h2>Rung audit: what early stopping would have cost</h2>",
             "<p class='note'>The search ran MOASHA's rule at every rung but stopped nothing (--rung-audit). "
             "<i>Kendall tau</i>: agreement between the trials' ranking at the rung and at their end (validation, "
             "search profile; 1 = the same order). <i>Would stop</i>: trials the rule stops at that rung; "
             "<i>regret</i>: those of them that end on the Pareto front. "
             + (f"<b>The rule would have stopped {len(regret)} front member(s): {html.escape(', '.join(regret))}"
                f".</b>" if regret else "The rule would have stopped no front member.") + "</p>",
             _table(audit, VALIDATION, "rung evaluations against the search profile"))


def render_report(search: Search, *, figures_dir: Path | None = None) -> str:
    """The report of `search` as an HTML string; each figure also goes to `figures_dir` as PNG."""
    page = _Page()
    _summary(page, search)
    _fronts(page, search)
    _held_out(page, search)
    if search.space.get("designed") and search.has_test:
        _study(page, search)
    _deterministic_and_checks(page, search)
    if (search.trials["status"] == COMPLETE).any():  # the figures need at least one trial's objectives
        _objective_figures(page, search)
        _importance(page, search)
        _front_figures(page, search)
    if search.rungs.get("audit"):
        _rung_audit(page, search)
    _trials(page, search)
    if figures_dir is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
        for key, data in page.figures.items():
            (figures_dir / f"{key}.png").write_bytes(base64.b64decode(data))
    body = "\n".join(page.parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(search.name)} report</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(search: Search, out: str | Path | None = None, *, figures_dir: str | Path | None = None) -> Path:
    """Write the report of `search` to `out` (default `<name>-report.html`); returns its path."""
    path = Path(out) if out is not None else Path(f"{search.name}-report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(search, figures_dir=Path(figures_dir) if figures_dir else None), encoding="utf-8")
    return path


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_source_arguments(p)
    p.add_argument("--out", default=None, help="the HTML file (default: <search name>-report.html)")
    p.add_argument("--figures", default=None, help="also write each figure as a PNG into this folder")
    args = p.parse_args(argv)
    try:
        search = search_from_arguments(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_report(search, args.out, figures_dir=args.figures)
    print(f"report: {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
