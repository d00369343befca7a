"""The confirmatory study's statistics (analysis.confirm): the group-sequential boundaries
against Jennison & Turnbull's table, Holm's step-down with them on worked examples and its
family-wise error on simulated null studies, the pilot's choices on hand-made tables, and a
look on simulated studies whose effects are known."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.confirm import (
    ARMS,
    CLEAN,
    ENDPOINTS,
    FAMILY,
    arm_of,
    choose,
    complete_seeds,
    eps_star,
    figures,
    futility,
    look,
    main,
    merge_pilot,
    merge_tested,
    model_row,
    obf_levels,
    pilot_keys,
    seed_band,
    step_down,
    values_of,
)


@pytest.mark.parametrize("looks, c_b", [(2, 1.977), (3, 2.004), (4, 2.024), (5, 2.040)])
def test_obrien_fleming_boundaries_match_jennison_and_turnbull(looks, c_b):
    """Jennison & Turnbull (2000), Table 2.3: C_B(K, 0.05) for two-sided O'Brien-Fleming tests;
    the boundary at look k is C_B sqrt(K / k)."""
    levels = obf_levels(0.05, looks)
    for k, level in enumerate(levels, start=1):
        z = stats.norm.isf(level / 2)
        assert z == pytest.approx(c_b * math.sqrt(looks / k), abs=2e-3)
    assert obf_levels(0.05, 1) == pytest.approx((0.05,))


def test_the_plans_levels_are_the_ones_registered():
    """docs/study.md, "Plan": at m = 9 the nominal levels are 8.7e-5 and 5.5e-3; at m = 1 5.2e-3 and 0.048."""
    first, second = obf_levels(0.05 / 9)
    assert first == pytest.approx(8.7e-5, rel=0.02) and second == pytest.approx(5.5e-3, rel=0.02)
    assert obf_levels(0.05) == pytest.approx((5.2e-3, 0.048), rel=0.02)
    with pytest.raises(ValueError, match="alpha"):
        obf_levels(1.5)


def test_step_down_worked_example():
    """Three hypotheses at the second look: the smallest p at the level for alpha / 3, the next
    for alpha / 2; the first that fails stops the rest."""
    lv3, lv2 = obf_levels(0.05 / 3)[1], obf_levels(0.05 / 2)[1]
    assert 0.01 < lv3 < 0.02 < 0.022 < lv2  # so the p-values below sit where they are meant to
    out = step_down({"h1": 0.001, "h2": 0.02, "h3": 0.06}, 1)
    assert out["h1"]["rejected"] and out["h2"]["rejected"]  # 0.02 <= the level for alpha / 2
    assert out["h2"]["level"] == pytest.approx(lv2)
    assert not out["h3"]["rejected"] and out["h3"]["level"] == pytest.approx(obf_levels(0.05)[1])  # 0.048
    stopped = step_down({"h1": 0.001, "h2": 0.03, "h3": 0.031}, 1)
    assert stopped["h1"]["rejected"] and not stopped["h2"]["rejected"] and not stopped["h3"]["rejected"]
    assert math.isnan(stopped["h3"]["level"])  # never reached
    # a hypothesis rejected at the first look stays rejected and leaves the family: m = 2 now
    later = step_down({"h1": 0.5, "h2": 0.02, "h3": 0.6}, 1, rejected=["h1"])
    assert later["h1"]["rejected"] and later["h2"]["rejected"] and later["h2"]["level"] == pytest.approx(lv2)
    # at the first look the boundary is strict: p = 0.001 is not enough at m = 3
    assert not step_down({"h1": 0.001, "h2": 0.5, "h3": 0.5}, 0)["h1"]["rejected"]


def test_holm_with_two_looks_keeps_the_family_wise_error_when_some_hypotheses_are_false():
    """Nine hypotheses, each a z-statistic observed at two equally spaced looks (one Brownian
    motion each); three are false (drift: rejected early and often), six true. Only rejections
    of the true ones are errors, so the steps beyond the first, the carry-forward of a first-look
    rejection and the smaller m at the second look are all exercised: the family-wise error is at
    most 0.05, where dropping the group-sequential boundary (Holm at alpha / m at both looks)
    spends more than alpha."""
    rng = np.random.default_rng(0)
    reps, m, false = 4000, 9, 3
    drift = np.array([5.5] * false + [0.0] * (m - false))  # the z expected at the second look
    increments = rng.standard_normal((reps, 2, m))
    z1 = increments[:, 0] + drift / math.sqrt(2)
    z2 = (increments[:, 0] + increments[:, 1]) / math.sqrt(2) + drift
    p1, p2 = 2 * stats.norm.sf(np.abs(z1)), 2 * stats.norm.sf(np.abs(z2))
    errors = naive_errors = 0
    early = 0
    for r in range(reps):
        first = step_down(dict(enumerate(p1[r])), 0)
        rejected = [h for h, v in first.items() if v["rejected"]]
        early += any(h < false for h in rejected)
        second = step_down(dict(enumerate(p2[r])), 1, rejected=rejected)
        errors += any(v["rejected"] for h, v in second.items() if h >= false)
        # without the boundary: both looks at Holm's fixed-sample levels
        naive = set()
        for pv in (p1[r], p2[r]):
            left = sorted((h for h in range(m) if h not in naive), key=lambda h: pv[h])
            for i, h in enumerate(left):
                if pv[h] > 0.05 / (len(left) - i):
                    break
                naive.add(h)
        naive_errors += any(h >= false for h in naive)
    fwer, naive_fwer = errors / reps, naive_errors / reps
    se = math.sqrt(0.05 * 0.95 / reps)
    assert fwer <= 0.05 + 2 * se
    assert early / reps > 0.3  # the false hypotheses are rejected at the first look often enough to matter
    assert naive_fwer > 0.05 + 2 * se  # two looks without a boundary spend more than alpha


# ------------------------------------------------------------------ the pilot's choices


def _pilot_row(arm, setting, clean, apgd, sweep, snr, attacked_clean=None):
    row = {"arm": arm, "setting": json.dumps(setting, sort_keys=True), "clean_accuracy": clean,
           "attacked_clean": clean if attacked_clean is None else attacked_clean, "sweep_area": sweep,
           "snr_accuracy": snr}
    row.update({f"apgd@{eps:g}": v for eps, v in zip((0.05, 0.1, 0.2), apgd)})
    return row


def _pilot_table(rows):
    return pd.DataFrame(rows, index=[f"t{i}" for i in range(len(rows))])


def test_eps_star_is_where_the_plain_model_keeps_half_its_accuracy():
    row = _pilot_row("A", {}, 0.8, (0.6, 0.45, 0.1), 0.7, 0.5, attacked_clean=0.84)
    assert eps_star(row) == 0.1  # 0.45 / 0.84 = 0.54 is the nearest 0.5
    assert eps_star(_pilot_row("A", {}, 0.8, (0.5, 0.3, 0.1), 0.7, 0.5)) == 0.05  # 0.625 vs 0.375: the smaller eps
    with pytest.raises(ValueError, match="none of the attacked examples"):
        eps_star(_pilot_row("A", {}, 0.0, (0, 0, 0), 0, 0))


def test_the_pilot_picks_the_best_score_within_two_points_of_plain_clean_accuracy():
    lr, wd = {"train/lr": 4e-3, "train/weight_decay": 0.05}, {}
    rows = [
        _pilot_row("A", {}, 0.80, (0.6, 0.4, 0.1), 0.60, 0.50),  # eps* 0.1
        _pilot_row("B", {"augment/high": 0.05}, 0.80, (0.6, 0.40, 0.1), 0.70, 0.50),
        _pilot_row("B", {"augment/high": 0.2}, 0.77, (0.6, 0.60, 0.1), 0.90, 0.60),  # best score, 3 points down
        _pilot_row("B", {"augment/high": 0.1}, 0.785, (0.6, 0.45, 0.1), 0.72, 0.50),  # eligible, the best of those
        _pilot_row("B'", {"augment/snr_low": 5.0}, 0.70, (0.6, 0.4, 0.1), 0.6, 0.7),  # none eligible:
        _pilot_row("B'", {"augment/snr_low": 15.0}, 0.75, (0.6, 0.3, 0.1), 0.6, 0.6),  # the best clean
        _pilot_row("D", {"noise/sigma": 0.1, **lr}, 0.81, (0.6, 0.50, 0.1), 0.60, 0.50),
        _pilot_row("D", {"noise/sigma": 0.3, **lr}, 0.79, (0.6, 0.60, 0.1), 0.60, 0.50),
        _pilot_row("D", {"noise/sigma": 0.3, "train/lr": 2e-3, "train/weight_decay": 0.01}, 0.80,
                   (0.6, 0.62, 0.1), 0.60, 0.50),  # better by 0.67 point: not enough
        _pilot_row("D", {"noise/sigma": 0.3, "train/lr": 4e-3, "train/weight_decay": 0.01}, 0.70,
                   (0.6, 0.90, 0.1), 0.90, 0.90),  # far better but not eligible
    ]
    out = choose(_pilot_table(rows))
    assert out["eps_star"] == 0.1 and out["clean_floor"] == pytest.approx(0.78)
    assert out["B"] == {"augment/high": 0.1}
    assert out["B'"] == {"augment/snr_low": 15.0}
    assert out["D"] == {"noise/sigma": 0.3, **lr}  # the plain recipe stays
    assert {c["trial_id"] for c in out["recipe_check"]} == {"t7", "t8", "t9"}
    # a pair that beats the plain recipe by more than a point replaces it
    rows[8] = _pilot_row("D", {"noise/sigma": 0.3, "train/lr": 2e-3, "train/weight_decay": 0.01}, 0.80,
                         (0.6, 0.66, 0.1), 0.60, 0.50)
    assert choose(_pilot_table(rows))["D"] == {"noise/sigma": 0.3, "train/lr": 2e-3, "train/weight_decay": 0.01}
    with pytest.raises(ValueError, match="exactly one plain trial"):
        choose(_pilot_table(rows[1:]))


def test_arm_of_names_every_pilot_arm():
    from search.config import trial_configs  # noqa: F401  (the space's configs are the trials')
    from spaces import get_space

    space = get_space("confirm-pilot")
    arms = [arm_of(space.config(p))[0] for p in space.points]
    assert arms == ["A", "B", "B", "B", "B'", "B'", "B'", "C", "D", "D", "D", "D", "D", "D"]
    assert arm_of({"noise/shape": "white", "noise/sigma": 0.3, "noise/sigma_mode": "relative", "train/lr": 4e-3,
                   "train/weight_decay": 0.05}) == ("E", {"noise/sigma": 0.3, "train/lr": 4e-3,
                                                          "train/weight_decay": 0.05})
    assert arm_of({"noise/shape": "none", "adversarial/eps": 0.1})[0] == "AT"
    assert arm_of({"noise/shape": "stationary", "noise/hurst": 0.1, "noise/sigma": 0.3,
                   "train/lr": 4e-3, "train/weight_decay": 0.05})[0] == "other"


def test_the_pilot_is_merged_over_blocks_and_a_recorded_point_is_never_replaced():
    keys = pilot_keys()
    assert len(keys) == len(set(keys)) == 14  # every point of the design is its own (arm, setting)
    first = _pilot_table([_pilot_row("A", {}, 0.80, (0.6, 0.4, 0.1), 0.6, 0.5),
                          _pilot_row("B", {"augment/high": 0.05}, 0.80, (0.6, 0.4, 0.1), 0.7, 0.5)])
    rows, missing = merge_pilot([], first, keys)
    assert [r["arm"] for r in rows] == ["A", "B"] and len(missing) == 12
    again = _pilot_table([_pilot_row("A", {}, 0.10, (0.0, 0.0, 0.0), 0.0, 0.0),  # a rerun of A: ignored
                          _pilot_row("C", {}, 0.75, (0.6, 0.4, 0.1), 0.7, 0.6),
                          _pilot_row("D", {"noise/sigma": 0.7, "train/lr": 4e-3, "train/weight_decay": 0.05},
                                     0.8, (0.6, 0.4, 0.1), 0.7, 0.6)])  # not a point of the design
    rows, missing = merge_pilot(rows, again, keys)
    assert [r["arm"] for r in rows] == ["A", "B", "C"] and rows[0]["clean_accuracy"] == 0.80
    assert len(missing) == 11 and ("C", "{}") not in missing


# ------------------------------------------------------------------ the looks


def _study(effects, seeds, *, sd=0.01, seed_sd=0.05, rng=None):
    """endpoint -> rows (arm, seed, value): a base, a seed effect shared by every arm (large, as
    measured), each arm's effect, and a residual of `sd`."""
    rng = rng or np.random.default_rng(0)
    out = {}
    for endpoint in (*ENDPOINTS, CLEAN):
        seed_effect = rng.normal(0, seed_sd, len(seeds))
        rows = [{"arm": arm, "seed": s, "value": 0.5 + seed_effect[i] + effects.get((endpoint, arm), 0.0)
                 + rng.normal(0, sd)} for i, s in enumerate(seeds) for arm in ARMS]
        out[endpoint] = pd.DataFrame(rows)
    return out


