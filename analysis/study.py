"""The designed study (`python -m search.run --space study`, docs/study.md): each cell against
the deterministic baseline on the TEST split, paired example by example and seed by seed,
with Holm's correction over the cells; whether the protection follows the injected shape;
the figures; and every number as one JSON record.

    from analysis import load_search
    from analysis.study import Study
    study = Study.of(load_search(experiment="nsde-study"))
    study.paired()              # (cell, metric): the difference at the method and the models' level
    study.power()               # per metric: the seeds' residual, the minimal detectable effect
    study.factor_tests()        # each design factor in a seed-blocked ANOVA, per metric
    study.crossing()            # the gain of each cell under each input noise
    study.shape_match()         # gain at the matched input noise minus the mean gain at the others
    study.levels()              # each trial's accuracy at every noise level and attack eps
    python -m analysis.study --experiment nsde-study --out bench/results/study-cpu.json --figures docs/img
    python -m analysis.study --from-record bench/results/study-cpu.json --markdown tables.md

A cell is one configuration of the design without its seed (e.g. "fbm H=0.5 sigma=0.1"); its
trials are its seeds. Every comparison with the baseline is made at two levels:

- **the method** (`analysis.method`): each trained model's test statistic is one observation,
  and the cells are compared with the baseline in the seed-blocked linear model value ~ cell +
  seed, the residual pooled over all cells; Student-t intervals and p-values, the minimal
  detectable effect of the design, and `significant` (Holm over the cells). This is what a
  claim about training with a noise rests on.
- **these trained models** (`analysis.compare.paired_test`): seed k of a cell against seed k
  of the baseline (the same training seed, the same test examples), the mean over the paired
  seeds of the per-seed statistic, with a paired-bootstrap interval (examples resampled jointly
  in every seed): `low`, `high`, `p`, `p_holm`, `significant_models`.

The family of a Holm correction is one metric's comparisons over all cells; every family is
exploratory unless `paired(confirmatory=...)` names its metric. `--from-record` re-analyses a
stored record at the method level from its per-trial test numbers (no per-example values).

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
from analysis.method import (
    METHOD_NOTE,
    blocked_contrasts,
    contrast_table,
    factor_tests,
    minimal_detectable_effect,
    seeds_needed,
    statistic_of,
)
from nsde.cli import user_errors
from nsde.metrics.objectives import FARTHEST, LOCATION_PREFIX, STUDY_METRICS, sweep_kind_objective
from nsde.noise import hurst_shapes
from nsde.train.augment import AdversarialConfig, AugmentConfig
from nsde.train.convergence import CONVERGENCE_KEYS
from record import CHECKS_PASSED, COMPLETE, SEED_KEY, TEST_PREFIX

__all__ = ["BASELINE", "FARTHEST", "METRICS", "PUBLISHED_LEVELS", "Study", "cell_of", "practice_of", "factor_table", "figures",
           "front_figure", "hurst_figure", "levels_markdown", "main", "markdown", "method_table", "parse_cell",
           "power_table", "record", "record_values", "snr_figure"]

BASELINE = "baseline"  # the cell of the deterministic trials (noise shape "none")
MODELS_NOTE = "these trained models: paired bootstrap over the test examples, seed k against seed k"


METRICS = STUDY_METRICS  # nsde.metrics.evaluate: clean, SNR and image sweeps, APGD, ABC AUROC, stability, far sensors


def practice_of(config: dict[str, Any]) -> str:
    """The practitioner's training options of a trial, as its cell label shows them ("" for none):
    the augmentation with the settings its kind uses, and adversarial training's eps, steps and
    ramp (every setting that makes it another arm, so two arms never share a label)."""
    aug, adv = AugmentConfig(), AdversarialConfig()
    parts = []
    kind = config.get("augment/kind", aug.kind)
    if kind != "none":
        def get(name):
            return config.get(f"augment/{name}", getattr(aug, name))

        if kind == "signal":
            parts.append(f"augment=signal snr={get('snr_low'):g}..{get('snr_high'):g}"
                         + (f" color={get('color'):g}" if get("color") else ""))
        else:
            parts.append(f"augment={kind} s={get('low'):g}..{get('high'):g}"
                         + (f" aug_H={get('hurst'):g}" if kind == "fbm" else ""))
    eps = float(config.get("adversarial/eps") or 0)
    if eps > 0:
        steps, ramp = config.get("adversarial/steps", adv.steps), config.get("adversarial/ramp_epochs", adv.ramp_epochs)
        alpha = config.get("adversarial/alpha", adv.alpha)
        parts.append(f"adv={eps:g} steps={steps}" + (f" alpha={float(alpha):g}" if alpha else "")
                     + (f" ramp={ramp}" if ramp else ""))
    return " ".join(parts)


def cell_of(config: dict[str, Any]) -> str:
    """A trial's cell: its noise shape, H (for the shapes that have one) and sigma, then the
    practitioner's training options when it has them (`practice_of`: "none augment=signal
    snr=-5..20" is an input-noise arm without an NSDE); the plain model is the baseline."""
    shape = config.get("noise/shape", "none")
    practice = practice_of(config)
    extra = f" {practice}" if practice else ""
    if shape == "none" or not config.get("noise/sigma"):
        return f"none{extra}" if extra else BASELINE
    hurst = f" H={float(config['noise/hurst']):g}" if shape in hurst_shapes() and "noise/hurst" in config else ""
    return f"{shape}{hurst} sigma={float(config['noise/sigma']):g}{extra}"


