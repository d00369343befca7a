"""The confirmatory study (docs/study.md, "Plan"): its arms, the pilot's choices, and the looks.

    python -m analysis.confirm pilot --search confirm-pilot      # -> bench/results/confirm-pilot.json
    python -m analysis.confirm record --search confirm-1         # -> bench/results/confirm-blocks.json
    python -m analysis.confirm look --look 1                     # -> bench/results/confirm-look1.json

**The record** (`model_row`, `merge_tested`): a block's models, their Tune state and MLflow store
live only as long as the session that ran it, so after every block `record` keeps what the study
needs of each tested model (every objective's statistic, the curves with their example
intervals, the attack checks) in a committed JSON, a model measured once never replaced; the
looks read that record.

**The pilot** (`pilot_values`, `choose`): one seed, validation only. eps\\* is the eps of the grid
at which the plain model (arm A) keeps about half of its clean accuracy on the attacked examples
(robust / clean nearest 0.5; the smaller eps on a tie). Each free setting (B's intensity, B''s
lowest SNR, D's relative sigma) is the one with the highest mean of the three primary endpoints
(APGD at eps\\*, the low-intensity sweep area, the SNR area) among those whose clean validation
accuracy is within `margin` (2 points) of A's (at least A's minus 2 points: a setting above A
qualifies), the best clean accuracy if none is. D's recipe (lr, weight decay) is checked at
sigma 0.3: another pair replaces the plain recipe only if its score beats the plain recipe's by
more than `recipe_margin` (1 point); as the plan is written, the recipe so chosen goes with D's
chosen sigma whichever it is.

**The looks** (`look`): per primary endpoint, the seed-blocked linear model over every arm
(`analysis.method.blocked_contrasts`: arm + seed, the residual pooled over the arms), read for
the nine hypotheses of the family (`FAMILY`: C - A, D - A, and D against the augmentation of the
endpoint's domain). The family is tested by Holm's step-down with O'Brien-Fleming group-
sequential boundaries at each step's level (`obf_levels`; Maurer & Bretz 2013 show the step-down
keeps the family-wise error when every hypothesis is tested by a group-sequential test at its
Holm level), a hypothesis rejected at an earlier look staying rejected. Clean accuracy gives the
non-inferiority check (the lower 95 % bound of each contrast above -2 points) and the futility
rule at the first look (every primary contrast's upper 95 % bound below +2 points). Only complete
seed blocks are used (a seed every arm has a tested model of); the record says how many.

Why the boundaries are computed here: neither statsmodels nor scipy ships group-sequential
designs; the boundary is one bivariate-normal root (`obf_levels`, checked against Jennison &
Turnbull's table in the tests).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.method import blocked_contrasts, minimal_detectable_effect, statistic_of
from record import COMPLETE, SEED_KEY

__all__ = [
    "ARMS",
    "ENDPOINTS",
    "FAMILY",
    "arm_of",
    "choose",
    "complete_seeds",
    "eps_star",
    "figures",
    "futility",
    "look",
    "main",
    "merge_pilot",
    "merge_tested",
    "model_row",
    "model_rows",
    "obf_levels",
    "pilot_keys",
    "pilot_table",
    "pilot_values",
    "seed_band",
    "step_down",
    "values_of",
]

ARMS = ("A", "B", "B'", "C", "D", "E")  # the confirmatory arms, A (plain) the baseline
ENDPOINTS = ("apgd_accuracy", "sweep_area", "snr_accuracy")  # the primary endpoints
CLEAN = "clean_accuracy"  # the non-inferiority endpoint
MARGIN = 0.02  # non-inferiority margin and the futility bound, accuracy units (2 points)
# the family: (endpoint, arm, against) for the three contrasts of Q1; D is set against the
# augmentation of the endpoint's own domain (the spectrogram's for APGD and the image sweep,
# the waveform's for the SNR sweep)
FAMILY: tuple[tuple[str, str, str], ...] = tuple(
    (e, arm, against) for e in ENDPOINTS
    for arm, against in (("C", "A"), ("D", "A"), ("D", "B'" if e == "snr_accuracy" else "B")))


# ------------------------------------------------------------------ arms


def arm_of(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A trial's arm and its free settings: ("A", {}), ("B", {"augment/high": s}), ("B'",
    {"augment/snr_low": lo}), ("C", {}), ("D", {"noise/sigma", "train/lr", "train/weight_decay"}),
    ("E", {"noise/sigma"}), ("AT", {"adversarial/eps"}), or ("other", {}) for anything else
    (e.g. the Q2 shapes)."""
    shape = config.get("noise/shape", "none")
    sigma = float(config.get("noise/sigma") or 0.0)
    if float(config.get("adversarial/eps") or 0.0) > 0:
        return "AT", {"adversarial/eps": float(config["adversarial/eps"])}
    if shape == "none" or sigma == 0:
        kind = config.get("augment/kind", "none")
        if kind == "none":
            return "A", {}
        if kind == "gaussian":
            return "B", {"augment/high": float(config["augment/high"])}
        if kind == "signal":
            return "B'", {"augment/snr_low": float(config["augment/snr_low"])}
        return "other", {}
    recipe = {"train/lr": float(config["train/lr"]), "train/weight_decay": float(config["train/weight_decay"])}
    hurst = float(config.get("noise/hurst", 0.5))
    if shape == "fbm" and hurst == 0.5 and config.get("noise/sigma_mode") == "absolute":
        return "C", {}
    if config.get("noise/sigma_mode", "relative") == "relative":
        if shape == "fbm" and hurst == 0.5:
            return "D", {"noise/sigma": sigma, **recipe}
        if shape == "white":
            return "E", {"noise/sigma": sigma, **recipe}
    return "other", {}


