"""MOASHA: the decision rule on hand-made rung tables whose outcome is known, and the scheduler
inside a real Ray Tune run with our Optuna searcher (stopped trials PRUNED with their rungs)."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

from record import RUNG_EPOCH, RUNG_PREFIX, Objective
from search.moasha import MOASHAScheduler, RungTables, rank_at_rung, read_decisions, rung_epochs

MAX2 = ["max", "max"]


def _table(values, directions=MAX2, eta=2.0, epoch=1):
    """Record `values` (one row a trial, in arrival order) at one rung; the decisions in order."""
    tables = RungTables(directions, [epoch], eta)
    return tables, [tables.record(f"t{i}", epoch, v) for i, v in enumerate(values)]


def test_rung_epochs_grow_by_eta_below_the_budget():
    assert rung_epochs(1, 3, 27) == (1, 3, 9)
    assert rung_epochs(1, 3, 5) == (1, 3)
    assert rung_epochs(2, 2, 16) == (2, 4, 8)
    assert rung_epochs(1, 1.5, 5) == (1, 2, 3)  # 1, 1.5 -> 1 (kept once), 2.25 -> 2, 3.375 -> 3
    assert rung_epochs(4, 3, 4) == ()
    for bad, message in [((0, 3, 5), "grace_period >= 1"), ((1, 1, 5), "reduction_factor > 1"),
                         ((1, 3, 0), "max_t >= 1")]:
        with pytest.raises(ValueError, match=message):
            rung_epochs(*bad)


def test_a_dominated_trial_stops_and_a_trial_on_the_front_continues():
    _, ds = _table([(0.8, 0.8), (0.6, 0.6)])  # eta 2: of 2 trials the top 1 continues
    assert not ds[0].stop and ds[1].stop and ds[1].front == 1 and ds[1].position == 1
    # a newcomer that dominates everyone continues, whatever came before it
    _, ds = _table([(0.5, 0.5), (0.4, 0.4), (0.3, 0.3), (0.9, 0.9)], eta=3.0)
    assert not ds[3].stop and ds[3].position == 0 and ds[3].front == 0 and ds[3].continuing == 2
    assert "continued at the epoch-1 rung: ranked 1 of 4" in ds[3].reason()


def test_the_new_trial_is_judged_by_its_own_rank_not_by_the_last_in_sort_order():
    """Syne Tune's MOASHA reads the rank of whichever trial sorts last; here that trial is an
    earlier, worse one, and the newcomer in the middle must continue."""
    _, ds = _table([(0.9, 0.9), (0.1, 0.1), (0.5, 0.5)])  # eta 2: of 3 trials the top 2 continue
    assert ds[2].position == 1 and ds[2].continuing == 2 and not ds[2].stop
    # and a newcomer that sorts last of three stops
    _, ds = _table([(0.9, 0.9), (0.5, 0.5), (0.1, 0.1)])
    assert ds[2].position == 2 and ds[2].stop


def test_ties_inside_a_front_go_to_the_less_crowded_then_the_earlier():
    ends = [(0.1, 0.9), (0.9, 0.1)]
    # 4 non-dominated trials, eta 4/3: the top 3 continue. Crowding distances: the ends inf,
    # (0.45, 0.55) 1.25, (0.4, 0.6) 0.875: the more crowded one is last, whoever came last
    _, ds = _table(ends + [(0.4, 0.6), (0.45, 0.55)], eta=4 / 3)
    assert ds[3].position == 2 and not ds[3].stop
    _, ds = _table(ends + [(0.45, 0.55), (0.4, 0.6)], eta=4 / 3)
    assert ds[3].position == 3 and ds[3].stop
    # equal trials: the earlier one ranks first
    _, ds = _table([(0.5, 0.5), (0.5, 0.5)])
    assert ds[1].front == 0 and ds[1].position == 1 and ds[1].stop


def test_mixed_directions_are_ranked_by_what_is_better():
    # objective 2 is minimised: (0.9, 0.1) dominates (0.8, 0.2); read as max-max neither would
    # dominate, and the newcomer would lose the tie on arrival
    _, ds = _table([(0.8, 0.2), (0.9, 0.1)], directions=["max", "min"])
    assert ds[1].front == 0 and ds[1].position == 0 and not ds[1].stop
    _, ds = _table([(0.8, 0.2), (0.9, 0.1)])
    assert ds[1].stop


def test_a_trial_alone_at_a_rung_continues_and_late_trials_meet_only_their_rung():
    tables = RungTables(MAX2, [1, 3], 3.0)
    assert not tables.record("a", 1, (0.5, 0.5)).stop
    assert not tables.record("a", 3, (0.1, 0.1)).stop  # alone at epoch 3, however poor
    # b reaches epoch 1 later: compared with a's epoch-1 values, not its later ones
    b = tables.record("b", 1, (0.6, 0.6))
    assert b.trials == 2 and b.position == 0 and not b.stop
    c = tables.record("c", 1, (0.55, 0.55))  # behind b, ahead of a: 2nd of 3, the top 1 continues
    assert c.position == 1 and c.stop
    assert tables.record("a", 2, (0.9, 0.9)) is None  # no rung at epoch 2
    assert list(tables.tables[3]) == ["a"]


def test_a_nan_objective_ranks_behind_every_front():
    _, ds = _table([(0.5, math.nan), (0.1, 0.1), (math.nan, 0.9)])
    assert not ds[0].stop  # alone: continues
    assert ds[1].position == 0 and not ds[1].stop
    assert ds[2].front == -1 and ds[2].position == 2 and ds[2].stop and "a NaN objective" in ds[2].reason()


def test_a_retried_trial_keeps_its_first_decision_and_the_tables_survive_json(tmp_path):
    tables, ds = _table([(0.8, 0.8), (0.6, 0.6)])
    assert tables.record("t1", 1, (0.99, 0.99)) == ds[1]  # a retry reporting the rung again
    path = tmp_path / "rungs.json"
    path.write_text(json.dumps(tables.to_dict()))
    back = RungTables.from_dict(json.loads(path.read_text()))
    assert back.tables == tables.tables and back.decisions == tables.decisions
    assert read_decisions(path) == {"t1": ds[1]} and read_decisions(tmp_path / "none.json") == {}


def test_keep_front_keeps_every_non_dominated_trial_and_still_stops_dominated_ones(tmp_path):
    # three objectives: (0.9, 0.1, 0.5), (0.1, 0.9, 0.5), (0.5, 0.5, 0.9) are mutually
    # non-dominated; eta 3: of 3 trials the top 1 continues by rank
    rows = [(0.9, 0.1, 0.5), (0.1, 0.9, 0.5), (0.5, 0.5, 0.9), (0.4, 0.4, 0.4)]
    plain = RungTables(["max"] * 3, [1], 3.0)
    kept = RungTables(["max"] * 3, [1], 3.0, keep_front=True)
    for tables in (plain, kept):
        for i, v in enumerate(rows):
            tables.record(f"t{i}", 1, v)
    by_rank = {t: ds[0] for t, ds in plain.decisions.items()}
    by_front = {t: ds[0] for t, ds in kept.decisions.items()}
    assert by_rank["t1"].stop and by_rank["t2"].stop  # on the front, cut by crowding and arrival
    assert not by_front["t1"].stop and not by_front["t2"].stop and by_front["t1"].kept_front
    assert by_front["t1"].reason().endswith("kept running on the rung's non-dominated front")
    assert by_front["t3"].stop and by_front["t3"].front == 1 and not by_front["t3"].kept_front  # dominated by t2
    path = tmp_path / "rungs.json"
    path.write_text(json.dumps(kept.to_dict()))
    back = RungTables.from_dict(json.loads(path.read_text()))
    assert back.keep_front and back.decisions == kept.decisions


def test_brackets_rank_trials_only_within_their_bracket_from_its_own_grace_period(tmp_path):
    """Hyperband-style brackets: trials take brackets in turn; bracket 1 skips the first rung
    and the last bracket (rungs + 1) never stops; a trial is ranked against its bracket only."""
    tables = RungTables(MAX2, [1, 3], 2.0, brackets=3)
    assert [tables.bracket(f"t{i}") for i in range(6)] == [0, 1, 2, 0, 1, 2]
    # at the epoch-1 rung only bracket 0 (t0, t3) is ranked; t1, t2, t4, t5 have no rung there
    assert tables.record("t0", 1, (0.9, 0.9)).stop is False
    assert tables.record("t1", 1, (0.1, 0.1)) is None and tables.record("t2", 1, (0.0, 0.0)) is None
    assert tables.record("t3", 1, (0.5, 0.5)).stop is True  # behind t0, its bracket's only other trial
    # at the epoch-3 rung bracket 1 starts: t1 is alone in it (t0 is bracket 0's), so it continues
    d1 = tables.record("t1", 3, (0.1, 0.1))
    assert not d1.stop and d1.trials == 1
    assert tables.record("t0", 3, (0.9, 0.9)).trials == 1  # bracket 0 holds t0 alone at epoch 3 (t3 stopped)
    assert tables.record("t4", 3, (0.0, 0.0)).stop is True  # bracket 1: behind t1
    assert tables.record("t2", 3, (0.0, 0.0)) is None and tables.record("t5", 3, (0.0, 0.0)) is None  # never stop
    assert set(tables.stopped()) == {"t3", "t4"}
    back = RungTables.from_dict(json.loads(json.dumps(tables.to_dict())))
    assert back.brackets == 3 and back.bracket_of == tables.bracket_of and set(back.stopped()) == {"t3", "t4"}
    with pytest.raises(ValueError, match=r"1 <= brackets <= 3"):
        RungTables(MAX2, [1, 3], 2.0, brackets=4)
    # one bracket is plain MOASHA: the same decisions as without the argument
    plain, one = RungTables(MAX2, [1], 2.0), RungTables(MAX2, [1], 2.0, brackets=1)
    values = [(0.5, 0.5), (0.9, 0.1), (0.4, 0.4), (0.1, 0.9)]
    assert [plain.record(f"t{i}", 1, v) for i, v in enumerate(values)] == \
        [one.record(f"t{i}", 1, v) for i, v in enumerate(values)]


def test_extrapolation_ranks_the_trial_that_climbs_faster_ahead_and_only_records_first_rungs():
    """`extrapolate`: a trial's values are carried to the budget along the line through its
    previous and present rung in log-epochs. Rungs 1 and 3 of a 27-epoch budget: the line runs
    log(27/3) / log(3/1) = 2 rung-steps on, so a (0.60 -> 0.70) is read as 0.90 and b (0.30 ->
    0.60) as 1.20: b, behind at the rung, ranks ahead and continues where plain MOASHA stops it."""
    plain = RungTables(MAX2, [1, 3], 2.0)
    ext = RungTables(MAX2, [1, 3], 2.0, extrapolate=True, horizon=27)
    curves = {"a": [(0.60, 0.60), (0.70, 0.70)], "b": [(0.30, 0.30), (0.60, 0.60)],
              "c": [(0.64, 0.64), (0.65, 0.65)]}
    firsts = {t: ext.record(t, 1, v[0]) for t, v in curves.items()}
    assert not any(d.stop for d in firsts.values())  # nothing to extrapolate from at the first rung
    assert firsts["b"].first_rung and firsts["b"].reason().endswith("nothing to extrapolate from")
    assert not firsts["a"].first_rung  # on top anyway: it continues on its rank
    assert plain.record("a", 1, curves["a"][0]).stop is False and plain.record("b", 1, curves["b"][0]).stop is True
    assert ext.record("a", 3, curves["a"][1]).stop is False  # alone at the rung
    assert ext.extrapolated("a", 3) == pytest.approx([0.90, 0.90])
    b = ext.record("b", 3, curves["b"][1])
    assert ext.extrapolated("b", 3) == pytest.approx([1.20, 1.20])
    assert b.position == 0 and not b.stop  # behind a at the rung, ahead on the extrapolated values
    c = ext.record("c", 3, curves["c"][1])  # 0.65 + 0.01 x 2 = 0.67: third of three, ceil(3/2) = 2 continue
    assert c.position == 2 and c.stop and not c.first_rung
    back = RungTables.from_dict(json.loads(json.dumps(ext.to_dict())))
    assert back.extrapolate and back.horizon == 27 and back.decisions == ext.decisions
    assert back.extrapolated("b", 3) == pytest.approx([1.20, 1.20])
    with pytest.raises(ValueError, match=r"horizon > 3"):
        RungTables(MAX2, [1, 3], 2.0, extrapolate=True)
    with pytest.raises(ValueError, match=r"horizon > 3"):
        RungTables(MAX2, [1, 3], 2.0, extrapolate=True, horizon=3)


def test_the_baseline_is_ranked_but_never_stopped():
    """The space's first point runs to the end: the held-out comparison and bounds relative to
    the baseline need its final numbers. It still takes its place in the rung's ranking."""
    from types import SimpleNamespace

    objectives = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))
    base = {"noise/shape": "none", "train/lr": 4e-3, "train/seed": 0}
    scheduler = MOASHAScheduler(objectives, max_t=4, reduction_factor=2, baseline_config=base)

    def report(tid, config, values):
        trial = SimpleNamespace(trial_id=tid, config=config)
        return scheduler.on_trial_result(None, trial, {RUNG_EPOCH: 1.0, **{
            f"{RUNG_PREFIX}{o.name}": v for o, v in zip(objectives, values)}})

    assert report("good", {"noise": {"shape": "fbm"}, "train": {"lr": 4e-3, "seed": 0}}, (0.9, 0.9)) == "CONTINUE"
    # the baseline (nested as Tune hands it, another seed) ranks 2nd of 2 and still continues
    assert report("base", {"noise": {"shape": "none"}, "train": {"lr": 4e-3, "seed": 7}}, (0.5, 0.5)) == "CONTINUE"
    decision = scheduler.rungs.decisions["base"][0]
    assert decision.position == 1 and not decision.stop and decision.protected
    assert decision.reason().endswith("kept running as the baseline")
    assert report("poor", {"noise": {"shape": "white"}, "train": {"lr": 4e-3, "seed": 0}}, (0.4, 0.4)) == "STOP"