def test_a_look_finds_a_clear_effect_and_only_it():
    effects = {("apgd_accuracy", "D"): 0.10, (CLEAN, "D"): -0.005}
    out = look(_study(effects, range(6)), 0)
    assert out["seeds"] == list(range(6)) and len(out["hypotheses"]) == len(FAMILY) == 9
    by = {(h["endpoint"], h["arm"], h["against"]): h for h in out["hypotheses"]}
    assert by[("apgd_accuracy", "D", "A")]["rejected"] and by[("apgd_accuracy", "D", "B")]["rejected"]
    assert by[("apgd_accuracy", "D", "A")]["difference"] == pytest.approx(0.10, abs=0.02)
    assert by[("apgd_accuracy", "D", "A")]["seed_signs"] == [1] * 6
    assert sum(h["rejected"] for h in out["hypotheses"]) == 2
    assert out["non_inferiority"]["D - A"]["non_inferior"]  # -0.5 point, well within the margin
    assert out["q1"]["D"] == {"a": True, "b": True} and out["q1"]["C"] == {"a": False}
    assert not out["futility"]  # D's APGD upper bound is far above +2 points
    from analysis.method import minimal_detectable_effect

    h = by[("sweep_area", "C", "A")]
    assert h["df"] == 25  # six arms, six seeds: (6 - 1) x (6 - 1)
    assert h["mde"] == pytest.approx(minimal_detectable_effect(h["sigma"], 6, df=25, alpha=8.69e-5), rel=1e-3)


