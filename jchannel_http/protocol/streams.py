"""Pure bookkeeping of byte streams: offsets, windows, reassembly. No asyncio, no sockets.

A stream carries bytes one way, each byte identified by its offset from the start.

* ``Reassembly`` is the receiving end of a page -> kernel stream: chunks arrive as separate
  requests, possibly repeated, reordered, re-split or overlapping; it hands every byte to the
  consumer once, in order, keeps each byte once (an overlapping chunk is trimmed to the bytes
  not held yet), and admits a chunk only inside a window past what the consumer took, so memory
  stays bounded whatever the stream's size and however the chunks overlap.
* ``Backlog`` is the sending end of a kernel -> page stream: what the producer made and the
  page has not acknowledged, so that a response cut in the middle can be resumed from any
  offset the page names; the producer may add only while the backlog is under its window.

The asyncio adapters are ``kernel/transfers.py`` and ``client_js/streams.js`` (page).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from ..errors import ProtocolError

SMALL = 64 * 1024
"""Producer chunks below this size are joined before they are sent, to keep the backlog short."""


class Reassembly:
    """The receiving end of a chunked stream: exactly once, in order, within a window.

    ``received`` is the offset up to which every byte arrived; ``consumed`` the offset up to
    which the consumer took bytes; ``total`` the stream's size once its end was announced.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError('the stream window must be a positive number of bytes')
        self.window = window
        self.received = 0
        self.consumed = 0
        self.total: int | None = None
        self.duplicates = 0
        self._ready: deque[bytes] = deque()
        self._ahead: dict[int, bytes] = {}
        """Bytes past a gap, by offset: pieces that never overlap."""
        self._starts: list[int] = []
        """The offsets of ``_ahead``, sorted."""
        self._ahead_bytes = 0

    @property
    def held(self) -> int:
        """Bytes stored and not yet taken by the consumer (in order or ahead of a gap); each
        byte counts once, so this stays within the window (plus one chunk, see ``fits``)."""
        return self.received - self.consumed + self._ahead_bytes

    def new_bytes(self, offset: int, size: int) -> int:
        """How many bytes of a chunk of ``size`` bytes at ``offset`` are not held yet."""
        end = offset + size
        start = max(offset, self.received)
        if start >= end:
            return 0
        new = end - start
        for piece_start, piece_end in self._overlapping(start, end):
            new -= min(piece_end, end) - max(piece_start, start)
        return new

    def _overlapping(self, start: int, end: int) -> list[tuple[int, int]]:
        """The held pieces ahead of the gap that overlap ``[start, end)``, in order."""
        found = []
        index = max(bisect_right(self._starts, start) - 1, 0)
        while index < len(self._starts):
            piece_start = self._starts[index]
            if piece_start >= end:
                break
            piece_end = piece_start + len(self._ahead[piece_start])
            if piece_end > start:
                found.append((piece_start, piece_end))
            index += 1
        return found

    @property
    def complete(self) -> bool:
        """Whether the end was announced and the consumer took every byte."""
        return self.total is not None and self.consumed == self.total

    @property
    def finished_receiving(self) -> bool:
        """Whether the end was announced and every byte arrived."""
        return self.total is not None and self.received == self.total

    def fits(self, offset: int, size: int) -> bool:
        """Whether a chunk of ``size`` bytes at ``offset`` may be stored now.

        A chunk fits when it ends inside the window past ``consumed``, or when it continues
        the received bytes and the consumer took everything (so a chunk larger than the
        window still passes). Repeated chunks always fit: they are dropped.
        """
        end = offset + size
        if end <= self.received:
            return True
        if end <= self.consumed + self.window:
            return True
        return offset <= self.received and self.received == self.consumed

    def put(self, offset: int, data: bytes, last: bool = False) -> bool:
        """Store a chunk; return False (storing nothing) when it does not fit yet.

        Bytes already received are dropped, so a repeated or re-split chunk is delivered
        once. ``last`` says the stream ends right after this chunk.
        """
        if offset < 0:
            raise ProtocolError('a chunk offset cannot be negative')
        end = offset + len(data)
        if self.total is not None and end > self.total:
            raise ProtocolError(
                f'a chunk ends at {end}, after the end of the stream ({self.total})'
            )
        if not self.fits(offset, len(data)):
            return False
        if last:
            self._finish(end)
        if end <= self.received:
            self.duplicates += 1 if data else 0
            return True
        if offset > self.received:
            self._keep_ahead(offset, data)
            return True
        self._append(offset, data)
        self._drain_ahead()
        return True

    def _keep_ahead(self, offset: int, data: bytes) -> None:
        """Keep the bytes of a chunk past the gap that no held piece has already."""
        end = offset + len(data)
        cursor = offset
        gaps = []
        for piece_start, piece_end in self._overlapping(offset, end):
            if piece_start > cursor:
                gaps.append((cursor, piece_start))
            cursor = max(cursor, piece_end)
        if cursor < end:
            gaps.append((cursor, end))
        if not gaps:
            self.duplicates += 1 if data else 0
        for start, stop in gaps:
            piece = data if (start, stop) == (offset, end) else data[start - offset : stop - offset]
            self._ahead[start] = piece
            self._starts.insert(bisect_right(self._starts, start), start)
            self._ahead_bytes += len(piece)

    def _finish(self, total: int) -> None:
        if self.total is not None and self.total != total:
            raise ProtocolError(f'the stream end moved from {self.total} to {total}')
        last = self._starts[-1] if self._starts else None
        if self.received > total or (last is not None and last + len(self._ahead[last]) > total):
            raise ProtocolError(f'bytes were sent after the end of the stream ({total})')
        self.total = total

    def _append(self, offset: int, data: bytes) -> None:
        piece = data[self.received - offset :]
        if piece:
            self._ready.append(piece)
            self.received += len(piece)

    def _drain_ahead(self) -> None:
        while self._starts:
            start = self._starts[0]
            if start > self.received:
                return
            del self._starts[0]
            data = self._ahead.pop(start)
            self._ahead_bytes -= len(data)
            if start + len(data) > self.received:
                self._append(start, data)
            else:
                self.duplicates += 1

    def take(self) -> bytes | None:
        """The next bytes in order for the consumer, or None when none arrived yet."""
        if not self._ready:
            return None
        data = self._ready.popleft()
        self.consumed += len(data)
        return data

    def clear(self) -> None:
        """Drop everything held (the consumer stopped or the stream failed)."""
        self._ready.clear()
        self._ahead.clear()
        self._starts.clear()
        self._ahead_bytes = 0
        self.consumed = self.received