def test_rank_at_rung_matches_a_brute_force_ranking():
    """Positions equal those of sorting by (front, -crowding, arrival) computed by hand."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=(12, 3)).astype(float)  # many ties and dominations
    positions, fronts = rank_at_rung(values, ["max", "min", "max"])
    v = values * np.array([1, -1, 1])
    dominated = lambda i, rest: any((v[j] >= v[i]).all() and (v[j] > v[i]).any() for j in rest)  # noqa: E731
    expected_fronts, left, k = np.zeros(12, int), set(range(12)), 0
    while left:
        front = {i for i in left if not dominated(i, left)}
        for i in front:
            expected_fronts[i] = k
        left, k = left - front, k + 1
    assert (fronts == expected_fronts).all()
    for f in set(fronts.tolist()):
        members = np.flatnonzero(fronts == f)
        ordered = members[np.argsort(positions[members])]
        assert (positions[members].min(), positions[members].max()) == (
            int((fronts < f).sum()), int((fronts <= f).sum()) - 1)
        assert list(ordered) == sorted(ordered, key=lambda i: (-_crowding(values[members], members, i), i))


def _crowding(front_values, members, i):
    """The crowding distance of row i of a front, written out for the test."""
    if len(members) <= 2:
        return math.inf
    row = list(members).index(i)
    total = 0.0
    for m in range(front_values.shape[1]):
        col = front_values[:, m]
        order = sorted(range(len(col)), key=lambda r: (col[r], r))
        span = col.max() - col.min()
        if span == 0:
            continue
        at = order.index(row)
        if at in (0, len(col) - 1):
            return math.inf
        total += (col[order[at + 1]] - col[order[at - 1]]) / span
    return total


# ------------------------------------------------------------------ inside Ray Tune


def _curve_trainable(config):
    """A trial whose objectives at epoch e are its config's quality times e / 4; it reports a
    rung result at epochs 1 and 2, and its evaluation at epoch 4."""
    from ray import tune

    q = np.array([config["q1"], config["q2"]])
    for epoch in range(1, 5):
        values = q * epoch / 4
        result = {"epoch": epoch, "evaluated": epoch == 4, "clean_accuracy": math.nan, "apgd_accuracy": math.nan}
        if epoch in (1, 2):
            result.update({RUNG_EPOCH: float(epoch), f"{RUNG_PREFIX}clean_accuracy": values[0],
                           f"{RUNG_PREFIX}apgd_accuracy": values[1]})
        if epoch == 4:
            result.update(clean_accuracy=values[0], apgd_accuracy=values[1])
        tune.report(result)


def _curve_of_point(config):
    _curve_trainable(config["p"])


def _quality_space(trial):
    return {"q1": trial.suggest_float("q1", 0, 1), "q2": trial.suggest_float("q2", 0, 1)}


@pytest.fixture(scope="module")
def ray_local():
    from pathlib import Path

    import ray

    # the trainable above lives in this test module: Ray's workers import it from this folder
    ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING",
             runtime_env={"working_dir": str(Path(__file__).parent)})
    yield
    ray.shutdown()


def test_moasha_in_tune_stops_what_the_rule_stops_and_optuna_prunes_them(ray_local, tmp_path):
    """One trial at a time (arrival order = submission order), so the real run must make
    exactly the decisions of the rule replayed on the same values; stopped trials are PRUNED
    in Optuna with their rung values, complete ones COMPLETE with their final values."""
    from ray import tune

    from search.searcher import NSDEOptunaSearch

    objectives = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))
    points = [{"q1": 0.5, "q2": 0.5}, {"q1": 0.9, "q2": 0.2}, {"q1": 0.2, "q2": 0.2}, {"q1": 0.6, "q2": 0.6},
              {"q1": 0.3, "q2": 0.4}, {"q1": 0.1, "q2": 0.95}]
    storage = f"sqlite:///{tmp_path / 'o.db'}"

    searcher = NSDEOptunaSearch(space=_quality_space, metric=[o.name for o in objectives], mode=["max", "max"],
                                sampler=optuna.samplers.RandomSampler(seed=0), study_name="m", storage=storage,
                                points_to_evaluate=points)
    scheduler = MOASHAScheduler(objectives, max_t=4, grace_period=1, reduction_factor=2,
                                state_file=tmp_path / "rungs.json")
    grid = tune.Tuner(tune.with_resources(_curve_trainable, {"cpu": 1}),
                      tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=len(points),
                                                  max_concurrent_trials=1),
                      run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="m", verbose=0)).fit()

    # the rule replayed on the same values, trials in the order they ran
    replay = RungTables(["max", "max"], [1, 2], 2.0)
    expected_stop = {}
    for i, p in enumerate(points):
        for epoch in (1, 2):
            d = replay.record(str(i), epoch, [p["q1"] * epoch / 4, p["q2"] * epoch / 4])
            if d.stop:
                expected_stop[i] = epoch
                break
    assert 0 < len(expected_stop) < len(points)  # the case decides something both ways

    by_point = {(r.config["q1"], r.config["q2"]): r for r in grid}
    study = optuna.load_study(study_name="m", storage=storage)
    trials = {(t.params["q1"], t.params["q2"]): t for t in study.trials}
    stopped = read_decisions(tmp_path / "rungs.json")
    for i, p in enumerate(points):
        key = (p["q1"], p["q2"])
        result, trial = by_point[key], trials[key]
        if i in expected_stop:
            assert result.metrics["epoch"] == expected_stop[i] and not result.metrics["evaluated"]
            assert trial.state == optuna.trial.TrialState.PRUNED and trial.values is None
            assert trial.user_attrs["stopped_at_rung"] == expected_stop[i]
            assert trial.user_attrs[f"rung_{expected_stop[i]}"]["clean_accuracy"] == pytest.approx(
                p["q1"] * expected_stop[i] / 4)
            assert stopped[result.metrics["trial_id"]].epoch == expected_stop[i]
        else:
            assert result.metrics["epoch"] == 4
            assert trial.state == optuna.trial.TrialState.COMPLETE and trial.values == pytest.approx([p["q1"], p["q2"]])
            assert set(trial.user_attrs) == {"rung_1", "rung_2"}


def test_the_rung_audit_in_tune_stops_nothing_and_records_what_the_rule_would_stop(ray_local, tmp_path):
    """--rung-audit: the same points as above, one at a time; every trial runs to its end, and the
    decisions are the rule's (trials it would stop report their later rungs apart, in `shadow`)."""
    from ray import tune

    from analysis.rungs import rung_audit, would_stop

    points = [{"q1": 0.5, "q2": 0.5}, {"q1": 0.9, "q2": 0.2}, {"q1": 0.2, "q2": 0.2}, {"q1": 0.6, "q2": 0.6},
              {"q1": 0.3, "q2": 0.4}, {"q1": 0.1, "q2": 0.95}]
    objectives = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))
    scheduler = MOASHAScheduler(objectives, max_t=4, grace_period=1, reduction_factor=2,
                                state_file=tmp_path / "rungs.json", audit=True)
    grid = tune.Tuner(tune.with_resources(_curve_of_point, {"cpu": 1}), param_space={"p": tune.grid_search(points)},
                      tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1, reuse_actors=True),
                      run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="audit", verbose=0)).fit()
    assert sorted(r.metrics["epoch"] for r in grid) == [4] * len(points)  # nothing stopped
    rungs = json.loads((tmp_path / "rungs.json").read_text())
    replay = RungTables(["max", "max"], [1, 2], 2.0, audit=True)
    ids = {(r.config["p"]["q1"], r.config["p"]["q2"]): r.metrics["trial_id"] for r in grid}
    order = sorted(grid, key=lambda r: r.metrics["timestamp"])  # the order the trials ran (one at a time)
    for r in order:
        q = r.config["p"]
        for epoch in (1, 2):
            replay.record(r.metrics["trial_id"], epoch, [q["q1"] * epoch / 4, q["q2"] * epoch / 4])
    assert would_stop(rungs) == would_stop(replay.to_dict()) and 0 < len(would_stop(rungs)) < len(points)
    stopped_at_1 = [t for t, e in would_stop(rungs).items() if e == 1]
    assert all(t in rungs["shadow"]["2"] for t in stopped_at_1)  # they kept running: their rung-2 values
    final = {ids[(p["q1"], p["q2"])]: {"clean_accuracy": p["q1"], "apgd_accuracy": p["q2"]} for p in points}
    import pandas as pd

    audit = rung_audit(rungs, pd.DataFrame(final).T, ["clean_accuracy", "apgd_accuracy"], front=[])
    # the curves are their end values scaled: each rung ranks the trials exactly as they end
    np.testing.assert_allclose(audit["kendall_tau"], 1.0)
    assert (audit["trials"] == len(points)).all()