def parse_cell(cell: str) -> dict[str, Any]:
    """`cell_of`'s label back to its factors: {"shape", "hurst" (NaN without one), "sigma"}."""
    if cell == BASELINE:
        return {"shape": "none", "hurst": math.nan, "sigma": 0.0}
    shape, *rest = cell.split()
    factors = dict(part.split("=", 1) for part in rest if "=" in part)
    return {"shape": shape, "hurst": float(factors.get("H", "nan")), "sigma": float(factors.get("sigma", 0.0))}


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
                         "practice": practice_of(config),
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

    def available(self, metrics: Sequence[tuple[str, str]] = METRICS) -> list[tuple[str, str]]:
        """The metrics the test reports hold per-example values of (a report written before a
        column existed, e.g. the retentions' chance, lacks that metric)."""
        from nsde.metrics import objective_samples

        first = next(iter(self.reports.values()), None)
        out = []
        for name, mode in metrics:
            try:
                if first is not None:
                    objective_samples(first["per_example"], name)
                    out.append((name, mode))
            except (KeyError, ValueError):
                continue
        return out

    def values(self, metrics: Sequence[tuple[str, str]] = METRICS) -> pd.DataFrame:
        """One row a tested trial: its cell, seed and factors (shape, hurst, sigma) and each
        metric's statistic on its test report (NaN where the report lacks the metric): the
        observations of the method-level analysis (`method_table`, `power_table`, `factor_table`)."""
        names = [m for m, _ in self.available(metrics)]
        rows = []
        for tid, report in self.reports.items():
            design = self.design.loc[tid]
            row = {"trial_id": tid, "cell": design["cell"], "seed": design["seed"], "shape": design["shape"],
                   "hurst": design["hurst"], "sigma": design["sigma"], "practice": design.get("practice", "")}
            row.update({n: statistic_of(report, n) for n in names})
            rows.append(row)
        return pd.DataFrame(rows, columns=["trial_id", "cell", "seed", "shape", "hurst", "sigma", "practice", *names]
                            ).set_index("trial_id")

    def paired(self, metrics: Sequence[tuple[str, str]] = METRICS, *, alpha: float = 0.05,
               confirmatory: Sequence[str] = ()) -> pd.DataFrame:
        """Every cell against the baseline, per metric the reports hold (`available`), at both
        levels (module docstring). Rows: (cell, metric).

        The method (`method_table`): `method_difference`, `method_low` / `method_high`,
        `method_p`, `method_df`, `sigma` (the seeds' residual), `mde` (the smallest difference
        the design detects with 80 % power at Holm's first step), `method_p_holm`,
        `significant` (method_p_holm < alpha) and `family` (confirmatory or exploratory).
        These trained models (`paired_test`): `difference`, `low` / `high`, `p` (`p_bound`: a
        bound, no resample crossed 0), `p_holm`, `significant_models`, `mcnemar_p` (per seed in
        `mcnemar_p_seeds`, combined by Cochran-Mantel-Haenszel), `n` and `seeds`.
        `checks_failed`: an attack sanity check failed on test for the cell or the baseline (the
        APGD rows are suspect). A cell without a seed in common with the baseline is left out.
        """
        from nsde.metrics.stats import holm

        metrics = self.available(metrics)
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
        df["significant_models"] = df["p_holm"] < alpha
        method = method_table(self.values(metrics), metrics, alpha=alpha, confirmatory=confirmatory)
        return df.set_index(["cell", "metric"]).join(method.drop(columns="seeds"))

    def convergence(self) -> pd.DataFrame:
        """Per cell: its trials with convergence diagnostics, how many converged under the rule
        (`nsde.train.convergence`: validation flat over the last 20 % of epochs), the median best
        epoch and validation slope (points per epoch). Empty when no trial recorded them."""
        trials = self.search.trials
        if "converged" not in trials:
            return pd.DataFrame()
        # (MLflow keeps no NaN: a run too short for a slope has no val_slope)
        df = self.design.join(trials.reindex(columns=["converged", "best_epoch", "val_slope"]))
        df = df[df["converged"].notna()]
        if df.empty:
            return pd.DataFrame()
        order = [c for c in self.cells() if c in set(df["cell"])]
        out = df.groupby("cell").agg(trials=("converged", "size"), converged=("converged", "sum"),
                                     median_best_epoch=("best_epoch", "median"),
                                     median_slope_points=("val_slope", lambda v: 100 * v.median()))
        out["converged"] = out["converged"].astype(int)
        return out.loc[order]

    def power(self, metrics: Sequence[tuple[str, str]] = METRICS, *, alpha: float = 0.05,
              effects: Sequence[float] = (0.02, 0.05)) -> pd.DataFrame:
        """Per metric, what the design can detect (`power_table` on `values`)."""
        return power_table(self.values(metrics), self.available(metrics), alpha=alpha, effects=effects)

    def factor_tests(self, metrics: Sequence[tuple[str, str]] = METRICS) -> pd.DataFrame:
        """Each design factor per metric in a seed-blocked ANOVA on the test numbers (`factor_table`)."""
        return factor_table(self.values(metrics), self.available(metrics))

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
        under the other image-domain input noises, per example and seed. Positive: the
        protection is largest against the noise the model was trained with.

        Two levels, as in `paired`: these trained models (`contrast`, `low`, `high`, `p` with
        `p_bound`: the paired bootstrap over examples, `p_holm`) and the method (`method_low`,
        `method_high`, `method_p`, `method_df`: each seed's contrast is one observation, a
        paired t-test over the seeds, `method_p_holm`, `significant`)."""
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
            resamples = int(base["reports"][0]["settings"].get("resamples", 2000))
            est, p = paired_difference(np.column_stack([x[1] for x in a]), np.column_stack([y[1] for y in b]),
                                       np.mean, resamples=resamples)
            rows.append({"cell": cell, "matched": matched, "others": ", ".join(others), "contrast": est.value,
                         "low": est.low, "high": est.high, "p": 1 / resamples if p == 0 else p, "p_bound": p == 0,
                         "n": est.n, "seeds": len(seeds)})
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df["p_holm"] = holm(df["p"].to_numpy())
        method = shape_match_table(self.values([(sweep_kind_objective(k), "max") for k in kinds]), kinds, alpha=alpha)
        return df.set_index("cell").join(method.drop(columns=["matched", "seeds"]))

    # ------------------------------------------------------------------ summaries

    def cell_means(self, metrics: Sequence[tuple[str, str]] = METRICS) -> pd.DataFrame:
        """Each cell's test numbers: the mean over its seeds with an interval that counts the
        seeds and the examples (`nsde.metrics.seed_estimates`: Student's t with 2 to 4 seeds, the
        two-level bootstrap from 5). Rows: cell; columns: metric, metric_low, metric_high, seeds."""
        from nsde.metrics.report import replicate_estimate

        names = [name for name, _ in self.available(metrics)]
        rows = []
        for cell in self.cells():
            ids = list(self.seeds(cell).values())
            if not ids:
                continue
            row: dict[str, Any] = {"cell": cell, "seeds": len(ids)}
            parts = [self.reports[t]["per_example"] for t in ids]
            resamples = int(self.reports[ids[0]]["settings"].get("resamples", 2000))
            for name in names:
                est = replicate_estimate(parts, name, resamples=resamples)
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
        numbers; never the test split), for the figures (`validation_ranking` holds the numbers)."""
        return list(self.validation_ranking(metric).index[:k])

    def validation_ranking(self, metric: str = "snr_accuracy") -> pd.Series:
        """Every noisy cell's mean VALIDATION value of `metric` over its complete trials, best
        first: what `best_cells` chooses by, kept in the record."""
        df = self.search.trials.join(self.design[["cell"]])
        df = df[(df["status"] == COMPLETE) & (df["cell"] != BASELINE)]
        if metric not in df:
            return pd.Series(dtype=float, name=metric)
        return df.groupby("cell")[metric].mean().dropna().sort_values(ascending=False).rename(metric)