class Backlog:
    """The sending end of a resumable stream: bytes produced and not yet acknowledged.

    ``acked`` is the offset up to which the receiver confirmed every byte; ``produced`` the
    offset the producer reached. The producer may ``append`` while ``has_room``.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError('the stream window must be a positive number of bytes')
        self.window = window
        self.acked = 0
        self.produced = 0
        self._chunks: deque[tuple[int, memoryview]] = deque()
        self._small: list[bytes] = []
        self._small_bytes = 0
        self._small_start = 0

    @property
    def held(self) -> int:
        """Bytes kept for the receiver."""
        return self.produced - self.acked

    def has_room(self) -> bool:
        """Whether the producer may add more now."""
        return self.produced - self.acked < self.window

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data``: ``bytes`` by reference, mutable buffers copied, small pieces joined."""
        if not isinstance(data, bytes):
            data = bytes(memoryview(data).cast('B'))
        size = len(data)
        if not size:
            return
        if size < SMALL:
            if not self._small:
                self._small_start = self.produced
            self._small.append(data)
            self._small_bytes += size
            self.produced += size
            if self._small_bytes >= SMALL:
                self._flush_small()
        else:
            self._flush_small()
            self._chunks.append((self.produced, memoryview(data)))
            self.produced += size

    def _flush_small(self) -> None:
        if self._small:
            self._chunks.append((self._small_start, memoryview(b''.join(self._small))))
            self._small.clear()
            self._small_bytes = 0

    def ack(self, offset: int) -> int:
        """The receiver has every byte before ``offset``; return how many bytes were freed."""
        if offset > self.produced:
            raise ProtocolError(
                f'acknowledged offset {offset} is beyond the {self.produced} bytes produced'
            )
        if offset <= self.acked:
            return 0
        self._flush_small()
        freed = offset - self.acked
        self.acked = offset
        while self._chunks:
            start, view = self._chunks[0]
            end = start + len(view)
            if end <= offset:
                self._chunks.popleft()
            else:
                if start < offset:
                    self._chunks[0] = (offset, view[offset - start :])
                break
        return freed

    def read(self, offset: int, limit: int) -> list[memoryview]:
        """Up to ``limit`` bytes from ``offset``, as views into the kept chunks.

        ``offset`` must lie between ``acked`` and ``produced``: the receiver resumes from what
        it has, and it cannot have less than it acknowledged.
        """
        if offset < self.acked:
            raise ProtocolError(
                f'offset {offset} was acknowledged already (up to {self.acked}); '
                'resume from the offset you hold'
            )
        if offset > self.produced:
            raise ProtocolError(f'offset {offset} is beyond the {self.produced} bytes produced')
        self._flush_small()
        views: list[memoryview] = []
        for start, view in self._chunks:
            end = start + len(view)
            if end <= offset:
                continue
            if limit <= 0:
                break
            piece = view[max(offset - start, 0) :]
            piece = piece[:limit]
            views.append(piece)
            limit -= len(piece)
            offset += len(piece)
        return views

    def clear(self) -> None:
        """Drop everything kept (the stream was cancelled)."""
        self._chunks.clear()
        self._small.clear()
        self._small_bytes = 0
        self.acked = self.produced
