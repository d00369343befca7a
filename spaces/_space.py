"""A search space as data: Optuna distributions, conditions, constants and starting points.

A trial's configuration is a flat dict keyed like ``"noise/hurst"`` (see `KEYS`); `search/`
turns it into the nsde frozen configs in one place. A space only describes which values
each key may take; it computes nothing (Ray warns when a define-by-run space is slow).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nsde.data import PRESET_RULE
from nsde.metrics.config import PROFILE_RULE
from nsde.models import ModelConfig, NoiseConfig, check_depth
from nsde.noise import list_noises
from nsde.rules import Rule, rules_of
from nsde.train import TrainConfig
from nsde.train.augment import AdversarialConfig, AugmentConfig

__all__ = ["KEYS", "NOISE_SHAPES", "Param", "SearchSpace", "replicate"]


def _noise_shapes() -> tuple[str, ...]:
    """'none' is the deterministic baseline (sigma = 0); the others are nsde noise shapes."""
    return ("none", *list_noises())


NOISE_SHAPES = _noise_shapes()

# The config fields a trial may set, by group. Their rules (and messages) are the nsde
# configs' own; keys a space leaves unset take the nsde defaults.
_SEARCHABLE = {
    "model": (ModelConfig, ("backbone", "drop_path_rate")),
    "noise": (NoiseConfig, ("shape", "hurst", "sigma", "sigma_mode", "anchor", "depth", "method", "eval_mode",
                            "mc_samples")),
    "train": (TrainConfig, ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing",
                            "grad_clip", "seed")),
    # the practitioner's alternatives (nsde.train.augment): they cross with any noise shape
    "augment": (AugmentConfig, tuple(rules_of(AugmentConfig))),
    "adversarial": (AdversarialConfig, tuple(rules_of(AdversarialConfig))),
}
KEYS: dict[str, Rule] = {f"{group}/{name}": rules_of(config)[name]
                         for group, (config, names) in _SEARCHABLE.items() for name in names}
# What a search adds to two of them: the baseline shape 'none', and who sets the seed.
KEYS["noise/shape"] = dataclasses.replace(KEYS["noise/shape"], choices=_noise_shapes,
                                          doc="a noise shape, or 'none' = the deterministic baseline")
KEYS["train/seed"] = dataclasses.replace(KEYS["train/seed"], doc="the search sets it from --seed unless the space does")


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        distribution: an Optuna distribution (Float / Int / Categorical).
        when: the parameter exists only where every named earlier parameter is active and
            takes one of the listed values: ``{"noise/shape": ("fbm",)}``.
        key: the config key it sets (default: its own name). Two parameters may set one key
            under disjoint conditions, e.g. a depth range per backbone.
    """

    distribution: BaseDistribution
    when: Mapping[str, tuple] = field(default_factory=dict)
    key: str | None = None

    def target(self, name: str) -> str:
        return self.key or name