# ------------------------------------------------------------- the method level


def method_table(values: pd.DataFrame, metrics: Sequence[tuple[str, str]], *, alpha: float = 0.05,
                 confirmatory: Sequence[str] = ()) -> pd.DataFrame:
    """Every cell against the baseline at the method level: per metric, `blocked_contrasts` over
    every cell at once (the residual pooled over them), with the minimal detectable effect (80 %
    power at Holm's first step over the cells) and Holm's correction over the cells.

    Args:
        values: one row a trained model with `cell`, `seed` and a column per metric
            (`Study.values`, `record_values`).

    Returns:
        Rows (cell, metric): `method_difference`, `method_se`, `method_df`, `method_low`,
        `method_high`, `method_p`, `sigma`, `mde`, `method_p_holm`, `significant`, `family`, `seeds`.
    """
    from nsde.metrics.stats import holm

    parts = []
    for name, mode in metrics:
        if name not in values:
            continue
        table = contrast_table(values[["cell", "seed", name]].set_axis(["arm", "seed", "value"], axis=1), BASELINE,
                               direction=mode, alpha=alpha)
        if table.empty:
            continue
        table["method_p_holm"] = holm(table["method_p"].to_numpy())
        table["significant"] = table["method_p_holm"] < alpha
        table["family"] = "confirmatory" if name in confirmatory else "exploratory"
        parts.append(table.assign(metric=name).reset_index().rename(columns={"arm": "cell"}))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).set_index(["cell", "metric"])


