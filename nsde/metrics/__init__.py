"""Objectives of the search: clean accuracy, noise sweep, APGD robustness, ABC, attributions."""

from nsde.metrics.evaluate import EVAL_PROFILES, OBJECTIVES, EvalConfig, EvalReport, eval_config, evaluate
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
from nsde.metrics.robustness import apgd_robust_accuracy, noisy_inputs, sweep_accuracy
from nsde.metrics.stats import Estimate, auroc, mean_estimate, proportion

__all__ = [
    "EVAL_PROFILES",
    "OBJECTIVES",
    "EvalConfig",
    "EvalReport",
    "Estimate",
    "abc_scores",
    "abc_summary",
    "apgd_robust_accuracy",
    "attribution_figure",
    "attribution_stability",
    "auroc",
    "eval_config",
    "evaluate",
    "integrated_gradients",
    "mean_estimate",
    "noise_tunnel",
    "noisy_inputs",
    "path_averaged_gradient",
    "proportion",
    "saliency",
    "sweep_accuracy",
]
