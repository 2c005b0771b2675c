"""The kernel's calls into the page: their ids, and who waits for each reply.

An id is drawn once per table and never reused (a late reply cannot reach another caller); a
reply finds its waiter by id, or nobody when the call was given up. What a waiter is (an asyncio
future, in ``kernel/rpc.py``) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

Waiter = TypeVar('Waiter')


class CallTable(Generic[Waiter]):
    """Calls waiting for their reply, by id."""

    def __init__(self) -> None:
        self._last = 0
        self._waiting: dict[int, Waiter] = {}

    def open(self, waiter: Waiter) -> int:
        """A new call that ``waiter`` waits for; its id."""
        self._last += 1
        self._waiting[self._last] = waiter
        return self._last

    def waiter(self, call: int) -> Waiter | None:
        """Who waits for the reply to ``call``, or None (never sent, or given up)."""
        return self._waiting.get(call)

    def close(self, call: int) -> None:
        """``call`` is over (answered, failed or given up): a later reply finds nobody."""
        self._waiting.pop(call, None)

    def drain(self) -> list[Waiter]:
        """Every waiter, and the table empty: the page went away or the server stopped."""
        waiters = list(self._waiting.values())
        self._waiting.clear()
        return waiters

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._waiting))
