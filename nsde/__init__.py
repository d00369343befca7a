"""nsde: the science of the platform (shaped noise, NSDE models, data, training, metrics).

This package must not import ray, optuna or mlflow: it is usable on its own.
"""

from nsde.noise import estimate_hurst, fractional_brownian_field, list_noises, sample_noise, white_field

__all__ = ["estimate_hurst", "fractional_brownian_field", "list_noises", "sample_noise", "white_field"]
