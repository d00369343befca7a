"""`Registry`: named things in registration order, as timm's model registry holds its models.

The objectives (`nsde.metrics.objectives`) and the stages of `evaluate`
(`nsde.metrics.stages`) are registries of this kind; an unknown name lists the known ones.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items in registration order. `what` names an item in messages ("objective")."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register `item` under `name`, after the registered ones; returns it. A name registers once."""
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        """Unregister `name` (a test's item, or one a plugin replaces)."""
        self.get(name)
        del self._items[name]

    def get(self, name: str) -> T:
        """The item `name`; an unknown name lists the registered ones."""
        if name not in self._items:
            raise ValueError(f"unknown {self.what} {name!r}; known {self.what}s: {self.names()}")
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[T]:
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items
