"""Bindings visible at a point of the walk: an immutable chain, newest binding first.

Binding is O(1) and shares the whole past, so a 2,000-step sequence that binds at every step
costs nothing to replay; a lookup walks back to the most recent binding of the name, which
happens only for the few steps that actually run (SPEC §1.4: `$name` is the most recent
binding visible on the path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from dfc.json_types import JSON


class Scope(Mapping[str, JSON]):
    """An immutable mapping of result names to results; `bind` returns an extended scope."""

    __slots__ = ("_name", "_parent", "_value")

    EMPTY: ClassVar[Scope]

    def __init__(self, name: str | None = None, value: JSON = None, parent: Scope | None = None):
        self._name = name
        self._value = value
        self._parent = parent

    def bind(self, name: str, value: JSON) -> Scope:
        """This scope with `name` bound to `value` (shadowing an older binding of it)."""
        return Scope(name, value, self)

    def __getitem__(self, name: str) -> JSON:
        s: Scope | None = self
        while s is not None and s._parent is not None:
            if s._name == name:
                return s._value
            s = s._parent
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        s: Scope | None = self
        while s is not None and s._parent is not None:
            if s._name == name:
                return True
            s = s._parent
        return False

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        s: Scope | None = self
        while s is not None and s._parent is not None:
            assert s._name is not None
            if s._name not in seen:
                seen.add(s._name)
                yield s._name
            s = s._parent

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def since(self, base: Scope) -> list[tuple[str, JSON]]:
        """The bindings made on top of `base`, oldest first (all of them if `base` is not an
        ancestor)."""
        added: list[tuple[str, JSON]] = []
        s: Scope | None = self
        while s is not None and s is not base and s._parent is not None:
            assert s._name is not None
            added.append((s._name, s._value))
            s = s._parent
        added.reverse()
        return added

    def __repr__(self) -> str:
        return f"Scope({dict(reversed(self.since(Scope.EMPTY)))!r})"


Scope.EMPTY = Scope()