def test_a_look_uses_only_complete_seed_blocks_and_stops_for_futility_when_nothing_can_reach_two_points():
    data = _study({}, range(7), sd=0.002)
    for endpoint in data:  # seed 6 lacks arm E: an incomplete block
        frame = data[endpoint]
        data[endpoint] = frame[~((frame["seed"] == 6) & (frame["arm"] == "E"))]
    assert complete_seeds(data["apgd_accuracy"]) == list(range(6))
    out = look(data, 0)
    assert out["seeds"] == list(range(6))
    assert out["futility"] and not any(h["rejected"] for h in out["hypotheses"])
    assert futility([0.01, 0.019]) and not futility([0.01, 0.02]) and not futility([])
    with pytest.raises(ValueError, match="look 1 is planned at 6 complete seed blocks .* but there are 5"):
        look({e: v[v["seed"] < 5] for e, v in data.items()}, 0)
    with pytest.raises(ValueError, match="look 2 is planned at 12"):
        look(data, 1)
    twice = {e: pd.concat([v, v[(v["seed"] == 0) & (v["arm"] == "D")]]) for e, v in data.items()}
    with pytest.raises(ValueError, match=r"more than one model of \(arm, seed\) \[\('D', 0\)\]"):
        look(twice, 0)
    eight = _study({}, range(8), sd=0.002)
    assert look(eight, 0)["seeds"] == list(range(6))  # the first look uses its planned seeds, no more


