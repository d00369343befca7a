"""Flat Tune configs -> nsde frozen configs (the one place this happens), and objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nsde.metrics.evaluate import OBJECTIVE_METRICS, OBJECTIVES
from nsde.models import ModelConfig, NoiseConfig, model_config_from_dict
from nsde.train import TrainConfig
from spaces import KEYS

__all__ = ["DEFAULT_OBJECTIVES", "METRICS", "OBJECTIVE_SPLIT", "SCHEDULER_METRICS", "TEST_PREFIX", "Objective", "flatten",
           "is_deterministic", "parse_objectives", "trial_configs"]

# Scalar metrics a trial reports at its end, with the direction that is better: every
# objective of an evaluation (nsde.metrics.OBJECTIVE_METRICS, all on the validation split)
# and the training's own numbers.
METRICS: dict[str, str] = {
    **OBJECTIVE_METRICS,
    "val_accuracy": "max",  # last epoch's validation accuracy (single pass, as training measures it)
    "train_seconds": "min",
}
# Per-epoch metrics a scheduler (ASHA) can compare; objectives exist only at a trial's end.
SCHEDULER_METRICS: dict[str, str] = {"val_accuracy": "max", "train_loss": "min"}
DEFAULT_OBJECTIVES = ",".join(f"{name}:{OBJECTIVE_METRICS[name]}" for name in OBJECTIVES)
# Where a trial's numbers come from: selection (trials, both fronts) on validation only; the
# final front and the baseline are scored on test once, as `test_<metric>`.
OBJECTIVE_SPLIT = "val"
TEST_PREFIX = "test_"


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
    flat = {k: int(v) if KEYS[k].kind is int and isinstance(v, float) and v.is_integer() else v
            for k, v in flat.items()}  # YAML may give 8.0 for an integer key
    model, noise, train = ({k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(group + "/")}
                           for group in ("model", "noise", "train"))
    if noise.get("shape", NoiseConfig().shape) == "none":  # the deterministic baseline: no hooks, sigma 0
        noise = {"shape": "white", "hurst": None, "sigma": 0.0}
    if num_classes is not None:
        model["num_classes"] = num_classes
    return model_config_from_dict({**model, "noise": noise}), TrainConfig(**train)