@dataclass(frozen=True)
class SearchSpace:
    """A named search space.

    Attributes:
        params: searched parameters in definition order (conditions refer to earlier ones).
        constants: fixed config values for every trial.
        points: starting points evaluated first (values by parameter name), e.g. the
            deterministic baseline; parameters inactive in a point are left out.
        preset: the data preset (`nsde.data.PRESETS`) the space is sized for.
        search_profile / final_profile: evaluation profiles (`nsde.metrics.EVAL_PROFILES`)
            that score every trial and then re-score the Pareto-optimal ones.
        final_seeds: training seeds behind each held-out (test) number of the final front
            and the baseline: 1 = the trial's own model; N > 1 retrains N - 1 more.
        designed: the points are the whole experiment (a designed study, e.g. a factorial grid
            with its seeds as a parameter): a search runs each point once, in order, samples
            nothing else, and scores every complete trial on the test split (nothing is
            selected, so there is no front to re-score); `--num-samples` defaults to the
            number of points. The points must be distinct.
    """

    name: str
    params: Mapping[str, Param]
    constants: Mapping[str, Any] = field(default_factory=dict)
    points: tuple[Mapping[str, Any], ...] = ()
    preset: str = "default"
    search_profile: str = "fast"
    final_profile: str = "full"
    final_seeds: int = 1
    description: str = ""
    designed: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        """Raise ValueError, naming the space, the parameter and the rule, on any defect."""
        try:
            self._validate()
        except ValueError as err:
            raise ValueError(f"search space {self.name!r}: {err}") from None

    def _validate(self) -> None:
        PRESET_RULE.check(self.preset, "preset")
        for which in ("search_profile", "final_profile"):
            PROFILE_RULE.check(getattr(self, which), which)
        if isinstance(self.final_seeds, bool) or not isinstance(self.final_seeds, int) or self.final_seeds < 1:
            raise ValueError(f"`final_seeds >= 1` must hold (an integer), but got {self.final_seeds!r}")
        if not self.params:
            raise ValueError("a space needs at least one parameter")
        seen: list[str] = []
        for name, param in self.params.items():
            _check_param(name, param, self.params, seen)
            seen.append(name)
        _check_shared_keys(self.params)
        for key, value in self.constants.items():
            _check_key(key, value)
            if any(p.target(n) == key for n, p in self.params.items()):
                raise ValueError(f"{key} is both a searched parameter and a constant")
        self._check_depths()
        for i, point in enumerate(self.points):
            self._check_point(i, point)
        if self.designed:
            self._check_design()

    def _check_depths(self) -> None:
        """Every injection depth must exist in every backbone it can meet (e.g. <= 8 blocks for resnet18)."""
        bb = self.params.get("model/backbone")
        backbones = (list(bb.distribution.choices) if bb is not None
                     else [self.constants.get("model/backbone", ModelConfig().backbone)])
        checks = []
        if "noise/depth" in self.constants:
            checks.append(("noise/depth", backbones, [self.constants["noise/depth"]]))
        for name, p in self.params.items():
            if p.target(name) != "noise/depth":
                continue
            d = p.distribution
            values = list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low, d.high]
            checks.append((name, [b for b in backbones if b in p.when.get("model/backbone", backbones)], values))
        for name, names, values in checks:
            for backbone in names:
                for value in values:
                    try:
                        check_depth(backbone, value)
                    except ValueError as err:
                        raise ValueError(f"{name}: {err}") from None

    def _check_point(self, i: int, point: Mapping[str, Any]) -> None:
        active = self.active(point)
        unknown = set(point) - set(self.params)
        if unknown:
            raise ValueError(f"point {i} names unknown parameters {sorted(unknown)}; parameters: {list(self.params)}")
        missing = [n for n in active if n not in point]
        extra = [n for n in point if n not in active]
        if missing or extra:
            raise ValueError(f"point {i} must set exactly the active parameters; missing {missing}, inactive {extra}")
        for name in active:
            _check_value(name, self.params[name], point[name])

    def _check_design(self) -> None:
        if not isinstance(self.designed, bool):
            raise ValueError(f"`designed` must be true or false, but got {self.designed!r}")
        if not self.points:
            raise ValueError("a designed space runs its points, and has none")
        first: dict[tuple, int] = {}
        for i, point in enumerate(self.points):
            key = tuple(sorted((k, repr(v)) for k, v in self.config(point).items()))
            if key in first:
                raise ValueError(f"points {first[key]} and {i} are the same configuration; a design runs each once")
            first[key] = i

    def active(self, values: Mapping[str, Any]) -> list[str]:
        """The parameters active under `values` (a partial assignment by parameter name)."""
        out: list[str] = []
        for name, param in self.params.items():
            if all(parent in out and values.get(parent) in allowed for parent, allowed in param.when.items()):
                out.append(name)
        return out

    def config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The flat trial config of parameter values `values` plus the constants."""
        out = dict(self.constants)
        for name in self.active(values):
            out[self.params[name].target(name)] = values[name]
        return out

    def values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The parameter values behind a flat trial config: the inverse of `config` (each
        parameter active under the values found so far whose key the config sets)."""
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            active = all(parent in out and out[parent] in allowed for parent, allowed in param.when.items())
            if active and param.target(name) in config:
                out[name] = config[param.target(name)]
        return out

    def check_values(self, values: Mapping[str, Any]) -> None:
        """Raise ValueError, naming the parameter, unless every value lies in its distribution."""
        for name, value in values.items():
            if name not in self.params:
                raise ValueError(f"unknown parameter {name!r}; the space's parameters: {list(self.params)}")
            _check_value(name, self.params[name], value)

    def finished_trial(self, values: Mapping[str, Any], objectives: Sequence[float],
                       user_attrs: Mapping[str, Any] | None = None) -> optuna.trial.FrozenTrial:
        """A COMPLETE Optuna trial of parameter `values` (checked: `check_values`) with these
        objective values, for `Study.add_trial`.

        Raises:
            ValueError: naming the parameter whose value the space cannot hold.
        """
        self.check_values(values)
        return optuna.trial.create_trial(params=dict(values), values=list(objectives),
                                         distributions={n: self.params[n].distribution for n in values},
                                         user_attrs=dict(user_attrs or {}))

    def to_dict(self) -> dict:
        """A YAML/JSON-ready description (what `load_space` reads back)."""
        return {
            "name": self.name,
            "description": self.description,
            "preset": self.preset,
            "search_profile": self.search_profile,
            "final_profile": self.final_profile,
            "final_seeds": self.final_seeds,
            "designed": self.designed,
            "params": {n: _param_dict(p) for n, p in self.params.items()},
            "constants": dict(self.constants),
            "points": [dict(p) for p in self.points],
        }