# ------------------------------------------------------------------ the pilot


def _apgd_levels(report: Mapping[str, Any]) -> dict[float, float]:
    return {float(eps): float(est["value"]) for eps, est in report["apgd"].items()}


def pilot_values(search) -> pd.DataFrame:
    """One row a complete trial of the pilot search, from its validation report: `arm`,
    `setting` (the free settings, JSON), `clean_accuracy`, `attacked_clean` (accuracy of the
    attacked examples, the attack's own verdict), `apgd@<eps>` for each eps, `sweep_area`,
    `snr_accuracy`, `epochs`, `converged`, `val_slope`, `train_seconds`."""
    rows = []
    for tid in search.trials.index[search.trials["status"] == COMPLETE]:
        report = search.eval_report(tid)
        if report is None:
            continue
        config = search.config(tid)
        arm, setting = arm_of(config)
        trial = search.trials.loc[tid]
        row = {"trial_id": str(tid), "arm": arm, "setting": json.dumps(setting, sort_keys=True),
               "clean_accuracy": float(report["clean"]["value"]),
               "attacked_clean": float(np.mean(report["per_example"]["apgd"]["clean"])),
               "sweep_area": statistic_of(report, "sweep_area"), "snr_accuracy": statistic_of(report, "snr_accuracy"),
               "epochs": int(config.get("train/epochs", 0))}
        row.update({f"apgd@{eps:g}": v for eps, v in _apgd_levels(report).items()})
        for key in ("converged", "val_slope", "best_epoch", "train_seconds"):
            row[key] = float(trial[key]) if key in trial and pd.notna(trial[key]) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("trial_id") if rows else pd.DataFrame()


def eps_star(plain: Mapping[str, Any]) -> float:
    """The eps at which the plain model keeps about half its clean accuracy on the attacked
    examples: the grid's eps whose robust / clean ratio is nearest 0.5 (the smaller on a tie).
    `plain`: a row of `pilot_values` (its `apgd@<eps>` and `attacked_clean`)."""
    clean = float(plain["attacked_clean"])
    if not clean > 0:
        raise ValueError(f"the plain model classifies none of the attacked examples correctly (clean {clean}): "
                         f"no eps keeps half of it")
    grid = sorted((float(k.split("@", 1)[1]), float(v)) for k, v in plain.items()
                  if str(k).startswith("apgd@") and pd.notna(v))
    if not grid:
        raise ValueError("the plain model's report has no APGD numbers")
    return min(grid, key=lambda ev: (round(abs(ev[1] / clean - 0.5), 9), ev[0]))[0]  # a tie: the smaller eps


def _score(values: pd.DataFrame, eps: float) -> pd.Series:
    """The pilot criterion: the mean of the three primary endpoints (APGD at eps*)."""
    return (values[f"apgd@{eps:g}"] + values["sweep_area"] + values["snr_accuracy"]) / 3


def _pick(part: pd.DataFrame, floor: float) -> str:
    """The trial of `part` with the best score among those whose clean accuracy is at least
    `floor`; the best clean accuracy if none is."""
    eligible = part[part["clean_accuracy"] >= floor - 1e-12]
    if eligible.empty:
        return str(part["clean_accuracy"].idxmax())
    return str(eligible["score"].idxmax())


def choose(values: pd.DataFrame, *, margin: float = MARGIN, recipe_margin: float = 0.01,
           plain_recipe: tuple[float, float] = (4e-3, 0.05), recipe_sigma: float = 0.3) -> dict[str, Any]:
    """The pilot's choices (module docstring) from `pilot_values`: {"eps_star", "clean_floor",
    "B", "B'", "D" (each the chosen free settings), "trials" (arm -> the chosen trial id),
    "recipe_check" (D at `recipe_sigma` under each recipe: score, eligible), "scores" (trial
    id -> its score)}."""
    plain = values[values["arm"] == "A"]
    if len(plain) != 1:
        raise ValueError(f"the pilot needs exactly one plain trial (arm A), but has {len(plain)}")
    eps = eps_star(plain.iloc[0])
    values = values.assign(score=_score(values, eps))
    floor = float(plain["clean_accuracy"].iloc[0]) - margin
    out: dict[str, Any] = {"eps_star": eps, "clean_floor": floor, "trials": {"A": str(plain.index[0])}}
    settings = values["setting"].map(json.loads)
    lr, wd = plain_recipe

    def plain_recipe_of(s: dict) -> bool:
        return s.get("train/lr", lr) == lr and s.get("train/weight_decay", wd) == wd

    for arm in ("B", "B'", "D"):
        part = values[(values["arm"] == arm) & settings.map(plain_recipe_of)]
        if part.empty:
            raise ValueError(f"the pilot has no trial of arm {arm}")
        tid = _pick(part, floor)
        out[arm], out["trials"][arm] = settings[tid], tid
    # D's recipe at recipe_sigma: another pair only if it beats the plain recipe by > recipe_margin
    at = values[(values["arm"] == "D") & settings.map(lambda s: s.get("noise/sigma") == recipe_sigma)]
    check = [{"trial_id": str(t), "lr": settings[t]["train/lr"], "weight_decay": settings[t]["train/weight_decay"],
              "score": float(at.loc[t, "score"]), "eligible": bool(at.loc[t, "clean_accuracy"] >= floor - 1e-12)}
             for t in at.index]
    base = [c for c in check if (c["lr"], c["weight_decay"]) == plain_recipe]
    others = [c for c in check if (c["lr"], c["weight_decay"]) != plain_recipe and c["eligible"]]
    if base and others:
        best = max(others, key=lambda c: c["score"])
        if best["score"] > base[0]["score"] + recipe_margin:
            out["D"] = {**out["D"], "train/lr": best["lr"], "train/weight_decay": best["weight_decay"]}
    out["recipe_check"] = check
    out["scores"] = {str(t): float(v) for t, v in values["score"].items()}
    return out


