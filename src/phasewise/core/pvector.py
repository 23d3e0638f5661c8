"""A persistent (immutable, path-copying) vector of fixed length.

The reducer replaces one phase's status per action. Copying a flat tuple of N phases
for that would make every action O(N) and a whole run O(N²); a 64-way tree of tuples
copies only the path to one leaf, so an update costs O(log₆₄ N) — two small tuple
copies for 4,096 phases, three up to 262,144 — and old versions stay valid (reducers
are pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

__all__ = ["PVector"]

_BITS = 6
_WIDTH = 1 << _BITS
_MASK = _WIDTH - 1
_new = object.__new__


class PVector:
    """Immutable sequence with cheap ``set``; ``len``, indexing and iteration as a tuple."""

    __slots__ = ("_depth", "_root", "_size")

    def __init__(self, items: Iterable[Any] = ()) -> None:
        nodes: list[Any] = list(items)
        self._size = len(nodes)
        depth = 0
        nodes = [tuple(nodes[i : i + _WIDTH]) for i in range(0, len(nodes), _WIDTH)] or [()]
        while len(nodes) > 1:
            nodes = [tuple(nodes[i : i + _WIDTH]) for i in range(0, len(nodes), _WIDTH)]
            depth += 1
        self._root: tuple[Any, ...] = nodes[0]
        self._depth = depth

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("PVector index out of range")
        node = self._root
        shift = self._depth * _BITS
        while shift:
            node = node[(index >> shift) & _MASK]
            shift -= _BITS
        return node[index & _MASK]

    def set(self, index: int, value: Any) -> PVector:
        """Return a new vector with ``value`` at ``index``; this one is unchanged."""
        if not 0 <= index < self._size:
            raise IndexError("PVector index out of range")
        new = _new(PVector)
        new._size = self._size
        new._depth = depth = self._depth
        new._root = _set(self._root, depth, index, value)
        return new

    def __iter__(self) -> Iterator[Any]:
        return _walk(self._root, self._depth)

    def to_tuple(self) -> tuple[Any, ...]:
        if self._depth == 0:
            return self._root
        return tuple(_walk(self._root, self._depth))


def _set(root: tuple[Any, ...], depth: int, index: int, value: Any) -> tuple[Any, ...]:
    """Copy the path from ``root`` to ``index``'s leaf, with ``value`` at the end of it."""
    copy = list(root)
    if depth == 0:
        copy[index & _MASK] = value
    else:
        slot = (index >> (depth * _BITS)) & _MASK
        copy[slot] = _set(root[slot], depth - 1, index, value)
    return tuple(copy)


def _walk(node: tuple[Any, ...], level: int) -> Iterator[Any]:
    items: Iterable[Any] = node
    for _ in range(level):
        items = chain.from_iterable(items)
    return iter(items)