def replicate(cells: Sequence[Mapping[str, Any]], seeds: Sequence[int], *, param: str = "train/seed"
              ) -> tuple[dict[str, Any], ...]:
    """The points of a replicated design: every cell once per seed (the seed set by `param`),
    seed by seed, so that a study stopped part-way holds whole replicates, and every cell,
    the baseline included, runs with the same seeds (paired)."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"a design needs distinct seeds, at least one, but got {list(seeds)}")
    return tuple({**cell, param: seed} for seed in seeds for cell in cells)


# ------------------------------------------------------------------------- helpers


def _rule(key: str) -> Rule:
    if key not in KEYS:
        raise ValueError(f"unknown config key {key!r}; known keys: {list(KEYS)}")
    return KEYS[key]


def _check_key(key: str, value: Any, context: str = "") -> None:
    """`value` against the nsde rule of `key`: the rule's own message, after the key (and `context`)."""
    rule = _rule(key)
    try:
        rule.check(rule.coerce(value))
    except ValueError as err:
        raise ValueError(f"{key}: {context}{err}") from None


def _check_param(name: str, param: Param, params: Mapping[str, Param], seen: list[str]) -> None:
    key = param.target(name)
    rule = _rule(key)
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:  # name the rejected one of several choices
            _check_key(key, choice, f"{choice!r} is not allowed: ")
    elif isinstance(dist, (FloatDistribution, IntDistribution)):
        if rule.kind is str:
            raise ValueError(f"{name}: {key} takes choices, not a numeric range")
        if rule.kind is int and isinstance(dist, FloatDistribution):
            raise ValueError(f"{name}: {key} is an integer; give integer bounds")
        _check_key(key, dist.low)
        _check_key(key, dist.high)
    else:
        raise ValueError(f"{name}: unsupported distribution {type(dist).__name__}")
    for parent, allowed in param.when.items():
        if parent not in seen:
            raise ValueError(f"{name}: condition on {parent!r}, which is not a parameter defined before it")
        parent_dist = params[parent].distribution
        if not isinstance(parent_dist, CategoricalDistribution):
            raise ValueError(f"{name}: conditions must name a categorical parameter, but {parent!r} is not")
        bad = [v for v in allowed if v not in parent_dist.choices]
        if bad or not allowed:
            raise ValueError(f"{name}: condition values {bad or '[]'} are not choices of {parent!r}: {parent_dist.choices}")


def _check_shared_keys(params: Mapping[str, Param]) -> None:
    """Parameters that set one key must do so under disjoint conditions on a common parent."""
    by_key: dict[str, list[str]] = {}
    for name, p in params.items():
        by_key.setdefault(p.target(name), []).append(name)
    for key, names in by_key.items():
        if len(names) < 2:
            continue
        parents = set.intersection(*(set(params[n].when) for n in names))
        ok = any(
            all(not set(params[a].when[par]) & set(params[b].when[par]) for a in names for b in names if a < b)
            for par in parents
        )
        if not ok:
            raise ValueError(f"parameters {names} all set {key}; their conditions must be disjoint on a common parent")


def _check_value(name: str, param: Param, value: Any) -> None:
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        if value not in dist.choices:
            raise ValueError(f"{name}: {value!r} is not one of {list(dist.choices)}")
    else:
        problem = _outside(dist, value)
        if problem:
            raise ValueError(f"{name}: {value!r} {problem}")


def _outside(dist: FloatDistribution | IntDistribution, value: Any) -> str | None:
    """Why a numeric distribution cannot take `value` (None: it can): not a number, not an
    integer (IntDistribution), outside [low, high], or off the grid low + k * step. Optuna's own
    check is private (`_contains`), so the rule is written out here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "is not a finite number"
    if isinstance(dist, IntDistribution) and not float(value).is_integer():
        return "is not an integer"
    if not dist.low <= value <= dist.high:
        return f"is outside [{dist.low}, {dist.high}]"
    if dist.step is not None:
        k = (value - dist.low) / dist.step
        if abs(k - round(k)) > 1e-8 * max(1.0, abs(k)):
            return f"is not on the grid {dist.low} + k * {dist.step}"
    return None


def _param_dict(p: Param) -> dict:
    d = p.distribution
    out: dict[str, Any] = (
        {"choices": list(d.choices)}
        if isinstance(d, CategoricalDistribution)
        else {"low": d.low, "high": d.high, "log": d.log, "type": "int" if isinstance(d, IntDistribution) else "float"}
    )
    if isinstance(d, (FloatDistribution, IntDistribution)) and d.step is not None:
        out["step"] = d.step
    if p.when:
        out["when"] = {k: list(v) for k, v in p.when.items()}
    if p.key:
        out["key"] = p.key
    return out
