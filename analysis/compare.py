"""The study's comparison: deterministic models (sigma 0) against NSDE models, on the front and off it.

`group_summary` sets the two kinds side by side (how many trials, mean and best of each
objective, on and off the Pareto front); `versus_baseline` puts each front member next to
the search's deterministic baseline, objective by objective, and says where the 95 %
intervals do not overlap. Both read the VALIDATION numbers the search selected on.

`paired_versus_baseline` is the held-out comparison: each member of the final front against
the baseline on the TEST split, example by example (the two models were scored on the same
examples), with a paired-bootstrap 95 % interval and p-value per objective and the exact
McNemar test for clean accuracy; `paired_test` does the same for any two test records. Those
describe *these trained models*. With several training seeds (`--final-seeds`) each row also
carries the method-level comparison (`analysis.method`: the seeds are the replicates, the
residual pooled over the front and the baseline) and its minimal detectable effect.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Search
from record import COMPLETE, profile_prefix

__all__ = ["baseline_id", "front_and_baseline", "front_hursts", "group_summary", "paired_test",
           "paired_versus_baseline", "versus_baseline"]


def baseline_id(search: Search, *, final: bool = False) -> str | None:
    """The deterministic baseline: the trial the search re-scored as such, else the complete
    deterministic trial with the best clean accuracy; None when the search ran none."""
    df = search.trials
    prefix = profile_prefix(final)
    chosen = df.index[df["baseline"].astype(bool)]
    if len(chosen) and (not final or np.isfinite(df.loc[chosen[0], prefix + search.objective_names[0]])):
        return str(chosen[0])
    det = df[(df["status"] == COMPLETE) & df["deterministic"]]
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
    """Deterministic vs NSDE trials, on and off the front: count, mean and best of each objective
    (validation numbers).

    Only complete trials count (with final numbers: only the re-scored ones), and flagged
    trials (an attack sanity check failed) only when the search kept them on the fronts.
    "Best" is the maximum for an objective to maximise and the minimum for one to minimise.
    """
    prefix = profile_prefix(final)
    df = search.trials[search.eligible(final=final)].copy()
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

    This compares each model's own interval, not pairs: it ignores that both were scored on
    the same examples, so it is conservative, and it is meant for the VALIDATION numbers the
    search selected on (search or, with `final`, final profile). For the held-out numbers use
    `paired_versus_baseline` (test split, paired bootstrap, McNemar).

    Returns an empty frame when the search has no deterministic baseline or no front.
    """
    base = baseline_id(search, final=final)
    front = search.front(final=final)
    if base is None or not front:
        return pd.DataFrame()
    prefix = profile_prefix(final)
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


# --------------------------------------------------------------------- held-out, paired


