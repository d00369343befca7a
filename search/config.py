"""Flat Tune configs -> nsde frozen configs: the one place this happens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nsde.models import ModelConfig, NoiseConfig, model_config_from_dict
from nsde.train import AdversarialConfig, AugmentConfig, TrainConfig
from record import flatten
from spaces import KEYS

__all__ = ["trial_configs"]


def trial_configs(config: Mapping[str, Any], *, num_classes: int | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of one trial's flat (or nested) config; `num_classes` (the
    data set's, None = the nsde default) sizes the head.

    Raises:
        ValueError: an unknown key or a value the nsde configs reject.
    """
    flat = flatten(config)
    unknown = set(flat) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known keys: {list(KEYS)}")
    flat = {k: KEYS[k].coerce(v) for k, v in flat.items()}  # YAML may give 8.0 for an integer key
    model, noise, train, augment, adversarial = (
        {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(group + "/")}
        for group in ("model", "noise", "train", "augment", "adversarial"))
    if noise.get("shape", NoiseConfig().shape) == "none":  # the deterministic baseline: no hooks, sigma 0
        noise = {"shape": "white", "hurst": None, "sigma": 0.0}
    if num_classes is not None:
        model["num_classes"] = num_classes
    return model_config_from_dict({**model, "noise": noise}), TrainConfig(
        **train, augment=AugmentConfig(**augment), adversarial=AdversarialConfig(**adversarial))
