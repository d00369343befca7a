"""Flat Tune configs -> nsde frozen configs (the one place this happens), and objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nsde.models import ModelConfig, NoiseConfig
from nsde.train import TrainConfig
from spaces import KEYS

__all__ = ["METRICS", "SCHEDULER_METRICS", "Objective", "flatten", "is_deterministic", "parse_objectives", "trial_configs",
           "DEFAULT_OBJECTIVES"]

# Scalar metrics a trial reports at its end, with the direction that is better.
METRICS: dict[str, str] = {
    "clean_accuracy": "max",  # test split, noise as the trial's eval_mode says
    "sweep_accuracy": "max",  # mean over the Gaussian and fBm input-noise sweep
    "apgd_accuracy": "max",  # APGD-CE L2 robust accuracy, mean over eps
    "abc_correct": "max",  # mean attribution-based confidence on correct predictions
    "attribution_stability": "min",  # log sum |IG(x + delta) - IG(x)|: lower is more stable
    "val_accuracy": "max",  # last epoch's validation accuracy
    "train_seconds": "min",
}
# Per-epoch metrics a scheduler (ASHA) can compare; objectives exist only at a trial's end.
SCHEDULER_METRICS: dict[str, str] = {"val_accuracy": "max", "train_loss": "min"}
DEFAULT_OBJECTIVES = "clean_accuracy:max,sweep_accuracy:max,apgd_accuracy:max,abc_correct:max"


@dataclass(frozen=True)
class Objective:
    name: str
    mode: str  # "max" or "min"


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """'clean_accuracy:max,apgd_accuracy' -> objectives (a bare name takes its usual direction)."""
    out: list[Objective] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, _, mode = item.partition(":")
        if name not in METRICS:
            raise ValueError(f"unknown objective {name!r}; known objectives: {list(METRICS)}")
        mode = mode or METRICS[name]
        if mode not in ("max", "min"):
            raise ValueError(f"objective {name!r}: direction must be 'max' or 'min', but got {mode!r}")
        out.append(Objective(name, mode))
    names = [o.name for o in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"`--objectives` must name at least one objective, each once, but got {text!r}")
    return tuple(out)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Tune hands trials nested dicts ({"noise": {"hurst": ...}}); the platform's keys are "noise/hurst"."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def is_deterministic(config: Mapping[str, Any]) -> bool:
    """A flat config without noise: `noise/shape` none, or sigma 0 (or unset)."""
    return config.get("noise/shape") == "none" or not config.get("noise/sigma", 0.0)


def trial_configs(config: Mapping[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of one trial's flat (or nested) config.

    Raises:
        ValueError: an unknown key or a value the nsde configs reject.
    """
    flat = flatten(config)
    unknown = set(flat) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known keys: {list(KEYS)}")
    flat = {k: int(v) if KEYS[k].kind is int and isinstance(v, float) and v.is_integer() else v
            for k, v in flat.items()}  # YAML may give 8.0 for an integer key
    model, noise, train = ({k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(group + "/")}
                           for group in ("model", "noise", "train"))
    if noise.get("shape", NoiseConfig().shape) == "none":  # the deterministic baseline: no hooks, sigma 0
        noise = {"shape": "white", "hurst": None, "sigma": 0.0}
    if isinstance(noise.get("depth"), list):
        noise["depth"] = tuple(noise["depth"])
    return ModelConfig(**model, noise=NoiseConfig(**noise)), TrainConfig(**train)