# ------------------------------------------------------------------ group-sequential boundaries


@functools.lru_cache(maxsize=256)
def obf_levels(alpha: float, looks: int = 2) -> tuple[float, ...]:
    """The nominal two-sided levels of an O'Brien-Fleming design with `looks` equally spaced
    looks and overall two-sided level `alpha`: reject at look k when |Z_k| >= c sqrt(K / k),
    c solving P(|Z_k| < c sqrt(K / k) for every k) = 1 - alpha, the Z_k of one Brownian motion
    (corr(Z_j, Z_k) = sqrt(j / k) for j <= k)."""
    from scipy.optimize import brentq

    if not 0 < alpha < 1 or looks < 1:
        raise ValueError(f"need 0 < alpha < 1 and looks >= 1, but got alpha {alpha}, looks {looks}")
    t = np.arange(1, looks + 1) / looks
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = stats.multivariate_normal(mean=np.zeros(looks), cov=cov, allow_singular=False)

    def crossing(c: float) -> float:
        bound = c / np.sqrt(t)
        return 1.0 - float(mvn.cdf(bound, lower_limit=-bound)) - alpha

    c = brentq(crossing, 1e-3, 40.0, xtol=1e-10) if looks > 1 else float(stats.norm.isf(alpha / 2))
    return tuple(float(2 * stats.norm.sf(c / math.sqrt(tk))) for tk in t)


def step_down(p: Mapping[Any, float], look_index: int, *, alpha: float = 0.05, looks: int = 2,
              rejected: Sequence[Any] = ()) -> dict[Any, dict[str, float | bool]]:
    """Holm's step-down with group-sequential boundaries at look `look_index` (0-based).

    `p`: hypothesis -> its two-sided p-value at this look; `rejected`: hypotheses rejected at
    an earlier look (they stay rejected and leave the family). The hypotheses left are taken in
    order of p; the i-th (0-based) is tested at the look's O'Brien-Fleming level for alpha /
    (m - i), m the number of hypotheses of the family not yet rejected; the first that fails
    stops the step-down. Returns hypothesis -> {"p", "level" (the boundary it was compared
    with; NaN after the stop or when rejected before), "rejected"}.
    """
    earlier = set(rejected)
    out: dict[Any, dict[str, float | bool]] = {h: {"p": float(v), "level": math.nan, "rejected": h in earlier}
                                               for h, v in p.items()}
    left = sorted((h for h in p if h not in earlier), key=lambda h: (math.isnan(p[h]), p[h]))
    m = len(left)  # the hypotheses rejected at an earlier look have left the family
    for i, h in enumerate(left):
        level = obf_levels(alpha / (m - i), looks)[look_index]
        out[h]["level"] = level
        if not p[h] <= level:
            break
        out[h]["rejected"] = True
    return out


# ------------------------------------------------------------------ the looks


def complete_seeds(values: pd.DataFrame, arms: Sequence[str] = ARMS) -> list:
    """The seeds every arm of `arms` has a value of (rows `arm`, `seed`, `value`), sorted."""
    have = values.dropna(subset=["value"]).groupby("arm")["seed"].apply(set)
    if any(a not in have for a in arms):
        return []
    return sorted(set.intersection(*(have[a] for a in arms)))


def _contrast(table: pd.DataFrame, arm: str) -> dict[str, float]:
    """`arm`'s row of a `blocked_contrasts` table as plain floats."""
    return {k: float(table.loc[arm, k]) for k in ("difference", "se", "df", "low", "high", "p", "sigma")}


def futility(upper: Sequence[float], bound: float = MARGIN) -> bool:
    """The futility stop at the first look: every primary contrast's upper 95 % bound below `bound`."""
    return bool(upper) and all(u < bound for u in upper)


PLANNED_SEEDS = (6, 12)  # complete seed blocks at the two looks (information fractions 1/2 and 1)
BLOCKS_RECORD = "bench/results/confirm-blocks.json"  # the tested models of every confirmatory block so far