def power_table(values: pd.DataFrame, metrics: Sequence[tuple[str, str]], *, alpha: float = 0.05,
                effects: Sequence[float] = (0.02, 0.05), power: float = 0.8) -> pd.DataFrame:
    """What the design can detect, per metric: the seeds' residual standard deviation `sigma`
    (the seed-blocked model over every cell), its `df`, the `seeds` per cell, the `cells`
    compared with the baseline (Holm's family), the minimal detectable effect `mde` of this
    design at `power`, and `seeds_for_<effect>`: the seeds per cell at which the same design
    (as many cells) detects a difference of that size. Rows: metric."""
    cells = sorted(set(values["cell"]) - {BASELINE})
    rows = []
    for name, _ in metrics:
        if name not in values:
            continue
        fit = blocked_contrasts(values[["cell", "seed", name]].set_axis(["arm", "seed", "value"], axis=1), BASELINE)
        if fit.empty:
            continue
        sigma, df, seeds = float(fit["sigma"].iloc[0]), float(fit["df"].iloc[0]), int(fit["seeds"].min())
        row = {"metric": name, "sigma": sigma, "df": df, "seeds": seeds, "cells": len(cells),
               "mde": minimal_detectable_effect(sigma, seeds, df=df, alpha=alpha, comparisons=len(cells), power=power)}
        for effect in effects:
            row[f"seeds_for_{effect:g}"] = seeds_needed(sigma, effect, arms=len(cells) + 1, alpha=alpha,
                                                        comparisons=len(cells), power=power)
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()


FACTOR_FAMILIES = {  # which trials, and the design factors tested among them
    "noisy cells": (lambda shape: shape != "none", ("shape", "sigma")),
    "H-shape cells": (lambda shape: shape in hurst_shapes(), ("shape", "hurst", "sigma")),
}


