"""String-keyed registries, so that the CLI, the Python API and YAML configs name things alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ContrafuseError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table with a readable error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj
        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ContrafuseError(None, f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