def look(values: Mapping[str, pd.DataFrame], look_index: int, *, alpha: float = 0.05,
         planned: Sequence[int] = PLANNED_SEEDS, rejected: Sequence[tuple[str, str, str]] = (),
         arms: Sequence[str] = ARMS, margin: float = MARGIN) -> dict[str, Any]:
    """One look of the confirmatory study.

    Args:
        values: endpoint (ENDPOINTS and CLEAN) -> one row a trained model (`arm`, `seed`,
            `value`); only the complete seed blocks are used.
        look_index: 0 for the first look, 1 for the second.
        planned: the complete seed blocks each look uses (the boundaries assume equally spaced
            looks): the first `planned[look_index]` complete seeds; fewer is an error.
        rejected: the family's hypotheses rejected at an earlier look.

    Returns:
        {"seeds" (used), "hypotheses" (one dict each: endpoint, arm, against, the contrast,
        level, rejected, mde), "non_inferiority" (per contrast of Q1: the clean contrast and
        whether its lower bound is above -margin), "futility" (first look only), "q1"}.
    """
    looks = len(planned)
    if not 0 <= look_index < looks:
        raise ValueError(f"look {look_index + 1}: the plan has {looks} looks")
    for endpoint, frame in values.items():
        twice = frame[frame.duplicated(["arm", "seed"], keep=False)]
        if not twice.empty:
            raise ValueError(f"{endpoint}: more than one model of (arm, seed) "
                             f"{sorted(set(zip(twice['arm'], twice['seed'])))}; a seed block holds one model an arm")
    complete = sorted(set.intersection(*(set(complete_seeds(v, arms)) for v in values.values())))
    need = planned[look_index]
    if len(complete) < need:
        raise ValueError(f"look {look_index + 1} is planned at {need} complete seed blocks (every arm tested), "
                         f"but there are {len(complete)}: {complete}")
    seeds = complete[:need]
    used = {e: v[v["seed"].isin(seeds) & v["arm"].isin(arms)].reset_index(drop=True) for e, v in values.items()}
    tables: dict[tuple[str, str], pd.DataFrame] = {}  # one fit per (endpoint, baseline), shared by its contrasts

    def contrast(endpoint: str, arm: str, against: str) -> dict[str, float]:
        if (endpoint, against) not in tables:
            tables[(endpoint, against)] = blocked_contrasts(used[endpoint], against)
        return _contrast(tables[(endpoint, against)], arm)

    rows = {}
    for endpoint, arm, against in FAMILY:
        rows[(endpoint, arm, against)] = {"endpoint": endpoint, "arm": arm, "against": against,
                                          **contrast(endpoint, arm, against)}
    tested = step_down({h: r["p"] for h, r in rows.items()}, look_index, alpha=alpha, looks=looks, rejected=rejected)
    first_level = obf_levels(alpha / len(FAMILY), looks)[look_index]
    for h, r in rows.items():
        r.update(level=tested[h]["level"], rejected=bool(tested[h]["rejected"]))
        r["mde"] = minimal_detectable_effect(r["sigma"], len(seeds), df=r["df"], alpha=first_level)
        r["seed_signs"] = _signs(used[r["endpoint"]], r["arm"], r["against"])
    contrasts = sorted({(arm, against) for _, arm, against in FAMILY})
    clean = {f"{a} - {b}": contrast(CLEAN, a, b) for a, b in contrasts}
    for c in clean.values():
        c["non_inferior"] = bool(c["low"] > -margin)
    out: dict[str, Any] = {"seeds": seeds, "look": look_index + 1, "alpha": alpha,
                           "levels": {"first_step": first_level, "last_step": obf_levels(alpha, looks)[look_index]},
                           "hypotheses": list(rows.values()), "non_inferiority": clean}
    if look_index == 0:
        out["futility"] = futility([r["high"] for r in rows.values()], margin)
    out["q1"] = {arm: _q1(rows.values(), clean, arm) for arm in ("C", "D")}
    return out


def _signs(values: pd.DataFrame, arm: str, against: str) -> list[int]:
    """Per seed, the sign of (arm - against)."""
    wide = values.pivot_table(index="seed", columns="arm", values="value")
    return [int(np.sign(d)) for d in (wide[arm] - wide[against]).dropna()]


def _q1(rows, clean: Mapping[str, Mapping[str, Any]], arm: str) -> dict[str, bool]:
    """Q1 for `arm`: (a) against A, (b) against the augmentations (D only): at least one
    primary contrast significant and positive, and clean accuracy non-inferior."""
    out = {}
    for part, againsts in (("a", {"A"}), ("b", {"B", "B'"})):
        mine = [r for r in rows if r["arm"] == arm and r["against"] in againsts]
        if not mine:
            continue
        out[part] = any(r["rejected"] and r["difference"] > 0 and clean[f"{arm} - {r['against']}"]["non_inferior"]
                        for r in mine)
    return out


# ------------------------------------------------------------------ from searches


def _estimate_list(e: Mapping[str, Any]) -> list[float | None]:
    """An Estimate's dict (`EvalReport.to_dict`) as [value, low, high] (None for NaN)."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            for v in (e.get("value"), e.get("low"), e.get("high"))]


def model_row(report: Mapping[str, Any], config: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What the study keeps of one tested model (its test report, `EvalReport.to_dict()`, and
    its trial config): arm, seed, setting, every registered objective's statistic whose stage
    ran (`endpoints`), the curves the figures draw with their example intervals (`curves`:
    sweep per kind, SNR, APGD per eps, certified accuracy per radius, clean accuracy per sensor
    location), the attack checks' verdicts and the evaluation's seconds. The models and their
    per-example outcomes are not kept between sessions; this is."""
    from nsde.metrics import objective_specs
    from nsde.metrics.report import EvalReport

    parsed = EvalReport.from_dict(dict(report))
    endpoints = {}
    for spec in objective_specs():
        value = spec.estimate(parsed).value
        if math.isfinite(value):
            endpoints[spec.name] = float(value)
    curves = {
        "sweep": {k: [[float(i), *_estimate_list(e)] for i, e in pts] for k, pts in report.get("sweep", {}).items()},
        "snr": [[float(level), *_estimate_list(e)] for level, e in report.get("snr", [])],
        "apgd": {str(k): _estimate_list(e) for k, e in report.get("apgd", {}).items()},
        "smoothing": {str(k): _estimate_list(e) for k, e in report.get("smoothing", {}).items()},
        "location": {str(k): _estimate_list(e) for k, e in report.get("per_location", {}).items()},
    }
    arm, setting = arm_of(config)
    return {"arm": arm, "seed": config.get(SEED_KEY), "setting": json.dumps(setting, sort_keys=True),
            "epochs": config.get("train/epochs"), **extra, "endpoints": endpoints, "curves": curves,
            "checks": {k: c.get("passed") for k, c in report.get("checks", {}).items()},
            "seconds": {k: float(v) for k, v in report.get("seconds", {}).items()}}


def model_rows(searches: Sequence) -> list[dict[str, Any]]:
    """`model_row` of every tested trial of `searches` (`analysis.load.Search`)."""
    rows = []
    for search in searches:
        tested = search.trials.index[search.trials["tested"]] if "tested" in search.trials else []
        for tid in tested:
            rec = search.test_report(tid)
            if rec is not None:
                rows.append(model_row(rec["reports"][0], search.config(tid), trial_id=str(tid), search=search.name))
    return rows


