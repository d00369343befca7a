"""Registry of named search spaces, and loading a user's space from a YAML or Python file."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from spaces._space import Param, SearchSpace

__all__ = ["get_space", "list_spaces", "load_space", "register_space", "space_from_dict"]

_SPACES: dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str) -> Callable[[Callable[[], SearchSpace]], Callable[[], SearchSpace]]:
    """Decorator: `fn()` builds the space called `name`."""

    def _register(fn: Callable[[], SearchSpace]) -> Callable[[], SearchSpace]:
        if name in _SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        _SPACES[name] = fn
        return fn

    return _register


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str) -> SearchSpace:
    """The registered space `name`, or the space in the file at `name` (.yaml/.yml/.py)."""
    if name in _SPACES:
        return _SPACES[name]()
    if Path(name).suffix in (".yaml", ".yml", ".py"):
        return load_space(name)
    raise ValueError(f"unknown search space {name!r}; known spaces: {list_spaces()} (or a .yaml/.py file)")


# ------------------------------------------------------------------------- from files


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space from YAML (see docs/search.md) or from Python.

    A Python file defines `SPACE` (a `SearchSpace`) or `space()` returning one.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"search space file {str(path)!r} does not exist")
    try:
        if path.suffix == ".py":
            return _load_python(path)
        with path.open() as f:
            record = yaml.safe_load(f)
        if not isinstance(record, dict):
            raise ValueError("the file must hold a mapping with `params` (and optionally constants, points, ...)")
        record.setdefault("name", path.stem)
        return space_from_dict(record)
    except (ValueError, TypeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: {err}") from None


def _load_python(path: Path) -> SearchSpace:
    spec = importlib.util.spec_from_file_location(f"_user_space_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    space = getattr(module, "SPACE", None)
    if space is None and callable(getattr(module, "space", None)):
        space = module.space()
    if not isinstance(space, SearchSpace):
        raise ValueError("a Python space file must define SPACE (a spaces.SearchSpace) or space() returning one")
    return space


_SPACE_FIELDS = {"name", "description", "preset", "search_profile", "final_profile", "final_seeds", "params", "constants",
                 "points", "designed"}
_PARAM_FIELDS = {"choices", "low", "high", "log", "step", "type", "when", "key"}


def space_from_dict(record: dict[str, Any]) -> SearchSpace:
    """A `SearchSpace` from its `to_dict()` form (what a YAML file holds)."""
    unknown = set(record) - _SPACE_FIELDS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; a space has {sorted(_SPACE_FIELDS)}")
    params = record.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("`params` must be a mapping of parameter name -> distribution")
    return SearchSpace(
        name=str(record.get("name", "user")),
        description=str(record.get("description", "")),
        preset=record.get("preset", "default"),
        search_profile=record.get("search_profile", "fast"),
        final_profile=record.get("final_profile", "full"),
        final_seeds=record.get("final_seeds", 1),
        params={name: _param(name, spec) for name, spec in params.items()},
        constants={k: _number(v) for k, v in (record.get("constants") or {}).items()},
        points=tuple({k: _number(v) for k, v in p.items()} for p in record.get("points") or ()),
        designed=record.get("designed", False),
    )


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _param(name: str, spec: Any) -> Param:
    if not isinstance(spec, dict):
        raise ValueError(f"{name}: give `choices: [...]` or `low:`/`high:`, but got {spec!r}")
    unknown = set(spec) - _PARAM_FIELDS
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)}; a parameter has {sorted(_PARAM_FIELDS)}")
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in (spec.get("when") or {}).items()}
    return Param(_distribution(name, spec), when=when, key=spec.get("key"))


def _distribution(name: str, spec: dict):
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{name}: `choices` must be a non-empty list, but got {choices!r}")
        return CategoricalDistribution([_number(c) for c in choices])
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{name}: give `choices: [...]` or both `low:` and `high:`")
    low, high, log, step = _number(spec["low"]), _number(spec["high"]), bool(spec.get("log", False)), spec.get("step")
    kind = spec.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float"):
        raise ValueError(f"{name}: `type` must be 'int' or 'float', but got {kind!r}")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        raise ValueError(f"{name}: `low` and `high` must be numbers, but got low={low!r}, high={high!r}")
    if not low <= high:
        raise ValueError(f"{name}: `low <= high` must hold, but got low={low}, high={high}")
    if log and low <= 0:
        raise ValueError(f"{name}: a log-scale range needs `low > 0`, but got low={low}")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=_number(step))