def factor_table(values: pd.DataFrame, metrics: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Each design factor and interaction, per metric, in the seed-blocked factorial ANOVA
    (`analysis.method.factor_tests`) on the test numbers: over every noisy cell (shape, sigma)
    and over the cells of the shapes with a Hurst exponent (shape, H, sigma). A factor with one
    level among those trials is left out. This is the test of a factor; the fANOVA importance of
    a search (`analysis.importance`) describes the validation numbers and is not one. Rows:
    (trials, metric, term): `F`, `df`, `df_resid`, `p`."""
    parts = []
    # (the cells with a practitioner's option are arms of their own, not levels of these factors)
    plain_practice = values["practice"].fillna("") == "" if "practice" in values else True
    for family, (keep, factors) in FACTOR_FAMILIES.items():
        part = values[values["shape"].map(keep) & plain_practice]
        varied = [f for f in factors if part[f].nunique() > 1]
        if not varied:
            continue
        for name, _ in metrics:
            if name not in part:
                continue
            table = factor_tests(part, varied, value=name)
            parts.append(table.reset_index().assign(trials=family, metric=name))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).set_index(["trials", "metric", "term"])


def record_values(rec: dict) -> pd.DataFrame:
    """`Study.values` from a stored record (`record`, e.g. bench/results/study-cpu.json): each
    trial's cell, seed, factors and its test numbers (`test_<metric>`), for the method-level
    tables without the test reports, and each sweep kind's area (`sweep_area@<kind>`) from its
    accuracy at every intensity (`levels`: the area is linear in the per-example outcomes, so
    the mean accuracy per level gives it exactly). The factors come from the cell's label where
    the record predates their columns."""
    trials = _frame(rec["trials"], "trial_id")
    trials = trials[trials[[c for c in trials if c.startswith(TEST_PREFIX)]].notna().any(axis=1)]
    factors = ["shape", "hurst", "sigma"]
    if set(factors) <= set(trials):
        out = trials[["cell", "seed", *factors]]
    else:
        out = trials[["cell", "seed"]].join(pd.DataFrame([parse_cell(c) for c in trials["cell"]], index=trials.index))
    metrics = {c[len(TEST_PREFIX):]: trials[c] for c in trials if c.startswith(TEST_PREFIX)}
    return out.join(pd.DataFrame(metrics)).join(_kind_areas(rec))


def _kind_areas(rec: dict) -> pd.DataFrame:
    """Each trial's area under each sweep kind (intensities <= the study profile's area bound)."""
    from nsde.metrics import EVAL_PROFILES, EvalConfig
    from nsde.metrics.robustness import sweep_area

    if not rec.get("levels"):
        return pd.DataFrame()
    levels = _frame(rec["levels"], "trial_id")
    bound = EvalConfig(**EVAL_PROFILES["study"]).sweep_area_max
    out = {}
    for kind in rec["design"].get("input_noises", []):
        if not kind.startswith(sweep_kind_objective("")):
            continue
        name = kind[len(sweep_kind_objective("")):]
        columns = sorted((c for c in levels if c.startswith(name + "@") and float(c.split("@")[1]) <= bound),
                         key=lambda c: float(c.split("@")[1]))
        at = [float(c.split("@")[1]) for c in columns]
        out[kind] = [float(sweep_area(at, row[:, None])[0]) for row in levels[columns].to_numpy()]
    return pd.DataFrame(out, index=levels.index)


def shape_match_table(values: pd.DataFrame, kinds: Sequence[str], *, alpha: float = 0.05) -> pd.DataFrame:
    """The shape match at the method level: for each noisy cell whose injected shape has a
    matching input noise among `kinds` (`_matched_kind`), each trained model's area under the
    matched kind minus its mean area under the others, the cell against the baseline in a paired
    t-test over the seeds (`blocked_contrasts` of the two), Holm over the cells. Rows: cell:
    `matched`, `method_contrast`, `method_low`, `method_high`, `method_p`, `method_df`,
    `method_p_holm`, `significant`."""
    from nsde.metrics.stats import holm

    rows = []
    for cell, part in values[values["cell"] != BASELINE].groupby("cell", sort=False):
        matched = _matched_kind(part.iloc[0], kinds)
        if matched is None or len(kinds) < 2:
            continue
        others = [sweep_kind_objective(k) for k in kinds if k != matched]
        both = values[values["cell"].isin([cell, BASELINE])]
        contrast = both[sweep_kind_objective(matched)] - both[others].mean(axis=1)
        fit = blocked_contrasts(pd.DataFrame({"arm": both["cell"], "seed": both["seed"], "value": contrast}),
                                BASELINE, alpha=alpha)
        if fit.empty:
            continue
        r = fit.iloc[0]
        rows.append({"cell": cell, "matched": matched, "method_contrast": r["difference"], "method_low": r["low"],
                     "method_high": r["high"], "method_p": r["p"], "method_df": r["df"], "seeds": r["seeds"]})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["method_p_holm"] = holm(df["method_p"].to_numpy())
    df["significant"] = df["method_p_holm"] < alpha
    return df.set_index("cell")


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
    if "practice" in cells:  # the figure is of the NSDE factors; a practitioner's arm is no point on it
        cells = cells[cells["practice"].fillna("") == ""]
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


def _frame(rows: list[dict], index) -> pd.DataFrame:
    """`_rows`' records back to a frame indexed by `index` (empty when there are none)."""
    return pd.DataFrame(rows).set_index(index) if rows else pd.DataFrame()


