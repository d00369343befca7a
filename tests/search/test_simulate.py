"""search.simulate: the simulated backend decides as a real Ray Tune run does, and spends its
budget as it says."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import optuna
import pytest

from search.moasha import MOASHAScheduler, rung_epochs
from search.searcher import NSDEOptunaSearch, make_sampler
from search.simulate import PROBLEMS, Problem, SimResult, _Space, budget_to_reach, curve_trainable, simulate

MAX_EPOCHS, ETA = 4, 2.0


def test_fifo_runs_every_trial_to_the_end_and_moasha_stops_some():
    fifo = simulate(PROBLEMS["zdt1"], sampler="random", scheduler="fifo", seed=0, budget=60, max_epochs=MAX_EPOCHS)
    # 4 trials at a time: when the budget runs out 4 trials are in flight, 12 have completed
    assert fifo.stopped == {} and len(fifo.budget) == fifo.trials == 12 and fifo.spent == 60
    assert fifo.hypervolume == sorted(fifo.hypervolume)  # complete trials only add volume
    moasha = simulate(PROBLEMS["zdt1"], sampler="random", scheduler="moasha", seed=0, budget=60,
                      max_epochs=MAX_EPOCHS, reduction_factor=ETA)
    assert moasha.stopped and set(moasha.stopped.values()) <= set(rung_epochs(1, ETA, MAX_EPOCHS))
    assert moasha.trials > fifo.trials  # the same budget buys more (shorter) trials


def test_problems_rise_with_the_epochs_to_their_final_values():
    for problem in (PROBLEMS["zdt1"], PROBLEMS["dtlz2"]):
        x = np.full(problem.dims + 1, 0.3)  # the parameters, then the speed
        early, late = problem.at(x, 1), problem.at(x, 200)
        assert (late > early).all() and late == pytest.approx(problem.final(x[:-1]), abs=0.05)
        slow = np.append(x[:-1], 0.9)
        assert (problem.at(slow, 2) < problem.at(x, 2)).all()  # slower, and the same at the end
        assert problem.at(slow, 400) == pytest.approx(late, abs=0.05)
        assert problem.at(x, 3).tolist() == problem.at(x, 3).tolist()  # deterministic


def test_budget_to_reach_reads_the_curve():
    r = SimResult(budget=[10.0, 20.0, 30.0], hypervolume=[0.1, 0.3, 0.5])
    assert budget_to_reach(r, 0.3) == 20.0 and budget_to_reach(r, 0.6) == math.inf


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def test_the_simulator_and_a_real_tune_run_make_the_same_decisions(ray_local, tmp_path):
    """One trial at a time, the same sampler seed: the same configurations in the same order,
    so MOASHA must stop the same trials at the same rungs in both."""
    from ray import tune

    problem, seed = PROBLEMS["zdt1"], 3
    sim = simulate(problem, sampler="random", scheduler="moasha", seed=seed, budget=40, max_epochs=MAX_EPOCHS,
                   workers=1, reduction_factor=ETA, rung_cost=0.0)
    assert 0 < len(sim.stopped) < sim.trials

    objectives = problem.objective_list
    searcher = NSDEOptunaSearch(space=_Space(problem.dims + 1), metric=[o.name for o in objectives],
                                mode=[o.mode for o in objectives],
                                sampler=make_sampler("random", seed=seed, num_samples=20))
    scheduler = MOASHAScheduler(objectives, max_t=MAX_EPOCHS, reduction_factor=ETA)
    trainable = tune.with_parameters(curve_trainable, problem="zdt1", max_epochs=MAX_EPOCHS,
                                     rungs=rung_epochs(1, ETA, MAX_EPOCHS))
    grid = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                      tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=sim.trials,
                                                  max_concurrent_trials=1),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="sim", verbose=0)).fit()
    real = {r.config["x0"]: (int(r.metrics["epoch"]), bool(r.metrics["evaluated"])) for r in grid}

    # the simulator's trials in order, by their first parameter (the sampler gives both the same sequence)
    replay = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(directions=["maximize"] * len(objectives), sampler=replay)
    expected = {}
    for i in range(sim.trials):
        trial = study.ask()
        x0 = _Space(problem.dims + 1)(trial)["x0"]
        study.tell(trial, [0.0] * len(objectives))
        tid = f"{i:05d}"
        expected[x0] = (sim.stopped[tid], False) if tid in sim.stopped else (MAX_EPOCHS, True)
    assert real == expected


# ------------------------------------------------------------------ the crossing problem


def test_the_crossing_problems_curves_are_the_measured_ones():
    """MEASURED_CURVES / MEASURED_NOISE are the convergence benchmark's record, as the module says."""
    import json
    from pathlib import Path

    from scipy.optimize import isotonic_regression

    from search.simulate import MEASURED_CURVES, MEASURED_EPOCHS, MEASURED_NOISE

    record = json.loads((Path(__file__).parents[2] / "bench" / "results" / "convergence-cpu.json").read_text())
    squares = {0: [], 1: [], 2: []}
    for arm, curve in MEASURED_CURVES.items():
        seeds = np.array([r["val_accuracy"] for r in record["rows"] if r["arm"] == arm and r["budget"] == MEASURED_EPOCHS])
        assert len(seeds) == 2
        mean = isotonic_regression(seeds.mean(axis=0)).x
        assert np.allclose(curve, mean, atol=6e-5)
        for y in seeds:
            for e, d in enumerate(y - mean):
                squares[min(2, 3 * e // MEASURED_EPOCHS)].append(d * d)
    assert np.allclose(MEASURED_NOISE, [math.sqrt(2 * np.mean(v)) for v in squares.values()], atol=6e-4)


def test_on_the_crossing_problem_the_nsde_trails_early_ends_ahead_and_an_early_rung_stops_it():
    """The failure the problem exists for: at a rung a ninth into the schedule the plain
    configuration dominates the NSDE one, which ends ahead on both objectives, and MOASHA
    (grace 1, eta 3) stops the NSDE configuration there."""
    from types import SimpleNamespace

    from record import EVALUATED, RUNG_EPOCH, RUNG_PREFIX

    problem, max_epochs = PROBLEMS["crossing"], 27
    plain, nsde, half = [0.0, 0.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.5], [0.5, 0.0, 0.0, 0.5]
    lead = problem.noiseless(plain, 0.1) - problem.noiseless(nsde, 0.1)
    assert lead[0] == pytest.approx(0.4644 - 0.2759) and lead[1] > 0  # 19 points of clean accuracy at a tenth
    end_plain, end_nsde = problem.noiseless(plain, 1.0), problem.noiseless(nsde, 1.0)
    assert end_nsde[0] - end_plain[0] == pytest.approx(0.8599 - 0.8308, abs=1e-6)
    assert (problem.at(nsde, max_epochs, max_epochs) > problem.at(plain, max_epochs, max_epochs)).all()
    # the curve is read at the fraction of the schedule: 9 of 90 epochs is 3 of 30
    assert problem.noiseless(nsde, 9 / 90) == pytest.approx(problem.noiseless(nsde, 3 / 30))
    assert problem.at(nsde, 5, 27).tolist() == problem.at(nsde, 5, 27).tolist()  # deterministic
    worst_recipe = problem.noiseless([1.0, 0.0, 0.0, 0.0], 1.0)
    assert worst_recipe[0] == pytest.approx(end_nsde[0] * (1 - problem.recipe_penalty))
    objectives = problem.objective_list
    scheduler = MOASHAScheduler(objectives, max_t=max_epochs, grace_period=1, reduction_factor=3)
    decisions = {}
    for epoch in rung_epochs(1, 3, max_epochs):
        for name, x in (("plain", plain), ("half", half), ("nsde", nsde)):
            if decisions.get(name) == "STOP":
                continue
            values = problem.at(x, epoch, max_epochs)
            report = {"epoch": epoch, EVALUATED: False, RUNG_EPOCH: float(epoch),
                      **{RUNG_PREFIX + o.name: float(v) for o, v in zip(objectives, values)}}
            decisions[name] = scheduler.on_trial_result(None, SimpleNamespace(trial_id=name, config={}), report)
    assert decisions["nsde"] == "STOP" and decisions["plain"] == "CONTINUE"


def test_the_crossing_problems_retention_is_the_pilots():
    """CrossingProblem.retention: APGD at eps* over clean accuracy on the attacked examples, from
    the confirmatory pilot's validation record: the plain model's, then per unit of each strength
    the difference of the arm the curve belongs to (D at relative sigma 0.3, B' from -5 dB, C)."""
    import json
    from pathlib import Path

    record = json.loads((Path(__file__).parents[2] / "bench" / "results" / "confirm-pilot.json").read_text())
    eps = record["eps_star"]

    def ratio(arm, setting):
        row = next(r for r in record["rows"] if r["arm"] == arm and json.loads(r["setting"]) == setting)
        return row[f"apgd@{eps:g}"] / row["attacked_clean"]

    plain = ratio("A", {})
    arms = (ratio("D", {"noise/sigma": 0.3, "train/lr": 4e-3, "train/weight_decay": 0.05}),
            ratio("B'", {"augment/snr_low": -5.0}))
    retention = PROBLEMS["crossing"].retention
    assert retention[:3] == pytest.approx((plain, *(a - plain for a in arms)), abs=5e-4)
    assert retention[3] == pytest.approx(ratio("C", {}) - plain, abs=5e-4)


@dataclasses.dataclass(frozen=True)
class _Flipped(Problem):
    """Rising curves whose ranks are the final ones from epoch `until` on and reversed before
    it, without noise: a rung before `until` has Kendall tau -1 with the end, from it on +1."""

    until: int = 0

    def at(self, x, epoch, max_epochs=None):
        f = self.true_final(x)
        return (f if epoch >= self.until else 1.0 - f) * epoch / max_epochs


@pytest.mark.parametrize(("until", "grace"), [(0, 1), (9, 9), (27, None)])
def test_the_audited_grace_period_is_the_first_rung_that_ranks_as_the_end_does(until, grace):
    """`audit_trials`: the first 6 complete trials run with nothing stopped; the grace period is
    then the first rung (of 1, 3, 9) whose ranks agree with the end (tau 1), and MOASHA stops
    only from it on; when no rung agrees the rest of the search is FIFO."""
    problem = _Flipped("flip", 2, 2, final=lambda x: x, noise=0.0, until=until)
    r = simulate(problem, sampler="random", scheduler="moasha", seed=0, budget=20 * 27, max_epochs=27,
                 audit_trials=6)
    assert r.grace == grace
    audited = sorted(r.configs)[:6]  # the first six started; nothing of theirs stopped before the audit ended
    if grace is None:
        assert r.stopped == {} and len(r.budget) == r.trials  # FIFO: every trial ran to the end
    else:
        assert r.stopped and set(r.stopped.values()) <= set(rung_epochs(grace, 3.0, 27))
        assert not set(audited[:4]) & set(r.stopped)  # the first four ran during the audit only
    with pytest.raises(ValueError, match="needs scheduler 'moasha'"):
        simulate(problem, sampler="random", scheduler="fifo", seed=0, budget=27, max_epochs=27, audit_trials=6)