def test_a_clean_loss_beyond_the_margin_makes_q1_no_despite_a_robustness_gain():
    effects = {("sweep_area", "C"): 0.10, (CLEAN, "C"): -0.06}
    out = look(_study(effects, range(6)), 0)
    by = {(h["endpoint"], h["arm"], h["against"]): h for h in out["hypotheses"]}
    assert by[("sweep_area", "C", "A")]["rejected"]
    assert not out["non_inferiority"]["C - A"]["non_inferior"] and out["q1"]["C"] == {"a": False}


def test_the_confirmatory_test_profile_attacks_at_the_pilots_eps_star():
    """The `confirm` profile is the plan's test endpoints: APGD at the eps* the pilot's record
    holds (from A's validation report), on 512 examples; the low-intensity sweep on the whole split."""
    from pathlib import Path

    from nsde.metrics import eval_config

    record = json.loads((Path(__file__).parents[2] / "bench" / "results" / "confirm-pilot.json").read_text())
    plain = next(r for r in record["rows"] if r["arm"] == "A")
    assert record["eps_star"] == eps_star(plain)
    cfg = eval_config("confirm")
    assert cfg.apgd_eps == (record["eps_star"],) and cfg.attack_subset == 512 and cfg.apgd_steps == 20
    assert cfg.sweep_subset == 0 and cfg.sweep_area_max == 0.1 and cfg.checks and cfg.abc_subset == 256
    assert cfg.checks_subset == 64  # amendment 6: the checks on 64 of the 512
    # C's pilot point (amendment 6): the pilot profile at eps* only, its checks on 64 of the 128
    c_pilot, pilot = eval_config("confirm-pilot-mc"), eval_config("confirm-pilot")
    assert c_pilot.apgd_eps == (record["eps_star"],) and c_pilot.checks_subset == 64
    assert dataclasses.replace(c_pilot, apgd_eps=pilot.apgd_eps, checks_subset=0) == pilot
    # the certified reference: the largest radius n = 500 draws can certify (every draw correct,
    # Cohen et al.'s bound at alpha) reaches past eps*, and eps* is a radius of the report
    from scipy.stats import norm
    p_lower = cfg.smoothing_alpha ** (1 / cfg.smoothing_n)  # Clopper-Pearson lower bound at n of n
    assert cfg.smoothing_sigma * norm.ppf(p_lower) > record["eps_star"] == cfg.smoothing_radius
    assert cfg.smoothing_radius in cfg.smoothing_radii