def _rows(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.reset_index().to_json(orient="records")) if not df.empty else []


def record(study: Study, *, paired: pd.DataFrame | None = None, crossing: pd.DataFrame | None = None,
           match: pd.DataFrame | None = None, means: pd.DataFrame | None = None,
           levels: pd.DataFrame | None = None) -> dict:
    """Every number of the study as one JSON-ready dict: the design, each trial's validation
    and test numbers, the paired table, the crossing, the shape match, the cell means and the
    parameter importance (validation numbers), and each trial's accuracy at every level (`levels`)."""
    s = study.search
    trials = s.trials.join(study.design[[c for c in ("cell", "seed", "shape", "hurst", "sigma", "practice")
                                         if c in study.design]])
    keep = ["cell", "seed", "shape", "hurst", "sigma", "practice", "status", *s.objective_names, *CONVERGENCE_KEYS,
            *(TEST_PREFIX + m for m, _ in METRICS), TEST_PREFIX + CHECKS_PASSED]
    keep = list(dict.fromkeys(keep + [c for c in trials if c.startswith(TEST_PREFIX + LOCATION_PREFIX)]))
    ranking = study.validation_ranking()
    return {
        "search": s.name, "source": s.source, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "design": {"cells": study.cells(), "seeds": sorted({x for x in study.design["seed"] if x is not None}),
                   "space": s.space, "settings": s.settings, "metrics": [list(m) for m in METRICS],
                   "input_noises": study.input_noises(),
                   "correction": "Holm over the cells, one family per metric; every family exploratory",
                   "levels": {"method": METHOD_NOTE, "models": MODELS_NOTE}},
        "timing": {k: v for k, v in s.timing.items() if k.endswith("_s")},
        "trials": _rows(trials[[c for c in keep if c in trials]]),
        "paired": _rows(study.paired() if paired is None else paired),
        "power": _rows(study.power()),
        "factor_tests": _rows(study.factor_tests()),
        "convergence": _rows(study.convergence()),
        "crossing": _rows(study.crossing() if crossing is None else crossing),
        "shape_match": _rows(study.shape_match() if match is None else match),
        "cell_means": _rows(study.cell_means() if means is None else means),
        "levels": _rows(study.levels() if levels is None else levels),
        "importance": {k: v.to_dict() for k, v in study.importance().items()},
        "validation_ranking": {"metric": ranking.name, "split": "val", "cells": ranking.to_dict(),
                               "chosen": list(ranking.index[:3])},
    }


def reanalysis(rec: dict, *, alpha: float = 0.05) -> dict:
    """The method-level tables of a stored record (`record`), from its per-trial test numbers
    alone (`record_values`): every metric of its design against the baseline, the power of the
    design and the factor tests. What needs per-example values (the models-level intervals, the
    retentions of a record written before them) is not in it."""
    values = record_values(rec)
    metrics = [tuple(m) for m in rec["design"]["metrics"] if m[0] in values]
    noises = [(n, "max") for n in rec["design"].get("input_noises", []) if n in values]
    kinds = [n[len(sweep_kind_objective("")):] for n, _ in noises if n.startswith(sweep_kind_objective(""))]
    return {"source": rec.get("search"), "written": time.strftime("%Y-%m-%d %H:%M:%S"), "level": METHOD_NOTE,
            "metrics": [list(m) for m in metrics],
            "method": _rows(method_table(values, metrics, alpha=alpha)),
            "power": _rows(power_table(values, metrics, alpha=alpha)),
            "factor_tests": _rows(factor_table(values, metrics)),
            "crossing": _rows(method_table(values, noises, alpha=alpha)),
            "shape_match": _rows(shape_match_table(values, kinds, alpha=alpha))}


