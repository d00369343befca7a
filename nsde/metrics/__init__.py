"""Objectives of the search: clean accuracy, noise sweep, APGD robustness, ABC, attributions.

Each objective is one registered `ObjectiveSpec` (`nsde.metrics.objectives`), computed from
the per-example values of one stage of `evaluate` (`nsde.metrics.stages`).
"""

from nsde.metrics.config import EVAL_PROFILES, SPLITS, EvalConfig, eval_config
from nsde.metrics.evaluate import evaluate
from nsde.metrics.objectives import (
    OBJECTIVE_METRICS,
    OBJECTIVES,
    ObjectiveSpec,
    has_samples,
    list_objectives,
    objective,
    objective_samples,
    objective_specs,
    register_objective,
    unregister_objective,
)
from nsde.metrics.report import EvalReport, seed_estimates
from nsde.metrics.stages import Evaluation, Stage, list_stages, register_stage, unregister_stage
from nsde.metrics.explain import (
    abc_scores,
    abc_summary,
    attribution_figure,
    attribution_stability,
    integrated_gradients,
    noise_tunnel,
    path_averaged_gradient,
    saliency,
)
from nsde.metrics.robustness import (
    AttackResult,
    adaptive_checks,
    apgd_attack,
    apgd_robust_accuracy,
    noisy_inputs,
    predict_labels,
    sweep_accuracy,
)
from nsde.metrics.stats import (
    Estimate,
    auroc,
    bootstrap,
    bootstrap_mean,
    bootstrap_seeds,
    mcnemar,
    mean_estimate,
    paired_difference,
    proportion,
)

__all__ = [
    "EVAL_PROFILES",
    "OBJECTIVES",
    "OBJECTIVE_METRICS",
    "SPLITS",
    "AttackResult",
    "EvalConfig",
    "EvalReport",
    "Evaluation",
    "Estimate",
    "ObjectiveSpec",
    "Stage",
    "abc_scores",
    "abc_summary",
    "adaptive_checks",
    "apgd_attack",
    "apgd_robust_accuracy",
    "attribution_figure",
    "attribution_stability",
    "auroc",
    "bootstrap",
    "bootstrap_mean",
    "bootstrap_seeds",
    "eval_config",
    "evaluate",
    "has_samples",
    "integrated_gradients",
    "list_objectives",
    "list_stages",
    "mcnemar",
    "mean_estimate",
    "noise_tunnel",
    "noisy_inputs",
    "objective",
    "objective_samples",
    "objective_specs",
    "paired_difference",
    "path_averaged_gradient",
    "predict_labels",
    "proportion",
    "register_objective",
    "register_stage",
    "saliency",
    "seed_estimates",
    "sweep_accuracy",
    "unregister_objective",
    "unregister_stage",
]
