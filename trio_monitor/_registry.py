"""A registry of named implementations: probe kinds (probes/base.py) and alert channels
(alerts/base.py) each keep one, filled by the modules that define them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, name_of: Callable[[T], str]) -> None:
        self._name_of = name_of
        self._items: dict[str, T] = {}

    def register(self, item: T) -> None:
        """Make `item` available to configs parsed from now on (replacing its namesake)."""
        self._items[self._name_of(item)] = item

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def find(self, name: str) -> T | None:
        return self._items.get(name)

    def get(self, name: str) -> T:
        """KeyError for a name nobody registered."""
        return self._items[name]