def merge_tested(recorded: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
                 ) -> tuple[list[dict], list[dict]]:
    """The study's tested models so far: every `recorded` row (a model measured once is never
    replaced) and the `new` rows of an (arm, seed) not recorded yet. Returns (rows sorted by
    seed and arm, the new rows left out because their (arm, seed) is already recorded)."""
    by_key = {(r["arm"], r["seed"]): dict(r) for r in recorded}
    skipped = []
    for r in new:
        key = (r["arm"], r["seed"])
        if key in by_key:
            if by_key[key].get("trial_id") != r.get("trial_id"):
                skipped.append(dict(r))
            continue
        by_key[key] = dict(r)
    order = {a: i for i, a in enumerate((*ARMS, "AT"))}
    rows = sorted(by_key.values(), key=lambda r: (r["seed"], order.get(r["arm"], len(order)), r["arm"]))
    return rows, skipped


def values_of(rows: Sequence[Mapping[str, Any]], endpoints: Sequence[str] = (*ENDPOINTS, CLEAN)
              ) -> dict[str, pd.DataFrame]:
    """Endpoint -> one row a tested model (`arm`, `seed`, `value`, `trial_id`, `search`) from
    the record's rows (`model_row`), the form `look` reads; a model without the endpoint has
    NaN (its seed block is then incomplete for that endpoint)."""
    cols = ["arm", "seed", "value", "trial_id", "search"]
    return {e: pd.DataFrame([{"arm": r["arm"], "seed": r["seed"], "value": r["endpoints"].get(e, math.nan),
                              "trial_id": r.get("trial_id"), "search": r.get("search")} for r in rows], columns=cols)
            for e in endpoints}


# ------------------------------------------------------------------ the attack's cross-checks

CROSSCHECK_STEPS = 100  # the plan's "one 100-step ... cross-check of APGD on C and D"
CROSSCHECK_SUBSET = 128  # test examples (seeded), the same for every model of the seed


def trial_model(folder: str | Path, trial_id: str):
    """(model, data) of a finished trial of the Tune folder `folder`: its last checkpoint's
    weights (`model.pt`) and the data set it names (`data.json`)."""
    from nsde.data import load
    from nsde.train import load_checkpoint
    from record import DATA_FILE, MODEL_FILE

    dirs = sorted(Path(folder).glob(f"*_{trial_id}_*/checkpoint_*"))
    if not dirs:
        raise ValueError(f"no checkpoint of trial {trial_id} under {folder} (a block's models last only as long as "
                         f"its session: cross-check a block before the session ends)")
    last = dirs[-1]
    data = json.loads((last / DATA_FILE).read_text())
    return load_checkpoint(last / MODEL_FILE), load(data["path"])


def crosscheck(target, source, x, y, *, eps: float, steps: int = 20, more_steps: int = CROSSCHECK_STEPS,
               eot_iter: int = 4, seed: int = 0) -> dict[str, Any]:
    """The two cross-checks of the profile's APGD number on `target` (the plan's "References"):
    `steps`: APGD with `more_steps` must not lower robust accuracy below the profile's
    `steps` beyond noise (the profile's attack has converged); `transfer`: APGD examples made on
    `source` (another trained model, e.g. the plain one of the same seed) must not beat the
    white-box attack beyond noise. Paired bootstrap 95 % intervals on the same examples."""
    from nsde.metrics.robustness import apgd_attack, paired_summary

    base = apgd_attack(target, x, y, eps=(eps,), steps=steps, eot_iter=eot_iter, seed=seed).robust[0]
    more = apgd_attack(target, x, y, eps=(eps,), steps=more_steps, eot_iter=eot_iter, seed=seed).robust[0]
    moved = apgd_attack(target, x, y, eps=(eps,), steps=more_steps, eot_iter=eot_iter, seed=seed,
                        source=source).robust[0]
    longer, transfer = paired_summary(more, base, seed), paired_summary(moved, more, seed)
    return {"eps": eps, "n": len(base), "robust": {f"{steps} steps": float(base.mean()),
                                                         f"{more_steps} steps": float(more.mean()),
                                                         "transfer": float(moved.mean())},
            "steps": {**longer, "passed": bool(longer["high"] >= 0),
                      "rule": f"{more_steps} APGD steps do not lower robust accuracy below {steps} steps' beyond "
                              f"noise (paired bootstrap 95 % interval)"},
            "transfer": {**transfer, "passed": bool(transfer["high"] >= 0),
                         "rule": "examples made on the source model are not stronger than the white-box attack "
                                 "beyond noise (paired bootstrap 95 % interval)"}}


def parse_source(text: str) -> tuple[str, int | None]:
    """`ARM` or `ARM:SEED` of `crosscheck --source`: the arm (and seed; None = the target's own
    seed) whose model makes the transfer examples."""
    arm, _, seed = text.partition(":")
    if arm not in (*ARMS, "AT") or (seed and not seed.lstrip("-").isdigit()):
        raise ValueError(f"--source {text!r}: give an arm of {(*ARMS, 'AT')} and optionally ':SEED' (e.g. A or C:1)")
    return arm, int(seed) if seed else None


