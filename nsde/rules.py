"""Value rules of the nsde configs: each rule is written once, with one message.

A config field that users (or search spaces) set carries its `Rule` in the dataclass
field's metadata (`ruled`). The config's `__post_init__` checks its fields with them
(`check_fields`), the noise samplers check their arguments with the same rules, and
`spaces/` asks them about a space's ranges, constants and points (`rules_of`), so no
rule is restated elsewhere with a message of its own.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "check_fields", "ruled", "rules_of"]


@dataclass(frozen=True)
class Rule:
    """What one config value accepts, and the message that says why a value is refused.

    Attributes:
        kind: int, float, bool or str; `object` for a value that `validator` checks (a depth spec).
        low, high: bounds of a number, inclusive unless `open_low` / `open_high`.
        choices: the allowed values, or a function returning them (a registry that may grow).
        what: the noun of a choice in its message: "unknown anchor 'x'; known anchors: [...]".
        plural: that noun's plural where it is not `what` + "s" ("muxes").
        optional: None is allowed (unset, or off).
        validator: for `kind=object`: raises ValueError with its own message.
        label: what the message calls the value instead of the field's name, e.g. the CLI
            option "--num-samples" that sets it.
        doc: one line for listings (`spaces.KEYS`).
    """

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: Sequence | Callable[[], Sequence] | None = None
    what: str = ""
    plural: str = ""
    optional: bool = False
    validator: Callable[[Any], object] | None = None
    label: str = ""
    doc: str = ""

    def check(self, value: Any, name: str = "value") -> None:
        """Raise ValueError, stating the rule and `value`, unless the rule accepts `value`.

        `name` is what the message calls the value (the config field's name), unless the rule
        has a `label`.
        """
        if value is None and self.optional:
            return
        name = self.label or name
        if self.choices is not None:
            self._check_choice(value)
        elif self.validator is not None:
            self.validator(value)
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool, but got {value!r}")
        elif self.kind in (int, float):
            self._check_number(value, name)

    def coerce(self, value: Any) -> Any:
        """`value` as this rule's kind takes it: an integer-valued float (YAML and JSON give 8.0)
        becomes the int for an int rule; anything else is returned as it is."""
        if self.kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def interval(self, name: str = "value") -> str:
        """The bounds as an inequality: '0.0 < hurst < 1.0', 'lr > 0.0', 'epochs >= 1'."""
        below = "<" if self.open_low else "<="
        above = "<" if self.open_high else "<="
        if self.low is not None and self.high is not None:
            return f"{self.low} {below} {name} {above} {self.high}"
        # an unnamed value (a space checks its ranges so) reads as a range, low first: "0.0 <= value"
        if self.low is not None and name == "value":
            return f"{self.low} {below} {name}"
        if self.low is not None:
            return f"{name} {'>' if self.open_low else '>='} {self.low}"
        if self.high is not None:
            return f"{name} {above} {self.high}"
        return f"{name} is finite"

    def _check_choice(self, value: Any) -> None:
        choices = list(self.choices() if callable(self.choices) else self.choices)
        if value not in choices:
            raise ValueError(f"unknown {self.what} {value!r}; known {self.plural or self.what + 's'}: {choices}")

    def _check_number(self, value: Any, name: str) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, but got {value!r}")
        if self.kind is int and not isinstance(value, numbers.Integral):
            raise ValueError(f"`{name}` must be an integer, but got {value!r}")
        if not self._within(value):
            # a CLI option's None is "not given", not a value anyone types
            unset = " (or None)" if self.optional and not self.label else ""
            raise ValueError(f"`{self.interval(name)}`{unset} must hold, but got {value!r}")

    def _within(self, value: float) -> bool:
        above_low = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below_high = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above_low and below_high


def ruled(default: Any, rule: Rule) -> Any:
    """A dataclass field with `default` whose values `rule` checks (see `check_fields`)."""
    return dataclasses.field(default=default, metadata={"rule": rule})


def rules_of(config: Any) -> dict[str, Rule]:
    """{field name: Rule} of a config dataclass (or instance), in field order."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(config) if "rule" in f.metadata}


def check_fields(config: Any, *, skip: Sequence[str] = ()) -> None:
    """Check every ruled field of the dataclass instance `config`, except those in `skip`."""
    for name, rule in rules_of(config).items():
        if name not in skip:
            rule.check(getattr(config, name), name)
