"""The pure protocol core: sequence numbers, acknowledgements, outbox, de-duplication.

Nothing here touches a socket, a clock or an event loop: frames go in, frames and bytes come
out, and the adapters (``kernel/link.py`` on the kernel, ``client_js/session.js`` in the page) own
the I/O. One ``Session`` is one side of a conversation; pairing two of them and dropping,
repeating and reordering what passes between them is how the tests prove exactly-once
delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ProtocolError, ResyncError
from .frames import Frame, Incoming, encode_rest, with_seq


class OutboxFull(Exception):
    """Raised by ``Outbox.push`` when the outbox has no room; the sender must wait for acks."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame encoded but not yet numbered (see ``frames.encode_rest``)."""

    frame: Frame
    rest: bytes

    @classmethod
    def of(cls, frame: Frame) -> Prepared:
        """Encode ``frame``; TypeError names a value that cannot be sent."""
        return cls(frame, encode_rest(frame))


@dataclass(frozen=True, slots=True)
class Entry:
    """One sent, not yet acknowledged frame, kept encoded so a replay costs no encoding."""

    seq: int
    frame: Frame
    data: bytes


class Outbox:
    """Frames sent and not yet acknowledged, bounded by a count and a byte size.

    A frame larger than ``max_bytes`` still fits into an empty outbox, so one big message can
    always go; otherwise ``push`` refuses when either bound would be passed.
    """

    def __init__(self, max_messages: int = 10_000, max_bytes: int = 32 * 1024 * 1024) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError('outbox bounds must be positive')
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._entries: dict[int, Entry] = {}
        self._bytes = 0
        self.last_seq = 0
        self.acked = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Encoded size of the frames held."""
        return self._bytes

    def has_room(self, size: int = 0) -> bool:
        """Whether a frame of ``size`` encoded bytes can be pushed now."""
        if not self._entries:
            return True
        return len(self._entries) < self.max_messages and self._bytes + size <= self.max_bytes

    def push(self, frame: Frame | Prepared) -> Entry:
        """Number ``frame``, keep it until acknowledged and return its entry.

        OutboxFull when it does not fit; a ``Prepared`` frame can be pushed again later without
        being encoded again.
        """
        prepared = frame if isinstance(frame, Prepared) else Prepared.of(frame)
        data = with_seq(self.last_seq + 1, prepared.rest)
        if not self.has_room(len(data)):
            raise OutboxFull(f'outbox full ({len(self)} messages, {self._bytes} bytes)')
        self.last_seq += 1
        entry = Entry(self.last_seq, prepared.frame, data)
        self._entries[entry.seq] = entry
        self._bytes += len(data)
        return entry

    def ack(self, upto: int) -> list[Entry]:
        """Drop every frame numbered ``upto`` or less; return the dropped entries.

        An acknowledgement below an earlier one is stale and changes nothing; one above the
        last number sent is a protocol error.
        """
        if upto > self.last_seq:
            raise ProtocolError(f'ack {upto} is beyond the last frame sent ({self.last_seq})')
        dropped = [self._entries.pop(seq) for seq in range(self.acked + 1, upto + 1)]
        self._bytes -= sum(len(entry.data) for entry in dropped)
        self.acked = max(self.acked, upto)
        return dropped

    def since(self, cursor: int) -> list[Entry]:
        """The held frames numbered after ``cursor``, for a peer resuming from ``cursor``.

        Raises ResyncError when the peer claims less than it already acknowledged (it lost
        state) or more than was ever sent.
        """
        if cursor < self.acked:
            raise ResyncError(
                f'resume from {cursor} asked, but frames up to {self.acked} were acknowledged '
                'and are no longer held'
            )
        if cursor > self.last_seq:
            raise ResyncError(
                f'resume from {cursor} asked, but only {self.last_seq} frames were sent'
            )
        return [self._entries[seq] for seq in range(cursor + 1, self.last_seq + 1)]

    def entries(self) -> list[Entry]:
        """Every held entry, oldest first."""
        return list(self._entries.values())


class Inbox:
    """Delivers received frames in order, each sequence number exactly once.

    ``cursor`` is the highest number up to which every frame was delivered. Frames ahead of
    ``cursor + 1`` wait until the gap is filled; a frame numbered beyond
    ``cursor + 1 + max_ahead`` is refused (so at most ``max_ahead`` wait), the rule both sides
    share (docs/protocol.md, "Sessions").
    """

    def __init__(self, max_ahead: int = 10_000) -> None:
        self.max_ahead = max_ahead
        self.cursor = 0
        self.duplicates = 0
        self._ahead: dict[int, Incoming] = {}

    def receive(self, seq: int, frame: Incoming) -> list[Incoming]:
        """Take frame ``seq``; return the frames that are now deliverable, in order."""
        if seq <= self.cursor or seq in self._ahead:
            self.duplicates += 1
            return []
        if seq != self.cursor + 1:
            self._check_ahead(seq, self.cursor)
            self._ahead[seq] = frame
            return []
        ready = [frame]
        self.cursor = seq
        while self.cursor + 1 in self._ahead:
            self.cursor += 1
            ready.append(self._ahead.pop(self.cursor))
        return ready

    def receive_all(self, items: Iterable[tuple[int, Incoming]]) -> list[Incoming]:
        """Take a batch of ``(seq, frame)`` in order of ``seq``: all of it, or none of it.

        When a frame of the batch would be too far ahead, ProtocolError is raised before any
        frame is taken: a frame taken from a refused batch would be acknowledged, never run.
        """
        batch = sorted(items, key=lambda item: item[0])
        if batch and batch[-1][0] > self.cursor + 1 + self.max_ahead:
            self._check_room([seq for seq, _ in batch])
        ready: list[Incoming] = []
        for seq, frame in batch:
            ready.extend(self.receive(seq, frame))
        return ready

    def _check_ahead(self, seq: int, cursor: int) -> None:
        """Raise ProtocolError if ``seq`` is beyond ``cursor + 1 + max_ahead``."""
        if seq > cursor + 1 + self.max_ahead:
            raise ProtocolError(
                f'frame {seq} is too far ahead of cursor {cursor} (limit {self.max_ahead} ahead)'
            )

    def _check_room(self, seqs: list[int]) -> None:
        """Raise ProtocolError if receiving the sorted ``seqs`` would take one too far ahead."""
        cursor, held = self.cursor, set(self._ahead)
        for seq in seqs:
            if seq <= cursor or seq in held:
                continue
            if seq == cursor + 1:
                cursor = seq
                while cursor + 1 in held:
                    cursor += 1
                    held.discard(cursor)
            else:
                self._check_ahead(seq, cursor)
                held.add(seq)

    @property
    def held(self) -> int:
        """How many frames wait for a gap to be filled."""
        return len(self._ahead)


class Session:
    """One side of a conversation: an outbox for what it sends, an inbox for what it gets."""

    def __init__(
        self,
        session_id: str,
        max_messages: int = 10_000,
        max_bytes: int = 32 * 1024 * 1024,
        max_ahead: int = 10_000,
    ) -> None:
        self.id = session_id
        self.outbox = Outbox(max_messages, max_bytes)
        self.inbox = Inbox(max_ahead)

    def resume(self, cursor: int) -> list[Entry]:
        """A peer resumes reading after ``cursor``: acknowledge up to it, return the rest."""
        entries = self.outbox.since(cursor)
        self.outbox.ack(cursor)
        return entries
