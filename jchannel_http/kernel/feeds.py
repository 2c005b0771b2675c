"""One event stream or long-poll of the current page: the frames it hands out, in order.

The HTTP adapter writes the bytes; a ``Feed`` decides which frames go, waits for new ones, and
tells the gate that the page has a stream open (so it counts as connected meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ResyncError
from ..options import Options
from ..protocol import wire
from ..protocol.clients import ClientGate
from ..protocol.delivery import first_entries, hello_fields
from ..protocol.session import Entry
from .link import Link


class Feed:
    """The frames after ``cursor`` for ``client``, resumed from its session (``entries``)."""

    def __init__(
        self,
        link: Link,
        gate: ClientGate,
        options: Options,
        client: str,
        cursor: int,
        entries: list[Entry],
    ) -> None:
        self._link = link
        self._gate = gate
        self.options = options
        self.client = client
        self.cursor = cursor
        self.session = link.session
        self._entries = entries
        self._sent = entries[-1].seq if entries else cursor
        self._generation = 0

    def hello(self) -> dict[str, Any]:
        """What the page learns when it (re)connects: the session and the bounds it respects."""
        options = self.options
        return hello_fields(
            self.session,
            self.cursor,
            heartbeat=options.heartbeat,
            max_body=options.max_body,
            max_url=options.max_url,
        )

    def open(self, transport: str) -> None:
        """The stream or poll starts: older ones of the client end, the gate counts it."""
        self._generation = self._link.new_stream()
        self._gate.stream_opened(self.client, transport)

    def close(self) -> None:
        """The stream or poll ended."""
        self._gate.stream_closed(self.client, time.monotonic())

    def first(self) -> list[Entry]:
        """The frames a stream writes after its hello: those resumed that no POST carried."""
        entries = self._link.stream_share(self._entries)
        self._link.handed_out(entries, by_post=False)
        return entries

    async def next(self, timeout: float) -> list[Entry] | None:
        """The next frames a stream writes, waiting at most ``timeout`` seconds for some: an
        empty list when none came, None when the stream should end (the server stops, the
        session is replaced, a newer stream of the client began)."""
        waited = await self._link.wait_after(self.session, self._sent, self._generation, timeout)
        if not waited:
            return waited
        # No await from the wake-up to here: a POST lingering for the same frames was woken
        # first and took its share (see Link.wait_to_carry); the rest is this stream's.
        self._sent = waited[-1].seq
        entries = self._link.stream_share(waited)
        self._link.handed_out(entries, by_post=False)
        return entries

    async def poll(self, hold: float, limit: int, wait: bool) -> list[Entry]:
        """A long-poll's frames: those waiting, else (when ``wait``) the first sent within
        ``hold`` seconds; at most ``limit`` bytes of them (and at least one).

        Raises ResyncError when the session was replaced meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        after = self._sent
        entries = self._link.stream_share(self._entries)
        while not entries and wait:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waited = await self._link.wait_after(self.session, after, self._generation, remaining)
            if waited is None:
                break
            if waited:  # as in next: a lingering POST took its share first
                after = waited[-1].seq
                entries = self._link.stream_share(waited)
        if self.session is not self._link.session:
            raise ResyncError(wire.SESSION_TAKEN_OVER)
        entries = first_entries(entries, limit)
        self._link.handed_out(entries, by_post=False)
        return entries