def _reports(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-seed reports of a test record ({"seeds", "reports"}), or [report] for one report."""
    if "reports" in record:
        return list(record["reports"])
    if "per_example" in record:
        return [record]
    raise ValueError(f"not a test record nor an EvalReport dict (keys: {sorted(record)})")


def paired_test(member: dict[str, Any], baseline: dict[str, Any], objectives: Sequence[tuple[str, str]], *,
                names: tuple[str, str] = ("member", "baseline"), resamples: int | None = None,
                seed: int | None = None) -> pd.DataFrame:
    """`member` against `baseline`, paired example by example, for each (objective, direction).

    Args:
        member, baseline: test records (`Search.test_report`: {"seeds": [...], "reports":
            [EvalReport.to_dict(), one a seed]}) or single `EvalReport.to_dict()`s. With
            several seeds, seed k of one is paired with seed k of the other (both trained
            with the same k-th seed), over the seeds both have.
        objectives: (name, "max" | "min") pairs, names as in `nsde.metrics.objective_samples`
            (objectives, `sweep_area@<kind>`, `location_acc_<location>`); names without
            per-example values (`val_accuracy`, `train_seconds`) are left out.
        names: the two trials' names, for the error messages.
        resamples, seed: of the paired bootstrap (default: the baseline report's settings).

    Returns:
        One row an objective, about these trained models: `member` and `baseline` (the
        objective, mean over the paired seeds), `difference` (member - baseline, negated for a
        minimised objective: positive = the member is better) with its paired-bootstrap 95 %
        interval `low` / `high` (examples resampled jointly, the same resample for every seed)
        and two-sided bootstrap `p` (`p_bound`: no resample crossed 0, and `p` is the bound 1 /
        resamples), `mcnemar_p_seeds` (binary objectives, clean and per-location accuracy: the
        exact McNemar test of each seed's pair) and `mcnemar_p` (that test with one seed; with
        several, the Cochran-Mantel-Haenszel test of accuracy against the arm, stratified by
        seed; NaN for the other objectives), `n` (paired examples) and `seeds`.

    Raises:
        ValueError: the two were not scored on the same split or the same examples (naming
            both trials, the objective and the seed).
    """
    from nsde.metrics import has_samples
    from nsde.metrics.paired import paired_comparison

    a_reports, b_reports = _reports(member), _reports(baseline)
    seeds = min(len(a_reports), len(b_reports))
    if seeds == 0:
        raise ValueError(f"no test report of trial {names[0] if not a_reports else names[1]}")
    settings = b_reports[0].get("settings", {})
    resamples = int(resamples if resamples is not None else settings.get("resamples", 2000))
    seed = int(seed if seed is not None else settings.get("seed", 0))
    for k in range(seeds):
        sa, sb = a_reports[k].get("split"), b_reports[k].get("split")
        if sa != sb:
            raise ValueError(f"trial {names[0]} (split {sa!r}) and trial {names[1]} (split {sb!r}) were scored on "
                             f"different splits (seed {k}): they cannot be paired")
    rows = []
    for name, mode in objectives:
        if not has_samples(name):  # not a statistic of per-example values: nothing to pair
            continue
        row = paired_comparison(a_reports[:seeds], b_reports[:seeds], name, mode, names=names, resamples=resamples,
                                seed=seed)
        if row["mcnemar_p_seeds"] and seeds > 1:
            row["mcnemar_p"] = stratified_accuracy_test(a_reports[:seeds], b_reports[:seeds], name, names)
        rows.append({"objective": name, "direction": mode, **row})
    columns = ["objective", "direction", "member", "baseline", "difference", "low", "high", "p", "p_bound",
               "mcnemar_p", "mcnemar_p_seeds", "n", "seeds", "member_seeds", "baseline_seeds"]
    return pd.DataFrame(rows, columns=columns).set_index("objective")


def stratified_accuracy_test(a_reports: list[dict], b_reports: list[dict], name: str,
                             names: tuple[str, str] = ("member", "baseline")) -> float:
    """The Cochran-Mantel-Haenszel test (statsmodels' `StratifiedTable`) of the binary objective
    `name`: is correctness associated with the model, in 2 x 2 tables (model x correct) one per
    seed? It combines the seeds without pooling them into one table; like McNemar it treats the
    examples as the replicates, so it speaks of these trained models (conservative, since it
    ignores that the two models saw the same examples). 1.0 when the two never differ."""
    from statsmodels.stats.contingency_tables import StratifiedTable

    from nsde.metrics.paired import paired_samples

    a, b, _, width, n = paired_samples(a_reports, b_reports, name, names)
    right = [(int((a[:, k * width] > 0.5).sum()), int((b[:, k * width] > 0.5).sum())) for k in range(len(a_reports))]
    if all(ra == rb for ra, rb in right):
        return 1.0
    tables = np.stack([[[ra, n - ra], [rb, n - rb]] for ra, rb in right], axis=-1).astype(float)
    return float(StratifiedTable(tables).test_null_odds(correction=True).pvalue)


def paired_versus_baseline(search: Search, *, resamples: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """Each member of the final front against the baseline on the held-out TEST split, paired.

    Uses the test records the search wrote once for the final front and the baseline
    (`Search.test_report`): the first seed's report of each, or with several training seeds
    seed k against seed k (`paired_test`). Per objective: the difference (positive = the
    member is better, whatever the direction), its paired-bootstrap 95 % interval and p-value,
    and for clean accuracy the exact McNemar p-value.

    Returns:
        One row a (trial, objective) with the columns of `paired_test` (these trained models)
        plus `kind` (NSDE or deterministic), `knee` and the method-level columns
        (`analysis.method.METHOD_COLUMNS`: the seeds as replicates, the residual pooled over
        the compared trials and the baseline; NaN with one seed); the baseline itself is not
        compared with itself. Empty when the search has no final front, no baseline or no test
        record of the baseline; a front member without a test record is left out with a
        RuntimeWarning.

    Raises:
        ValueError: a member's test reports and the baseline's do not cover the same examples.
    """
    if not search.has_final:
        return pd.DataFrame()
    base = baseline_id(search, final=True)
    front = search.front(final=True)
    if base is None or not front:
        return pd.DataFrame()
    base_record = search.test_report(base)
    if base_record is None:
        return pd.DataFrame()
    from analysis.method import method_level

    knee = search.knee(final=True)
    parts, records = [], {base: base_record}
    for tid in front:
        if tid == base:
            continue
        record = search.test_report(tid)
        if record is None:
            warnings.warn(f"trial {tid} of the final front has no test record: left out of the paired comparison",
                          RuntimeWarning, stacklevel=2)
            continue
        records[tid] = record
        table = paired_test(record, base_record, search.objectives, names=(tid, base), resamples=resamples,
                            seed=seed)
        table.insert(0, "knee", tid == knee)
        table.insert(0, "kind", "deterministic" if search.trials.loc[tid, "deterministic"] else "NSDE")
        table.insert(0, "trial", tid)
        parts.append(table.reset_index())
    if not parts:
        return pd.DataFrame()
    # the blocks are the replicates by position, as the pairs are: seed k of one with seed k of the other
    by_position = {tid: {"seeds": list(range(len(r["reports"]))), "reports": r["reports"]} for tid, r in records.items()}
    method = method_level(by_position, base, search.objectives).drop(columns="seeds").rename_axis(["trial", "objective"])
    return pd.concat(parts, ignore_index=True).set_index(["trial", "objective"]).join(method)
