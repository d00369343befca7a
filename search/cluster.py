"""Cluster-scale estimate: the wall time and GPU-hours of a paper-scale search (the `paper` space,
30 epochs a trial) on G GPUs, for FIFO and for MOASHA stopping rules, with k trials packed on a GPU.

How: `search.simulate.simulate` runs the search's own sampler and scheduler on the `crossing`
problem (measured learning curves) for `trials` trials on G x k workers, on its clock (1 epoch =
1 unit, a rung evaluation `rung_cost` units); `TrialCosts` turns units into seconds.

Measured (each figure in `COSTS`, with its source): the H200 training throughputs
(docs/benchmarks.md, "GPU: one NVIDIA H200"), the H200 evaluation throughputs of ConvNeXt-Base
(../shared/BASELINES.md, "Evaluation costs, convnext_base"), the per-trial start-up between
trials (bench/results/packing-cpu.json, on the CPU). Counted from the code: the paper preset's
split sizes (nsde.data PRESETS["paper"]) and each evaluation profile's model passes
(nsde.metrics EVAL_PROFILES: subsets, APGD steps, EOT, checks, mc_samples).

Assumed (not measured):
- ResNet-50's evaluation passes are as much faster than ConvNeXt-Base's as its training step
  (no ResNet-50 evaluation figure exists); the fBm fields of a noisy evaluation pass cost what
  they add to a training step (drawn once a forward, none in the backward), at H = 0.5 and in
  every block (the space's H is 0.3-0.7 and its depth "stages:0" to "all": an upper bound).
- The throughputs are at batch 128; the space trains at batch 64 (probably a little slower).
- A trial's cost is the mean over the space's kinds of trial (`ARMS`: every categorical choice
  equally likely, as random sampling draws them), since the simulated clock has one epoch length.
- The rung evaluation of a trial stopped at that rung, the trial's last (search-profile)
  evaluation and the start-up between trials are not on the simulated clock; they are added
  spread evenly over the workers (ceil(count / workers) of each; exact for FIFO).
- Packing k trials on a GPU: the GPU's throughput with k trials is `efficiency[k]` times one
  trial's (1 for k = 1). No GPU measurement of packing exists (bench/results/packing-cpu.json is
  the CPU analogue, where most of the gain is hiding the start-up between trials): the factor is
  an assumption to be replaced by `bench/bench_packing.py` on a GPU.
- The end of the search (re-evaluating the front with the `full` profile, its test scores over
  `final_seeds` trainings) is not in the estimate; `TrialCosts.full_s` gives the `full`
  profile's cost of one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.hypervolume import hypervolume
from analysis.pareto import pareto_mask
from nsde.metrics import EvalConfig, eval_config
from search.simulate import Problem, SimResult, simulate

__all__ = ["ARMS", "COSTS", "DEFAULT_EFFICIENCY", "TrialCosts", "cluster_search", "eval_passes", "front",
           "front_fraction", "paper_costs"]

_P = 128  # the batch the H200 figures were measured at
COSTS: dict[str, float] = {
    "train_examples": 625 * 16 * 0.7,  # nsde.data PRESETS["paper"]: 625 a class x 16 classes x train split 0.7 = 7,000
    "val_examples": 625 * 16 * 0.15,  # the same x validation split 0.15 = 1,500 (each epoch's accuracy; the objectives)
    "train_ips[convnext_base,none]": 1356,  # docs/benchmarks.md, GPU: one NVIDIA H200, train_step images/s, plain
    "train_ips[convnext_base,fbm]": 1048,  # the same, fBm exact H 0.5 in every block
    "train_ips[resnet50,none]": 3908,  # the same, ResNet-50 plain
    "train_ips[resnet50,fbm]": 1793,  # the same, ResNet-50 fBm exact H 0.5
    "fwd_ips[convnext_base]": 4107,  # BASELINES.md, Evaluation costs, convnext_base: forward only, plain
    "grad_ips[convnext_base]": 1954,  # BASELINES.md, the same: forward + input gradient (IG's and APGD's unit), plain
    "attack_overhead": 1954 / (16.6 * 100),  # BASELINES.md: APGD-L2 100 steps at 16.6 img/s = 1,660 passes/s, not 1,954
    "resnet50_eval_speedup": 3908 / 1356,  # ASSUMED: ResNet-50's eval passes this much faster (its train_step ratio)
    "fbm_s_per_128[convnext_base]": _P / 1048 - _P / 1356,  # fBm fields, s a 128-image forward: train_step difference
    "fbm_s_per_128[resnet50]": _P / 1793 - _P / 3908,  # the same for ResNet-50
    "mc_samples": 8,  # spaces.builtin.paper constant noise/mc_samples: an 'mc' prediction is 8 noisy passes
    "trial_overhead_s": (104.437 - 8 * 7.779) / 8,  # packing-cpu.json, 1 at a time: (tune_s - 8 mean_trial_s) / 8, CPU
}

# The paper space's kinds of trial (spaces.builtin.paper): backbone x noise/shape x noise/eval_mode
# (for fBm), every choice equally likely: (backbone, shape, eval mode) -> share of the trials
ARMS: dict[tuple[str, str, str], float] = {
    (backbone, shape, mode): 0.5 * (0.5 if shape == "none" else 0.25)
    for backbone in ("convnext_base", "resnet50")
    for shape, modes in (("none", ("off",)), ("fbm", ("off", "mc")))
    for mode in modes
}
# The GPU's throughput with k trials on it over one trial's: an ASSUMPTION (module docstring).
# The H200 figures are at batch 128 and the space trains at 64, which leaves one trial's GPU partly idle.
DEFAULT_EFFICIENCY: dict[int, float] = {1: 1.0, 2: 1.2, 4: 1.3}


def eval_passes(cfg: EvalConfig, n: int, *, stochastic: bool, passes: int = 1) -> tuple[float, float, float]:
    """(forward, attack gradient, other gradient) single-model passes of `evaluate` with `cfg` on
    a split of `n` examples, for a model whose prediction is `passes` noisy passes (`stochastic`:
    noise on at evaluation; its attacks take `cfg.eot_iter` samples a step). Counted from
    nsde.metrics.stages: clean (whole split), sweep and SNR sweep (`sweep_subset`), APGD at
    every eps with a verdict a batch (`attack_subset`), the checks (eps -> 0 and a large eps; for
    a stochastic model EOT 1 and `check_eot_factor` x EOT at the largest eps and the transfer
    from the noise-off twin), ABC (IG, then `abc_samples` mutated copies), stability
    (IG at the draws and at x); randomized smoothing when `smoothing_sigma` > 0."""
    def size(field: int) -> int:
        return min(field or n, n)

    eot = cfg.eot_iter if stochastic else 1
    sweep, attacked, abc, stab = size(cfg.sweep_subset), size(cfg.attack_subset), size(cfg.abc_subset), \
        size(cfg.stability_subset)
    forward = n + (len(cfg.sweep_kinds) * len(cfg.sweep_intensities) + len(cfg.snr_levels)) * sweep
    forward += (len(cfg.apgd_eps) + 1) * attacked + cfg.abc_samples * abc
    attack = len(cfg.apgd_eps) * cfg.apgd_steps * eot * attacked
    twin = 0.0  # the transfer check attacks the deterministic twin: one pass, not `passes`
    if cfg.checks:
        checked = min(cfg.checks_subset, attacked) if cfg.checks_subset else attacked
        per_step = 2 * eot + ((1 + cfg.check_eot_factor * eot) if stochastic else 0)
        attack += per_step * cfg.apgd_steps * checked
        twin = cfg.apgd_steps * checked if stochastic else 0.0
    other = cfg.ig_steps * abc + (cfg.stability_draws + 1) * cfg.ig_steps * stab
    if cfg.smoothing_sigma > 0:
        forward += (cfg.smoothing_n0 + cfg.smoothing_n) * size(cfg.smoothing_subset)
    return forward * passes, attack * passes + twin, other * passes


@dataclass(frozen=True)
class TrialCosts:
    """Seconds on one GPU (alone on it): a training epoch (with its validation pass), a rung
    evaluation, the trial's last evaluation (search profile), the start-up between trials, and
    for reference the `full` profile on one model (the end of the search, not estimated)."""

    epoch_s: float
    rung_s: float
    final_s: float
    overhead_s: float = 0.0
    full_s: float = 0.0


def _arm_costs(backbone: str, shape: str, mode: str, *, profiles: tuple[str, str, str],
               costs: dict[str, float]) -> TrialCosts:
    c = costs
    speed = 1.0 if backbone == "convnext_base" else c["resnet50_eval_speedup"]
    stochastic = shape != "none" and mode != "off"
    passes = int(c["mc_samples"]) if stochastic else 1
    field = c[f"fbm_s_per_128[{backbone}]"] / _P if stochastic else 0.0  # seconds an image of noisy pass
    fwd = 1.0 / (speed * c["fwd_ips[convnext_base]"]) + field  # seconds a single pass, an example
    grad = 1.0 / (speed * c["grad_ips[convnext_base]"]) + field
    n = round(c["val_examples"])

    def seconds(profile: str) -> float:
        f, a, o = eval_passes(eval_config(profile), n, stochastic=stochastic, passes=passes)
        return f * fwd + a * grad * c["attack_overhead"] + o * grad

    epoch = c["train_examples"] / c[f"train_ips[{backbone},{shape}]"] + n * passes * fwd
    search, rung, full = profiles
    return TrialCosts(epoch, seconds(rung), seconds(search), c["trial_overhead_s"], seconds(full))


def paper_costs(*, costs: dict[str, float] = COSTS, arms: dict[tuple[str, str, str], float] = ARMS,
                profiles: tuple[str, str, str] = ("fast", "rung", "full")) -> tuple[TrialCosts, dict[str, TrialCosts]]:
    """The mean `TrialCosts` over `arms` (weighted by their share) and each arm's, for the
    (search, rung, final) evaluation `profiles` (the paper space's `fast` / `full`, the
    search's `--rung-profile` `rung`)."""
    each = {"/".join(arm): _arm_costs(*arm, profiles=profiles, costs=costs) for arm in arms}
    weights = np.array(list(arms.values())) / sum(arms.values())

    def mean(name: str) -> float:
        return float(np.dot(weights, [getattr(t, name) for t in each.values()]))

    return TrialCosts(mean("epoch_s"), mean("rung_s"), mean("final_s"), mean("overhead_s"), mean("full_s")), each


def front(problem: Problem, result: SimResult) -> np.ndarray:
    """The non-dominated set of the complete trials' true final values (`Problem.true_final`),
    rows sorted."""
    complete = [t for t in result.configs if t not in result.stopped]
    if not complete:
        return np.zeros((0, problem.objectives))
    values = np.array([problem.true_final(result.configs[t]) for t in complete])
    points = np.unique(values[pareto_mask(values, [o.mode for o in problem.objective_list])].round(12), axis=0)
    return points


def front_fraction(problem: Problem, points: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume of `points` over that of `reference` (reference point 0: every objective in [0, 1])."""
    modes = [o.mode for o in problem.objective_list]
    ref = np.zeros(problem.objectives)
    denominator = hypervolume(reference, modes, ref)
    return hypervolume(points, modes, ref) / denominator if denominator > 0 else math.nan


def cluster_search(problem: Problem, *, costs: TrialCosts, trials: int, max_epochs: int, gpus: int, pack: int = 1,
                   efficiency: float = 1.0, sampler: str = "tpe", seed: int = 0, **rule) -> tuple[dict, SimResult]:
    """One simulated search of `trials` trials of `max_epochs` epochs on `gpus` GPUs with `pack`
    trials a GPU, priced with `costs` (`rule`: `simulate`'s scheduler arguments, e.g. a
    bench_search_efficiency RULES entry). A simulated unit is `costs.epoch_s * pack / efficiency`
    seconds of wall time (k trials share a GPU whose throughput is `efficiency` x one trial's)
    and `costs.epoch_s / efficiency` GPU-seconds. Returns the figures and the `SimResult`.

    wall = (makespan + ceil(complete / workers) * final + ceil(stopped / workers) * rung) * unit
           + ceil(trials / workers) * overhead_s                (workers = gpus * pack)
    GPU-hours (busy) = (trial-epochs + rung evaluations + complete * final) * epoch_s / efficiency / 3600
    GPU-hours (held) = gpus * wall / 3600
    """
    if pack < 1 or gpus < 1 or not efficiency > 0:
        raise ValueError(f"`gpus >= 1`, `pack >= 1` and `efficiency > 0` must hold, but got gpus={gpus}, "
                         f"pack={pack}, efficiency={efficiency}")
    workers = gpus * pack
    rung_units, final_units = costs.rung_s / costs.epoch_s, costs.final_s / costs.epoch_s
    result = simulate(problem, sampler=sampler, seed=seed, budget=math.inf, max_epochs=max_epochs, workers=workers,
                      rung_cost=rung_units, num_samples_hint=trials, max_trials=trials, **rule)
    complete, stopped = len(result.budget), len(result.stopped)
    unit_wall = costs.epoch_s * pack / efficiency
    wall = ((result.wall + math.ceil(complete / workers) * final_units + math.ceil(stopped / workers) * rung_units)
            * unit_wall + math.ceil(result.trials / workers) * costs.overhead_s)
    busy = (result.spent + complete * final_units) * costs.epoch_s / efficiency
    return {"wall_h": wall / 3600, "gpu_h_busy": busy / 3600, "gpu_h_held": gpus * wall / 3600, "trials": result.trials,
            "complete": complete, "stopped": stopped, "sim_makespan_epochs": result.wall}, result
