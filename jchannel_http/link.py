"""The kernel side of the conversation with the page: asyncio around the pure Session.

``Link`` numbers and keeps what the kernel sends (waiting when the outbox is full), takes in
what the page posts, and wakes the event streams when there is something new to write.
"""

from __future__ import annotations

import asyncio
import collections
import secrets

from .errors import StateError
from .frames import Frame
from .options import Options
from .session import Entry, OutboxFull, Prepared, Session


def new_session_id() -> str:
    """A random, URL-safe session id."""
    return secrets.token_urlsafe(12)


class Link:
    """Owns the current Session and the events that tie it to the HTTP handlers."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.session = self._make_session()
        self.stopped = False
        self.stream_generation = 0
        self.carried: set[int] = set()
        """Frames of the session carried back in answers to POSTs and not yet acknowledged:
        a POST sends them again (its answer may have been lost); streams and polls skip them."""
        self.streamed = 0
        """The last frame of the session that a stream or a poll handed out: the page gets
        those again by resuming, so a POST carries only later ones."""
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        self._waiting: collections.deque[object] = collections.deque()
        """Senders waiting for room, first come first served (docs/protocol.md, "Sessions")."""

    def _make_session(self) -> Session:
        return Session(new_session_id(), self.options.outbox_messages,
                       self.options.outbox_bytes, self.options.max_ahead)

    def renew(self) -> Session:
        """Start a new session (a new page took over); streams of the old one end."""
        self.session = self._make_session()
        self.carried = set()
        self.streamed = 0
        self._wake()
        return self.session

    def stop(self) -> None:
        """No more sending: waiting senders fail and streams end."""
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._room.set()

    def push(self, frame: Frame | Prepared) -> Entry | None:
        """Send ``frame`` now if the outbox has room and no sender waits for room before it;
        return None if not."""
        if self._waiting:
            if self.stopped:
                raise StateError('the server is stopped')
            return None
        return self._push(frame)

    def _push(self, frame: Frame | Prepared) -> Entry | None:
        if self.stopped:
            raise StateError('the server is stopped')
        try:
            entry = self.session.outbox.push(frame)
        except OutboxFull:
            return None
        self._changed.set()
        return entry

    async def send(self, frame: Frame | Prepared) -> Entry:
        """Send ``frame``, waiting while the outbox is full (backpressure, never a drop).

        The frame is encoded once, before any wait (TypeError for a value that cannot be sent);
        senders wait in line, first come first served: each acknowledgement that frees room
        wakes them, and the first in line tries again (a small frame never overtakes a large
        one that waits, which could then wait for ever).
        """
        prepared = frame if isinstance(frame, Prepared) else Prepared.of(frame)
        session = self.session
        entry = self.push(prepared)
        if entry is not None:
            return entry
        turn = object()
        self._waiting.append(turn)
        try:
            while True:
                if session is not self.session:
                    raise StateError('the page client was replaced before this message could '
                                     'be sent')
                if self._waiting[0] is turn:
                    entry = self._push(prepared)
                    if entry is not None:
                        return entry
                self._room.clear()  # nothing runs between the refusal above and this wait
                await self._room.wait()
        finally:
            self._waiting.remove(turn)
            self._room.set()  # the next in line tries

    def acknowledge(self, upto: int) -> None:
        """The page processed every frame up to ``upto``."""
        if self.session.outbox.ack(upto):
            self._room.set()
        if self.carried:
            self.carried = {seq for seq in self.carried if seq > upto}

    def resume(self, cursor: int) -> list[Entry]:
        """A stream or a poll resumes after ``cursor``: acknowledge up to it, as a POST's ack
        does (senders waiting for room wake), and return the frames after it.

        Raises ResyncError when ``cursor`` cannot be served.
        """
        entries = self.session.outbox.since(cursor)
        self.acknowledge(cursor)
        return entries

    def receive(self, frames: list[tuple[int, Frame]]) -> list[Frame]:
        """Take frames posted by the page; return those now due, in order, each once."""
        return self.session.inbox.receive_all(frames)

    def new_stream(self) -> int:
        """Register a new stream of the current client; older streams end."""
        self.stream_generation += 1
        self._changed.set()
        return self.stream_generation

    def stream_share(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a stream or a poll hands out: the ones no POST carried."""
        if not self.carried:
            return entries
        return [entry for entry in entries if entry.seq not in self.carried]

    def post_share(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a POST's answer carries: the ones it carried before (that
        answer may have been lost) and the ones no stream or poll handed out yet."""
        return [entry for entry in entries
                if entry.seq > self.streamed or entry.seq in self.carried]

    def handed_out(self, entries: list[Entry], by_post: bool) -> None:
        """``entries`` are on their way to the page, in a POST's answer or else by a stream or
        a poll. Call it before awaiting anything, so the other way does not take them too."""
        if not entries:
            return
        if by_post:
            self.carried.update(entry.seq for entry in entries)
        else:
            self.streamed = max(self.streamed, entries[-1].seq)

    def entries_after(self, sent: int) -> list[Entry]:
        """Held frames numbered after ``sent`` (never before the acknowledged ones)."""
        outbox = self.session.outbox
        return outbox.since(max(sent, outbox.acked))

    async def wait_after(self, session: Session, sent: int, generation: int | None,
                         timeout: float | None) -> list[Entry] | None:
        """Wait until frames after ``sent`` exist; None if the stream should end.

        A stream ends when the server stops, the session is replaced, or (when
        ``generation`` is given) a newer stream of the client began. An empty list means the
        timeout passed with nothing new.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._changed.clear()
            if self.stopped or session is not self.session:
                return None
            if generation is not None and generation != self.stream_generation:
                return None
            entries = self.entries_after(sent)
            if entries:
                return entries
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return []