def _ci(value: float, low: float, high: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _p_text(p: float, bound: bool = False) -> str:
    """A p-value; a bootstrap p that no resample crossed is a bound, printed '< 1/B'."""
    return f"< {p:.2g}" if bound else f"{p:.3g}"


def difference_table(paired: pd.DataFrame, *, level: str = "method") -> str:
    """One Markdown table, a row a cell and a column a metric, of the differences from the
    baseline with their 95 % intervals at one `level`: "method" (the seeds as replicates; a star
    where Holm's p < 0.05; the last row the minimal detectable effect) or "models" (these
    trained models, the examples resampled; a star where the examples-level Holm p < 0.05).
    APGD differences whose attack failed a sanity check are marked."""
    if paired.empty:
        return ""
    method = level == "method"
    diff, low, high, star = (("method_difference", "method_low", "method_high", "significant") if method
                             else ("difference", "low", "high", "significant_models"))
    metrics = list(dict.fromkeys(paired.index.get_level_values("metric")))
    out = ["| cell | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for cell in dict.fromkeys(paired.index.get_level_values("cell")):
        cells = []
        for m in metrics:
            r = paired.loc[(cell, m)] if (cell, m) in paired.index else None
            cells.append("" if r is None else _ci(r[diff], r[low], r[high]) + (" *" if r[star] else "") +
                         (" (attack check failed)" if m.startswith("apgd") and r.get("checks_failed") else ""))
        out.append(f"| {cell} | " + " | ".join(cells) + " |")
    if method and "mde" in paired:
        mde = paired.groupby(level="metric", sort=False)["mde"].max()
        out.append("| *minimal detectable effect (80 % power)* | " + " | ".join(f"{mde[m]:.3f}" for m in metrics) + " |")
    return "\n".join(out) + "\n"


def power_markdown(power: pd.DataFrame) -> str:
    """The power table (`power_table`) as Markdown."""
    if power.empty:
        return ""
    effects = [c for c in power.columns if c.startswith("seeds_for_")]
    out = ["| metric | seeds' residual sd | df | seeds | cells | minimal detectable effect | "
           + " | ".join(f"seeds to detect {c[len('seeds_for_'):]}" for c in effects) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(effects)]
    for metric, r in power.iterrows():
        need = ["more than 1000" if pd.isna(r[c]) else str(int(r[c])) for c in effects]
        out.append(f"| {metric} | {r['sigma']:.4f} | {r['df']:.0f} | {int(r['seeds'])} | {int(r['cells'])} | "
                   f"{r['mde']:.3f} | " + " | ".join(need) + " |")
    return "\n".join(out) + "\n"


def factor_markdown(factors: pd.DataFrame) -> str:
    """The factor tests (`factor_table`) as Markdown: the p-value of each term, a row a metric."""
    if factors.empty:
        return ""
    out = []
    for trials, part in factors.groupby(level="trials", sort=False):
        part = part.droplevel("trials")
        terms = [t for t in dict.fromkeys(part.index.get_level_values("term")) if t != "seed"]
        out += [f"{trials}: p of each term (seed-blocked ANOVA, type II)", "",
                "| metric | " + " | ".join(terms) + " |", "|---|" + "---|" * len(terms)]
        for metric in dict.fromkeys(part.index.get_level_values("metric")):
            ps = [part.loc[(metric, t), "p"] for t in terms]
            out.append(f"| {metric} | " + " | ".join("< 1e-15" if p < 1e-15 else f"{p:.3g}" for p in ps) + " |")
        out.append("")
    return "\n".join(out)


def markdown(paired: pd.DataFrame, match: pd.DataFrame, means: pd.DataFrame) -> str:
    """The study's tables as Markdown (docs/study.md): the differences from the baseline at the
    method level (stars: Holm's p < 0.05) with the minimal detectable effect, then for these
    trained models; the shape-match contrasts; the cell means."""
    out = []
    if not paired.empty:
        out += ["The method (seeds as replicates):", "", difference_table(paired, level="method"),
                "These trained models (examples resampled):", "", difference_table(paired, level="models")]
    if not match.empty:
        out += ["| cell | matched input noise | gain there minus mean gain at the others: the method | "
                "Holm p (method) | these models | Holm p (models) |", "|---|---|---|---|---|---|"]
        for cell, r in match.iterrows():
            out.append(f"| {cell} | {r['matched']} | {_ci(r['contrast'], r['method_low'], r['method_high'])}"
                       f"{' *' if r['significant'] else ''} | {_p_text(r['method_p_holm'])} | "
                       f"{_ci(r['contrast'], r['low'], r['high'])} | "
                       f"{_p_text(r['p_holm'], bool(r.get('p_bound', False)))} |")
        out.append("")
    if not means.empty:
        metrics = [c for c in means.columns if not c.endswith(("_low", "_high")) and c != "seeds"]
        out += ["| cell | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
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


@user_errors
def main(argv: list[str] | None = None) -> int:
    from analysis.load import add_source_arguments, search_from_arguments

    p = argparse.ArgumentParser(prog="python -m analysis.study", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_source_arguments(p, required=False)
    p.add_argument("--from-record", default=None, metavar="JSON",
                   help="instead of a search: re-analyse a stored record (e.g. bench/results/study-cpu.json) at the "
                        "method level from its per-trial test numbers; --out then names the re-analysis' JSON")
    p.add_argument("--out", default=None, help="the JSON record of every number (default: "
                   "bench/results/study-cpu.json, or <record>-method.json with --from-record)")
    p.add_argument("--figures", default=None, help="write study_snr.png, study_hurst.png, study_front.png here")
    p.add_argument("--markdown", default=None, help="write the tables as Markdown to this file")
    args = p.parse_args(argv)
    sources = [x for x in (args.experiment, args.run_id, args.tune_dir, args.from_record) if x]
    if len(sources) != 1:
        print("error: name one source: --experiment, --run-id, --tune-dir or --from-record", file=sys.stderr)
        return 2
    if args.from_record:
        return _reanalyse(Path(args.from_record), args)
    try:
        study = Study.of(search_from_arguments(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paired, crossing, match, means = study.paired(), study.crossing(), study.shape_match(), study.cell_means()
    levels = study.levels()
    out = Path(args.out or "bench/results/study-cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = record(study, paired=paired, crossing=crossing, match=match, means=means, levels=levels)
    out.write_text(json.dumps(rec, indent=1))
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join([
            markdown(paired, match, means), power_markdown(_frame(rec["power"], "metric")),
            factor_markdown(_frame(rec["factor_tests"], ["trials", "metric", "term"])),
            "The input noises (crossing):", "",
            difference_table(crossing), levels_markdown(levels)]))
        print(f"wrote {args.markdown}")
    if args.figures:
        folder = Path(args.figures)
        folder.mkdir(parents=True, exist_ok=True)
        for name, fig in figures(study, paired, means).items():
            fig.savefig(folder / f"{name}.png", dpi=110)
            print(f"wrote {folder / name}.png")
    return 0


def _reanalyse(path: Path, args) -> int:
    """`--from-record`: the method-level tables of a stored record."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"error: --from-record {path}: {err}", file=sys.stderr)
        return 2
    if "trials" not in rec or "design" not in rec:
        print(f"error: --from-record {path} is not a study record (python -m analysis.study --out ...)", file=sys.stderr)
        return 2
    result = reanalysis(rec)
    out = Path(args.out or path.with_name(f"{path.stem}-method.json"))
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    if args.markdown:
        method = _frame(result["method"], ["cell", "metric"])
        crossing = _frame(result["crossing"], ["cell", "metric"])
        match = pd.DataFrame(result["shape_match"])
        lines = ["| cell | matched input noise | gain there minus mean gain at the others | Holm p |", "|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['matched']} | {_ci(r['method_contrast'], r['method_low'], r['method_high'])}"
                  f"{' *' if r['significant'] else ''} | {_p_text(r['method_p_holm'])} |" for _, r in match.iterrows()]
        Path(args.markdown).write_text("\n".join([
            "The method (seeds as replicates):", "", difference_table(method),
            power_markdown(_frame(result["power"], "metric")),
            factor_markdown(_frame(result["factor_tests"], ["trials", "metric", "term"])),
            "The input noises (crossing), the method:", "", difference_table(crossing),
            "The shape match, the method:", "", *lines, ""]))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