def _crosscheck(args) -> int:
    import torch

    path = Path(args.record)
    record = json.loads(path.read_text()) if path.exists() else {"rows": []}
    searches, targets = list(args.search_name), tuple(args.arms or ("C", "D"))
    source_arm, source_seed = parse_source(args.source)
    rows = [r for r in record["rows"] if r.get("search") in searches]
    by = {(r["arm"], r["seed"]): r for r in rows}

    def source_key(seed):
        return source_arm, seed if source_seed is None else source_seed

    seeds = sorted({r["seed"] for r in rows if all((a, r["seed"]) in by for a in targets)
                    and source_key(r["seed"]) in by and source_key(r["seed"]) not in {(a, r["seed"]) for a in targets}})
    named = " ".join(f"--search {s}" for s in searches)
    if not seeds:
        raise ValueError(f"the record has no seed of the searches {searches} with {', '.join(targets)} and the source "
                         f"{args.source} tested (C runs in blocks of its own: name its block too, or take the "
                         f"source from C's block, e.g. --arm C --source C:1): run "
                         f"`python -m analysis.confirm record {named}` first")
    seed = seeds[0] if args.seed is None else args.seed
    if seed not in seeds:
        raise ValueError(f"seed {seed} of {searches} lacks {', '.join(targets)} or the source {args.source}; "
                         f"seeds with all of them: {seeds}")
    eps = float(json.loads(Path(args.pilot).read_text())["eps_star"])

    def model_of(key):  # the trial's models live in its own search's Tune folder
        row = by[key]
        return trial_model(Path(args.runs) / row["search"], row["trial_id"])

    key = source_key(seed)
    source, data = model_of(key)
    test = data.split("test")
    pick = torch.randperm(len(test.y), generator=torch.Generator().manual_seed(seed))[:args.subset]
    x, y = test.x[pick].float(), test.y[pick]
    for arm in targets:
        target, _ = model_of((arm, seed))
        by[(arm, seed)]["crosscheck"] = {"source": f"{key[0]} seed {key[1]}", **crosscheck(
            target, source, x, y, eps=eps, steps=args.steps, more_steps=args.more_steps, seed=seed)}
        c = by[(arm, seed)]["crosscheck"]
        print(f"{arm} seed {seed}: robust {c['robust']}; steps {'pass' if c['steps']['passed'] else 'FLAG'}, "
              f"transfer {'pass' if c['transfer']['passed'] else 'FLAG'}", flush=True)
        _write(path, record)  # each target's result as soon as it is made
    return 0


# ------------------------------------------------------------------ figures

FIGURE_ARMS = (*ARMS, "AT")  # every arm with a tested model, the references included


def seed_band(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of one arm's per-seed values: the t-interval over seeds (the
    method-level band: training seeds vary, not only the examples); NaN bounds with one seed."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(1 - alpha / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half, int(v.size)


def _by_arm(rows: Sequence[Mapping[str, Any]], seeds: Sequence | None) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list] = {}
    for r in rows:
        if seeds is None or r["seed"] in seeds:
            out.setdefault(r["arm"], []).append(r)
    return {a: out[a] for a in FIGURE_ARMS if a in out}


def _curve(models: Sequence[Mapping[str, Any]], points) -> tuple[list[float], list[tuple]]:
    """`points(row)` -> {x: value} per model; per x every model has, its `seed_band`."""
    per = [points(r) for r in models]
    xs = sorted(set.intersection(*(set(p) for p in per))) if per else []
    return xs, [seed_band([p[x] for p in per]) for x in xs]


def _draw_curves(ax, by_arm, points, *, xlabel: str, ylabel: str) -> None:
    from analysis.plots import PALETTE

    for i, (arm, models) in enumerate(by_arm.items()):
        xs, bands = _curve(models, points)
        if not xs:
            continue
        colour = "black" if arm == "A" else PALETTE[i % len(PALETTE)]
        ax.plot(xs, [b[0] for b in bands], "o-", ms=3, color=colour, label=f"{arm} ({bands[0][3]} seeds)")
        if bands[0][3] > 1:
            ax.fill_between(xs, [b[1] for b in bands], [b[2] for b in bands], color=colour, alpha=0.15)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def snr_figure(rows: Sequence[Mapping[str, Any]], seeds: Sequence | None = None):
    """Test accuracy against SNR per arm: the mean over seeds with the t-band over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    _draw_curves(fig.subplots(), _by_arm(rows, seeds), lambda r: {p[0]: p[1] for p in r["curves"]["snr"]},
                 xlabel="SNR (dB; white noise added to the waveform)", ylabel="test accuracy")
    fig.tight_layout()
    return fig


def eps_figure(rows: Sequence[Mapping[str, Any]], pilot: Mapping[str, Any] | None = None,
               seeds: Sequence | None = None):
    """Robustness against the perturbation's size: APGD-L2 robust accuracy against eps on the
    pilot's validation models (one seed, six eps: the test attacks only at eps*), and the test
    models' certified accuracy against the L2 radius (randomized smoothing), with APGD at eps*."""
    from matplotlib.figure import Figure

    from analysis.plots import PALETTE

    fig = Figure(figsize=(10.0, 3.6))
    left, right = fig.subplots(1, 2)
    for i, r in enumerate((pilot or {}).get("rows", [])):
        chosen = r["trial_id"] in set((pilot or {}).get("trials", {}).values()) or r["arm"] in ("A", "C")
        grid = sorted((float(k.split("@", 1)[1]), v) for k, v in r.items()
                      if k.startswith("apgd@") and v is not None)
        if grid and chosen:
            left.plot([g[0] for g in grid], [g[1] for g in grid], "o-", ms=3,
                      color="black" if r["arm"] == "A" else PALETTE[i % len(PALETTE)],
                      label=f"{r['arm']} {r['setting'] if r['setting'] != '{}' else ''}".strip())
    left.set_xlabel("APGD-L2 eps", fontsize=8)
    left.set_ylabel("robust accuracy (pilot, validation, seed 0)", fontsize=8)
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=5)
    by_arm = _by_arm(rows, seeds)
    _draw_curves(right, by_arm, lambda r: {float(k): v[0] for k, v in r["curves"]["smoothing"].items()},
                 xlabel="L2 radius", ylabel="certified accuracy (test; smoothing)")
    for i, (arm, models) in enumerate(by_arm.items()):
        per = [{float(k): v[0] for k, v in m["curves"]["apgd"].items()} for m in models]
        if per and per[0]:
            eps = min(per[0])
            mean = seed_band([p.get(eps) for p in per])[0]
            right.plot([eps], [mean], "x", color="black" if arm == "A" else PALETTE[i % len(PALETTE)], ms=6)
    fig.tight_layout()
    return fig


