"""search.cluster (bench/bench_cluster_scale.py's logic) and simulate's `max_trials` / `wall`: the
known cases of a simulated cluster search."""

from __future__ import annotations

import math

import optuna
import pytest

from nsde.metrics import eval_config
from search.cluster import TrialCosts, cluster_search, eval_passes, front, front_fraction, paper_costs
from search.simulate import PROBLEMS, simulate

optuna.logging.set_verbosity(optuna.logging.WARNING)
UNIT = TrialCosts(epoch_s=1.0, rung_s=0.0, final_s=0.0)  # made up: 1 s an epoch, evaluations free


@pytest.mark.parametrize("n, epochs, gpus", [(20, 3, 8), (16, 2, 4), (5, 4, 8)])
def test_fifo_takes_ceil_n_over_g_waves_of_e_epochs(n, epochs, gpus):
    figures, _result = cluster_search(PROBLEMS["crossing"], costs=UNIT, trials=n, max_epochs=epochs, gpus=gpus,
                                      sampler="random", scheduler="fifo")
    assert figures["wall_h"] * 3600 == pytest.approx(math.ceil(n / gpus) * epochs)
    assert figures["gpu_h_busy"] * 3600 == pytest.approx(n * epochs)
    assert figures["trials"] == figures["complete"] == n and figures["stopped"] == 0
    assert figures["gpu_h_held"] == pytest.approx(gpus * figures["wall_h"])


def test_packing_shares_the_gpu_at_the_assumed_efficiency():
    n, epochs, gpus = 20, 3, 8
    for efficiency in (1.0, 2.0):
        figures, _ = cluster_search(PROBLEMS["crossing"], costs=UNIT, trials=n, max_epochs=epochs, gpus=gpus, pack=2,
                                    efficiency=efficiency, sampler="random", scheduler="fifo")
        # 16 workers: 2 waves, each epoch 2 / efficiency seconds (two trials on a GPU)
        assert figures["wall_h"] * 3600 == pytest.approx(math.ceil(n / 16) * epochs * 2 / efficiency)
        assert figures["gpu_h_busy"] * 3600 == pytest.approx(n * epochs / efficiency)


def test_the_evaluations_and_start_up_off_the_clock_are_added_per_wave_for_fifo():
    costs = TrialCosts(epoch_s=1.0, rung_s=0.0, final_s=2.0, overhead_s=5.0)
    figures, _ = cluster_search(PROBLEMS["crossing"], costs=costs, trials=20, max_epochs=3, gpus=8, sampler="random",
                                scheduler="fifo")
    assert figures["wall_h"] * 3600 == pytest.approx(3 * (3 + 2) + 3 * 5)
    assert figures["gpu_h_busy"] * 3600 == pytest.approx(20 * (3 + 2))  # the start-up is not GPU work


@pytest.mark.parametrize("max_trials, workers", [(30, 4), (2, 4)])
def test_max_trials_starts_that_many_and_runs_them_to_their_end(max_trials, workers):
    result = simulate(PROBLEMS["zdt1"], sampler="random", scheduler="moasha", seed=0, budget=math.inf, max_epochs=9,
                      workers=workers, max_trials=max_trials)
    assert result.trials == len(result.configs) == max_trials
    assert len(result.budget) + len(result.stopped) == max_trials  # every trial ended: complete or stopped
    assert 0 < result.wall <= result.spent


def test_without_max_trials_the_budget_still_stops_it():
    result = simulate(PROBLEMS["zdt1"], sampler="random", scheduler="fifo", seed=0, budget=60, max_epochs=4)
    assert len(result.budget) == result.trials == 12 and result.wall == 12.0  # 3 waves of 4 epochs


def test_moasha_is_cheaper_and_its_front_is_measured_against_fifos():
    problem = PROBLEMS["crossing"]
    costs, _ = paper_costs()
    fifo, r_fifo = cluster_search(problem, costs=costs, trials=24, max_epochs=9, gpus=4, sampler="random",
                                  scheduler="fifo")
    moasha, r_moasha = cluster_search(problem, costs=costs, trials=24, max_epochs=9, gpus=4, sampler="random",
                                      scheduler="moasha")
    assert moasha["gpu_h_busy"] < fifo["gpu_h_busy"] and moasha["stopped"] > 0
    assert front_fraction(problem, front(problem, r_fifo), front(problem, r_fifo)) == pytest.approx(1.0)
    # random sampling draws the same configurations: MOASHA's complete trials are some of FIFO's
    assert 0 < front_fraction(problem, front(problem, r_moasha), front(problem, r_fifo)) <= 1.0 + 1e-12


def test_eval_passes_count_the_rung_profile_by_hand():
    forward, attack, other = eval_passes(eval_config("rung"), 1500, stochastic=False)
    # clean 1,500 + (2 kinds x 8 intensities + 6 SNR levels) x 128 + (4 eps + 1) x 32 verdicts + ABC 16 x 64
    assert forward == 1500 + 22 * 128 + 5 * 32 + 16 * 64
    assert attack == 4 * 10 * 32  # 4 eps x 10 steps x 32 examples, EOT 1, no checks
    assert other == 8 * 64 + 2 * 8 * 8  # IG 8 steps on ABC's 64; stability (1 draw + x) x 8 steps x 8
    stochastic = eval_passes(eval_config("rung"), 1500, stochastic=True, passes=8)
    assert stochastic == (8 * forward, 8 * attack, 8 * other)  # EOT 1 in the rung profile