def test_q1_needs_a_positive_significant_contrast_that_is_also_non_inferior_and_ignores_negative_ones():
    """(b) for D: a significant *negative* D - B' on SNR does not veto a positive, non-inferior
    D - B; a positive contrast whose clean accuracy is inferior does not count."""
    effects = {("apgd_accuracy", "D"): 0.10, ("snr_accuracy", "D"): -0.10, ("snr_accuracy", "B'"): 0.0}
    out = look(_study(effects, range(6)), 0)
    by = {(h["endpoint"], h["arm"], h["against"]): h for h in out["hypotheses"]}
    assert by[("snr_accuracy", "D", "B'")]["rejected"] and by[("snr_accuracy", "D", "B'")]["difference"] < 0
    assert out["q1"]["D"] == {"a": True, "b": True}
    only_negative = look(_study({("apgd_accuracy", "D"): -0.10}, range(6)), 0)
    assert only_negative["q1"]["D"] == {"a": False, "b": False}


# ------------------------------------------------------------------ the record of tested models


def test_a_tested_models_row_keeps_every_objective_and_curve_of_its_real_report(tmp_path):
    """`model_row` on a real test report (a tiny untrained model, every stage the `confirm`
    profile runs, smoothing included): every finite objective is the report's own, the curves are
    the report's estimates, the checks its verdicts, and the row survives JSON."""
    import torch

    from nsde.data import PRESETS, prepare
    from nsde.metrics import EvalConfig, evaluate
    from nsde.models import ModelConfig, build_model

    data = prepare(dataclasses.replace(PRESETS["tiny"], examples_per_class=6, cache_dir=str(tmp_path)), progress=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"))
    cfg = EvalConfig(sweep_kinds=("gaussian",), sweep_intensities=(0.01, 0.1), sweep_area_max=0.1, apgd_eps=(0.15,),
                     apgd_steps=2, attack_subset=8, abc_subset=8, abc_samples=4, ig_steps=4, stability_subset=4,
                     stability_draws=1, resamples=50, smoothing_sigma=0.1, smoothing_n0=10, smoothing_n=20,
                     smoothing_subset=6, smoothing_radii=(0.0, 0.15), smoothing_radius=0.15)
    report = evaluate(model, data, cfg, split="test").to_dict()
    config = {"noise/shape": "fbm", "noise/sigma": 0.3, "noise/sigma_mode": "relative", "noise/hurst": 0.5,
              "train/lr": 4e-3, "train/weight_decay": 0.05, "train/seed": 3, "train/epochs": 30}
    row = json.loads(json.dumps(model_row(report, config, trial_id="t1", search="confirm-1")))
    assert (row["arm"], row["seed"], row["epochs"], row["trial_id"], row["search"]) == ("D", 3, 30, "t1", "confirm-1")
    assert json.loads(row["setting"]) == {"noise/sigma": 0.3, "train/lr": 4e-3, "train/weight_decay": 0.05}
    finite = {k: v for k, v in report["objectives"].items() if math.isfinite(v)}
    assert set(row["endpoints"]) == set(finite) >= {*ENDPOINTS, CLEAN, "certified_accuracy", "attribution_stability"}
    assert all(row["endpoints"][k] == pytest.approx(v) for k, v in finite.items())
    assert [p[0] for p in row["curves"]["snr"]] == [lv for lv, _ in report["snr"]]
    assert row["curves"]["sweep"]["gaussian"][1][:2] == [0.1, report["sweep"]["gaussian"][1][1]["value"]]
    assert row["curves"]["apgd"]["0.15"][0] == report["apgd"]["0.15"]["value"]
    assert set(row["curves"]["smoothing"]) == {"0.0", "0.15"}
    assert row["curves"]["smoothing"]["0.15"][0] == pytest.approx(row["endpoints"]["certified_accuracy"])
    assert row["checks"] == {k: c["passed"] for k, c in report["checks"].items()} and row["seconds"]["total"] > 0


def _rows(study, search="confirm-1"):
    """The record's rows of a simulated study (`_study`): one a model, its endpoints."""
    by = {}
    for endpoint, frame in study.items():
        for r in frame.itertuples():
            row = by.setdefault((r.arm, r.seed), {"arm": r.arm, "seed": r.seed, "setting": "{}", "search": search,
                                                  "trial_id": f"{search}-{r.arm}-{r.seed}", "endpoints": {}})
            row["endpoints"][endpoint] = r.value
    return list(by.values())


def test_the_record_keeps_a_model_once_and_a_look_on_it_equals_the_look_on_the_values(tmp_path):
    study = _study({("apgd_accuracy", "D"): 0.10}, range(7))
    rows = _rows(study)
    first, skipped = merge_tested([], [r for r in rows if r["seed"] < 3])
    assert not skipped and [(r["seed"], r["arm"]) for r in first[:6]] == [(0, a) for a in ARMS]
    rerun = [{**r, "trial_id": "again", "endpoints": {e: 0.0 for e in r["endpoints"]}} for r in rows if r["seed"] == 2]
    merged, skipped = merge_tested(first, rerun + [r for r in rows if r["seed"] >= 3])
    assert len(merged) == 42 and len(skipped) == 6  # a model recorded once is never replaced
    assert all(r["trial_id"] != "again" for r in merged)
    values = values_of(merged)
    for endpoint in (*ENDPOINTS, CLEAN):
        left = values[endpoint].sort_values(["seed", "arm"]).reset_index(drop=True)
        right = study[endpoint].sort_values(["seed", "arm"]).reset_index(drop=True)
        assert np.allclose(left["value"], right["value"]) and left["arm"].tolist() == right["arm"].tolist()
    # the CLI's look reads the record and uses the first six complete seed blocks
    path = tmp_path / "blocks.json"
    path.write_text(json.dumps({"rows": merged}))
    out = tmp_path / "look1.json"
    assert main(["look", "--record", str(path), "--look", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["seeds"] == list(range(6)) and result["searches"] == ["confirm-1"]
    assert result == json.loads(json.dumps(look(values, 0) | {"searches": ["confirm-1"]}, default=float))
    # a model without an endpoint leaves its seed block incomplete: the look takes the next six
    merged[0]["endpoints"].pop("snr_accuracy")
    path.write_text(json.dumps({"rows": merged}))
    assert main(["look", "--record", str(path), "--look", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["seeds"] == list(range(1, 7))
    path.write_text(json.dumps({"rows": [r for r in merged if r["seed"] != 6]}))  # five complete blocks
    assert main(["look", "--record", str(path), "--look", "1", "--out", str(out)]) == 2
    assert main(["look", "--record", str(tmp_path / "none.json")]) == 2


def test_the_seed_band_is_the_t_interval_over_seeds_worked_example():
    mean, low, high, n = seed_band([0.70, 0.74, 0.78])  # sd 0.04, se 0.04 / sqrt 3, t(0.975, 2) = 4.303
    assert (mean, n) == (pytest.approx(0.74), 3)
    assert high - mean == pytest.approx(mean - low) == pytest.approx(4.3027 * 0.04 / math.sqrt(3), rel=1e-4)
    assert math.isnan(seed_band([0.7])[1]) and seed_band([0.7])[3] == 1 and seed_band([None, math.nan])[3] == 0


def test_the_figures_draw_every_arm_with_its_seed_count(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(3):
        for arm in (*ARMS, "AT"):
            snr = [[lv, 0.5 + 0.01 * lv + rng.normal(0, 0.01), None, None] for lv in (-10.0, 0.0, 10.0)]
            rows.append({"arm": arm, "seed": seed, "endpoints": {CLEAN: 0.8 + rng.normal(0, 0.01),
                                                                 **{e: 0.5 + rng.normal(0, 0.02) for e in ENDPOINTS}},
                         "curves": {"snr": snr, "apgd": {"0.15": [0.4, None, None]},
                                    "smoothing": {"0.0": [0.7, None, None], "0.15": [0.3, None, None]}}})
    rows = [r for r in rows if not (r["arm"] == "AT" and r["seed"] == 2)]  # AT has two seeds
    figs = figures(rows, json.loads((__import__("pathlib").Path(__file__).parents[2] / "bench" / "results"
                                     / "confirm-pilot.json").read_text()))
    assert set(figs) == {"confirm_snr", "confirm_eps", "confirm_plane"}
    labels = figs["confirm_snr"].axes[0].get_legend_handles_labels()[1]
    assert labels == [f"{a} (3 seeds)" for a in ARMS] + ["AT (2 seeds)"]
    line = figs["confirm_snr"].axes[0].get_lines()[0]
    a_means = [np.mean([r["curves"]["snr"][i][1] for r in rows if r["arm"] == "A"]) for i in range(3)]
    assert np.allclose(line.get_ydata(), a_means)
    assert len(figs["confirm_plane"].axes) == 3 and len(figs["confirm_plane"].axes[0].texts) == 7
    assert "A" in figs["confirm_eps"].axes[0].get_legend_handles_labels()[1][0]  # the pilot's plain model
    for name, fig in figs.items():
        fig.savefig(tmp_path / f"{name}.png")


def test_the_cross_checks_read_a_blocks_models_from_disk_and_a_self_transfer_equals_the_white_box(tmp_path):
    """`crosscheck` on one seed of two blocks (A and D in one, C in its own, as amendment 7 runs
    them): C's and D's rows get the longer attack and the transfer from A; attacking D with
    examples made on D itself is the white-box attack exactly (a known answer), and a model with
    every example robust at eps 0 passes both checks."""
    import torch

    from analysis.confirm import crosscheck
    from nsde.data import PRESETS, prepare
    from nsde.models import ModelConfig, NoiseConfig, build_model

    data = prepare(dataclasses.replace(PRESETS["tiny"], examples_per_class=6, cache_dir=str(tmp_path / "c")),
                   progress=False)
    configs = {"A": ModelConfig(backbone="resnet18"),
               "C": ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.3, sigma_mode="absolute", depth=2,
                                                                        eval_mode="mc", mc_samples=2)),
               "D": ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.3, depth=2, eval_mode="off"))}
    rows = []
    for i, (arm, seed) in enumerate([("A", 0), ("C", 0), ("D", 0), ("C", 1)]):
        torch.manual_seed(i)
        model = build_model(configs[arm])
        search, trial = ("blkc" if arm == "C" else "blk"), f"t{arm}{seed}"
        folder = tmp_path / "runs" / search / f"run_trial_{trial}_{i}_x" / "checkpoint_000003"
        folder.mkdir(parents=True)
        torch.save({"model_config": dataclasses.asdict(configs[arm]), "model": model.state_dict()},
                   folder / "model.pt")
        (folder / "data.json").write_text(json.dumps({"path": str(data.path)}))
        rows.append({"arm": arm, "seed": seed, "trial_id": trial, "search": search, "endpoints": {}})
    record, pilot = tmp_path / "blocks.json", tmp_path / "pilot.json"
    record.write_text(json.dumps({"rows": rows}))
    pilot.write_text(json.dumps({"eps_star": 0.15}))
    args = ["crosscheck", "--search", "blk", "--search", "blkc", "--runs", str(tmp_path / "runs"), "--subset", "6",
            "--steps", "2", "--more-steps", "4", "--record", str(record), "--pilot", str(pilot)]
    assert main([*args[:3], *args[5:]]) == 2  # C's block not named: no seed has A, C and D
    assert main(args) == 0
    out = {(r["arm"], r["seed"]): r for r in json.loads(record.read_text())["rows"]}
    assert "crosscheck" not in out[("A", 0)] and "crosscheck" not in out[("C", 1)]
    for arm in ("C", "D"):
        c = out[(arm, 0)]["crosscheck"]
        assert c["source"] == "A seed 0" and c["eps"] == 0.15 and c["n"] == 6
        assert set(c["robust"]) == {"2 steps", "4 steps", "transfer"} and isinstance(c["steps"]["passed"], bool)
    # C's block alone (the session that ran A's is over): the transfer comes from C of the other seed
    alone = ["crosscheck", "--search", "blkc", *args[5:]]
    assert main([*alone, "--arm", "C"]) == 2  # no A in C's block
    assert main([*alone, "--arm", "C", "--source", "C:7"]) == 2  # no such seed
    assert main([*alone, "--arm", "C", "--source", "Z"]) == 2  # no such arm
    assert main([*alone, "--arm", "C", "--source", "C:1", "--seed", "0"]) == 0
    c = {(r["arm"], r["seed"]): r for r in json.loads(record.read_text())["rows"]}[("C", 0)]["crosscheck"]
    assert c["source"] == "C seed 1" and c["n"] == 6
    # D against itself: the same examples, the same verdict
    torch.manual_seed(2)
    d = build_model(configs["D"]).eval()
    x = data.split("test").x[:8].float()
    y = d(x).argmax(1)  # every example correct: robust accuracy is non-trivial
    same = crosscheck(d, d, x, y, eps=0.15, steps=2, more_steps=4)
    assert same["robust"]["transfer"] == same["robust"]["4 steps"] and same["transfer"]["difference"] == 0
    tiny = crosscheck(d, d, x, y, eps=1e-6, steps=2, more_steps=4)  # nothing moves at eps -> 0
    assert tiny["robust"]["2 steps"] == tiny["robust"]["4 steps"] == 1.0 and tiny["steps"]["passed"]
    assert main([*args[:2], "nope", *args[3:]]) == 2  # a search the record does not hold
