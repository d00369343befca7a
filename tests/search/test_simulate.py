"""search.simulate: the simulated backend decides as a real Ray Tune run does, and spends its
budget as it says."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from search.moasha import MOASHAScheduler, rung_epochs
from search.searcher import NSDEOptunaSearch, make_sampler
from search.simulate import PROBLEMS, SimResult, _Space, budget_to_reach, curve_trainable, simulate

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
    for problem in PROBLEMS.values():
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