def plane_figure(rows: Sequence[Mapping[str, Any]], seeds: Sequence | None = None,
                 robust: Sequence[str] = ENDPOINTS):
    """Clean accuracy against each primary endpoint, one point an arm (the mean over seeds, the
    t-interval over seeds on both axes), the augmentations and adversarial training included."""
    from matplotlib.figure import Figure

    from analysis.plots import PALETTE, short_name

    fig = Figure(figsize=(4.2 * len(robust), 3.8))
    by_arm = _by_arm(rows, seeds)
    for ax, metric in zip(fig.subplots(1, len(robust), squeeze=False)[0], robust):
        for i, (arm, models) in enumerate(by_arm.items()):
            x = seed_band([m["endpoints"].get(CLEAN) for m in models])
            y = seed_band([m["endpoints"].get(metric) for m in models])
            if not (math.isfinite(x[0]) and math.isfinite(y[0])):
                continue
            err = ([[x[0] - x[1]], [x[2] - x[0]]], [[y[0] - y[1]], [y[2] - y[0]]]) if x[3] > 1 else (None, None)
            ax.errorbar(x[0], y[0], xerr=err[0], yerr=err[1], fmt="s" if arm == "A" else "o", capsize=2, ms=4,
                        color="black" if arm == "A" else PALETTE[i % len(PALETTE)])
            ax.annotate(f"{arm} ({x[3]})", (x[0], y[0]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("clean accuracy (test)", fontsize=8)
        ax.set_ylabel(f"{short_name(metric)} (test)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figures(rows: Sequence[Mapping[str, Any]], pilot: Mapping[str, Any] | None = None,
            seeds: Sequence | None = None) -> dict:
    """The study's figures by name (docs/study.md): `confirm_snr`, `confirm_eps`, `confirm_plane`."""
    return {"confirm_snr": snr_figure(rows, seeds), "confirm_eps": eps_figure(rows, pilot, seeds),
            "confirm_plane": plane_figure(rows, seeds)}


def pilot_keys(space_name: str = "confirm-pilot") -> list[tuple[str, str]]:
    """(arm, setting JSON) of every point of the pilot's designed space, in its order."""
    from spaces import get_space

    space = get_space(space_name)
    return [(arm, json.dumps(setting, sort_keys=True)) for arm, setting in
            (arm_of(space.config(point)) for point in space.points)]


def pilot_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The pilot record's rows as the table `choose` reads (indexed by trial id, APGD as floats)."""
    table = pd.DataFrame(list(rows)).set_index("trial_id")
    return table.astype({c: float for c in table.columns if c.startswith("apgd@")})


def merge_pilot(rows: Sequence[Mapping[str, Any]], values: pd.DataFrame, keys: Sequence[tuple[str, str]]
                ) -> tuple[list[dict], list[tuple[str, str]]]:
    """The pilot's rows so far: the recorded `rows` (each kept: a point measured once is never
    replaced) and the new trials of `values` (`pilot_values`, with a `search` column) whose
    point is not recorded yet. Returns (rows in the design's order, the points still missing)."""
    by_key = {(r["arm"], r["setting"]): dict(r) for r in rows}
    for tid, row in values.iterrows():
        key = (row["arm"], row["setting"])
        if key in keys and key not in by_key:
            by_key[key] = {"trial_id": str(tid), **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                  for k, v in row.items()}}
    return [by_key[k] for k in keys if k in by_key], [k for k in keys if k not in by_key]


def _pilot(args) -> int:
    from analysis.load import load_search

    out = Path(args.out or "bench/results/confirm-pilot.json")
    recorded = json.loads(out.read_text()).get("rows", []) if out.exists() else []
    keys = pilot_keys()
    parts = []
    for name in args.search_names or ["confirm-pilot"]:
        search = load_search(args.experiment, search=name, tracking_uri=args.tracking_uri)
        values = pilot_values(search)
        if not values.empty:
            parts.append(values.assign(search=search.name))
    new = pd.concat(parts) if parts else pd.DataFrame(columns=["arm", "setting"])
    rows, missing = merge_pilot(recorded, new, keys)
    record: dict[str, Any] = {"rows": rows, "points": len(keys), "measured": len(rows),
                              "missing": [{"arm": a, "setting": json.loads(st)} for a, st in missing]}
    plain = [r for r in rows if r["arm"] == "A"]
    if plain:  # eps* rests on A alone: known as soon as A is measured
        record["eps_star"] = eps_star(plain[0])
    if not missing:
        record.update(choose(pilot_table(rows)))
    _write(out, record)
    if missing:
        print(f"pilot: {len(rows)} of {len(keys)} points measured; missing: "
              + ", ".join(f"{a} {st}" for a, st in missing))
    else:
        print(f"eps* {record['eps_star']:g}; " + "; ".join(f"{arm} {record[arm]}" for arm in ("B", "B'", "D")))
    return 0


def _record(args) -> int:
    from analysis.load import load_search

    out = Path(args.out or BLOCKS_RECORD)
    recorded = json.loads(out.read_text()).get("rows", []) if out.exists() else []
    searches = [load_search(args.experiment, search=n, tracking_uri=args.tracking_uri) for n in args.search_names]
    rows, skipped = merge_tested(recorded, model_rows(searches))
    seeds = sorted(set.intersection(*(set(complete_seeds(v)) for v in values_of(rows).values())))
    _write(out, {"rows": rows, "complete_seeds": seeds,
                 "arms": {a: sorted({r["seed"] for r in rows if r["arm"] == a}) for a in dict.fromkeys(r["arm"] for r in rows)}})
    for r in skipped:
        print(f"kept the recorded {r['arm']} seed {r['seed']}; left out trial {r.get('trial_id')} of {r.get('search')}")
    print(f"{len(rows)} tested models; complete seed blocks (every arm, every primary endpoint): {seeds}")
    return 0


def _look(args) -> int:
    path = Path(args.record)
    if not path.exists():
        raise ValueError(f"no record {path}: run `python -m analysis.confirm record --search NAME` after each block")
    rows = json.loads(path.read_text())["rows"]
    rejected = []
    if args.earlier:
        earlier = json.loads(Path(args.earlier).read_text())
        rejected = [(h["endpoint"], h["arm"], h["against"]) for h in earlier["hypotheses"] if h["rejected"]]
    result = look(values_of(rows), args.look - 1, rejected=rejected)
    result["searches"] = sorted({r["search"] for r in rows if r["seed"] in result["seeds"] and r.get("search")})
    _write(args.out or f"bench/results/confirm-look{args.look}.json", result)
    print(f"look {args.look}: {len(result['seeds'])} complete seed blocks {result['seeds']}; "
          f"rejected {sum(h['rejected'] for h in result['hypotheses'])} of {len(result['hypotheses'])}")
    return 0


def _figures(args) -> int:
    rows = json.loads(Path(args.record).read_text())["rows"] if Path(args.record).exists() else []
    if not rows:
        raise ValueError(f"no tested models in {args.record}: run `python -m analysis.confirm record` first")
    pilot = json.loads(Path(args.pilot).read_text()) if Path(args.pilot).exists() else None
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    for name, fig in figures(rows, pilot).items():
        fig.savefig(img / f"{name}.png", dpi=120)
        print(f"wrote {img / name}.png")
    return 0


def _write(path: str | Path, record: Mapping[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.confirm", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    pilot = sub.add_parser("pilot", help="the pilot's choices (eps*, B, B', D and D's recipe) from its validation reports")
    pilot.add_argument("--search", dest="search_names", action="append", default=None,
                       help="a pilot block's search name (repeat for several; default confirm-pilot); the points "
                            "already in --out are kept, and the choice is made once every point is measured")
    rec = sub.add_parser("record", help="add a confirmatory block's tested models to the study's record")
    rec.add_argument("--search", dest="search_names", action="append", required=True,
                     help="a block's search name (repeat for several); models already in --out are kept")
    lk = sub.add_parser("look", help="one look of the confirmatory family on the record's complete seed blocks")
    lk.add_argument("--record", default=BLOCKS_RECORD, help="the tested models (`record` writes it)")
    lk.add_argument("--look", type=int, choices=(1, 2), default=1, help="which look (1: 6 seeds, 2: 12)")
    lk.add_argument("--earlier", default=None, help="the first look's JSON (its rejections stand)")
    lk.add_argument("--out", default=None, help="the look's JSON (default bench/results/confirm-look<N>.json)")
    cc = sub.add_parser("crosscheck", help="the 100-step and transfer cross-checks of APGD on C and D, one seed "
                                           "of a block whose models are still on disk")
    cc.add_argument("--search", dest="search_name", action="append", required=True,
                    help="a block's search name (repeat: C's block and the block of A and D of the same seed)")
    cc.add_argument("--runs", default="runs", help="the Tune storage folder (the models are under <runs>/<search>)")
    cc.add_argument("--arm", dest="arms", action="append", choices=("C", "D"), default=None,
                    help="a model cross-checked (repeat; default C and D)")
    cc.add_argument("--source", default="A", help="ARM or ARM:SEED whose model makes the transfer examples "
                                                   "(default A of the target's seed; C's block: C:<other seed>)")
    cc.add_argument("--seed", type=int, default=None, help="the seed (default the first with the arms and source)")
    cc.add_argument("--subset", type=int, default=CROSSCHECK_SUBSET, help="test examples attacked")
    cc.add_argument("--steps", type=int, default=20, help="the profile's APGD steps")
    cc.add_argument("--more-steps", type=int, default=CROSSCHECK_STEPS, help="the longer attack's steps")
    cc.add_argument("--record", default=BLOCKS_RECORD, help="the tested models (the result is added to C's and D's)")
    cc.add_argument("--pilot", default="bench/results/confirm-pilot.json", help="the pilot's record (eps*)")
    fg = sub.add_parser("figures", help="the study's figures from the record (accuracy vs SNR, vs eps / radius, "
                                        "the clean-vs-robust plane)")
    fg.add_argument("--record", default=BLOCKS_RECORD, help="the tested models (`record` writes it)")
    fg.add_argument("--pilot", default="bench/results/confirm-pilot.json", help="the pilot's record (its eps grid)")
    fg.add_argument("--img", default="docs/img", help="folder of the PNGs")
    for sp in (pilot, rec):
        sp.add_argument("--experiment", default="nsde-confirm", help="MLflow experiment")
        sp.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI")
        sp.add_argument("--out", default=None, help="the JSON record (default under bench/results)")
    args = p.parse_args(argv)
    try:
        return {"pilot": _pilot, "record": _record, "look": _look, "figures": _figures,
                "crosscheck": _crosscheck}[args.stage](args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
