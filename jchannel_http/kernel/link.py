"""The kernel side of the conversation with the page: asyncio around the pure Session.

``Link`` numbers and keeps what the kernel sends (waiting when the outbox is full), takes in
what the page posts, and wakes those who hand frames out when there is something new: a POST
lingering for frames to carry back first, then the event streams and polls, so that each frame
takes the one way ``protocol/delivery.py`` gives it without anyone yielding to anyone.
"""

from __future__ import annotations

import asyncio
import collections
import secrets

from ..errors import StateError
from ..options import Options
from ..protocol.delivery import Delivery
from ..protocol.frames import Frame, Incoming
from ..protocol.session import Entry, OutboxFull, Prepared, Session


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
        self.delivery = Delivery()
        """Which way hands out each frame of the session (see protocol/delivery.py)."""
        self._changed = asyncio.Event()
        """Set when streams and polls should look again (new frames, a new stream, the end)."""
        self._for_posts = asyncio.Event()
        """Set when lingering POSTs should look again: they look first (see ``push``)."""
        self._lingering = 0
        self._room = asyncio.Event()
        self._waiting: collections.deque[object] = collections.deque()
        """Senders waiting for room, first come first served (docs/protocol.md, "Sessions")."""

    @property
    def carried(self) -> set[int]:
        """Frames carried back in answers to POSTs and not yet acknowledged."""
        return self.delivery.carried

    @property
    def streamed(self) -> int:
        """The last frame of the session that a stream or a poll handed out."""
        return self.delivery.streamed

    def _make_session(self) -> Session:
        return Session(
            new_session_id(),
            self.options.outbox_messages,
            self.options.outbox_bytes,
            self.options.max_ahead,
        )

    def renew(self) -> Session:
        """Start a new session (a new page took over); streams of the old one end."""
        self.session = self._make_session()
        self.delivery = Delivery()
        self._wake()
        return self.session

    def stop(self) -> None:
        """No more sending: waiting senders fail and streams end."""
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._for_posts.set()
        self._room.set()

    def _frames_sent(self) -> None:
        """Wake whoever hands out new frames. A lingering POST (see ``wait_to_carry``) is woken
        alone: it takes its share before it next awaits, and only then wakes the streams, which
        so never hand out what it carries."""
        if self._lingering:
            self._for_posts.set()
        else:
            self._changed.set()

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
        self._frames_sent()
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
                    raise StateError(
                        'the page client was replaced before this message could be sent'
                    )
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
        self.delivery.acknowledged(upto)

    def resume(self, cursor: int) -> list[Entry]:
        """A stream or a poll resumes after ``cursor``: acknowledge up to it, as a POST's ack
        does (senders waiting for room wake), and return the frames after it.

        Raises ResyncError when ``cursor`` cannot be served.
        """
        entries = self.session.outbox.since(cursor)
        self.acknowledge(cursor)
        return entries

    def receive(self, frames: list[tuple[int, Incoming]]) -> list[Incoming]:
        """Take frames posted by the page; return those now due, in order, each once."""
        return self.session.inbox.receive_all(frames)

    def new_stream(self) -> int:
        """Register a new stream of the current client; older streams end."""
        self.stream_generation += 1
        self._changed.set()
        return self.stream_generation

    def stream_share(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a stream or a poll hands out: the ones no POST carried."""
        return self.delivery.for_stream(entries)

    def post_share(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a POST's answer carries (see ``Delivery.for_post``)."""
        return self.delivery.for_post(entries)

    def handed_out(self, entries: list[Entry], by_post: bool) -> None:
        """``entries`` are on their way to the page, in a POST's answer or else by a stream or
        a poll. Call it before awaiting anything, so the other way does not take them too."""
        self.delivery.handed_out(entries, by_post)

    def entries_after(self, sent: int) -> list[Entry]:
        """Held frames numbered after ``sent`` (never before the acknowledged ones)."""
        outbox = self.session.outbox
        return outbox.since(max(sent, outbox.acked))

    async def wait_after(
        self, session: Session, sent: int, generation: int | None, timeout: float | None
    ) -> list[Entry] | None:
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

    async def wait_to_carry(self, session: Session, sent: int, timeout: float) -> list[Entry]:
        """As ``wait_after`` for a POST that lingers for frames to carry back: the frames after
        ``sent``, or an empty list when ``timeout`` passed or the session is over.

        While it waits, new frames wake it before any stream; it wakes the streams as it
        returns, and its caller hands out its share before it next awaits.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                self._for_posts.clear()
                if self.stopped or session is not self.session:
                    return []
                entries = self.entries_after(sent)
                if entries:
                    return entries
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                self._lingering += 1
                try:
                    await asyncio.wait_for(self._for_posts.wait(), remaining)
                except asyncio.TimeoutError:
                    return []
                finally:
                    self._lingering -= 1
        finally:
            self._changed.set()  # the streams look once this POST took its share
