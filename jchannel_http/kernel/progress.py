"""Progress of a byte stream: snapshots, a callback form and an async-iterable form.

A transfer reports ``Progress`` snapshots to a callback: the sender counts the bytes the other
side confirmed, the receiver (a MetaGenerator) the bytes it handed to its consumer.
``ProgressFeed`` is such a callback that can also be iterated, for code that prefers
``async for``; ``Source`` attaches a declared size and a callback to an outgoing stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

log = logging.getLogger('jchannel_http')


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a transfer stands: ``done`` bytes of ``total`` (None when the size is unknown).

    ``delta`` is the number of bytes since the previous snapshot (what ``tqdm.update`` takes);
    ``finished`` is True in the last snapshot, whether the transfer completed or failed.
    """

    done: int
    total: int | None
    delta: int
    finished: bool = False


ProgressCallback = Callable[[Progress], object]
"""Receives a ``Progress`` snapshot; what it returns is ignored."""

ByteChunk: TypeAlias = bytes | bytearray | memoryview
"""One piece of an outgoing byte stream."""

ByteStream: TypeAlias = AsyncIterable[ByteChunk]
"""An outgoing byte stream (an async generator of bytes, a MetaGenerator, a ``Source``)."""


class ProgressReporter:
    """Turns byte counts into snapshots for one callback; a failing callback is logged once."""

    def __init__(self, callback: ProgressCallback | None, total: int | None = None) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.finished = False

    def advance(self, done: int, finished: bool = False) -> None:
        """Report that ``done`` bytes are through (and, if ``finished``, that nothing follows)."""
        if self.finished or (done <= self.done and not finished):
            return
        delta = max(done - self.done, 0)
        self.done = max(done, self.done)
        self.finished = finished
        if self.callback is None:
            return
        try:
            self.callback(Progress(self.done, self.total, delta, finished))
        except Exception:  # a progress bar must never break the transfer
            log.exception('a progress callback raised; it will not be called again')
            self.callback = None


class ProgressFeed:
    """A progress callback that can also be iterated: ``async for p in feed``.

    Iteration yields the latest snapshot whenever it changed (snapshots that arrive while the
    iterating code is busy are merged: their ``delta`` adds up), and stops after the finished
    one. Pass the feed wherever a progress callback is accepted.
    """

    def __init__(self) -> None:
        self._latest: Progress | None = None
        self._delta = 0
        self._changed = asyncio.Event()

    def __call__(self, progress: Progress) -> None:
        self._latest = progress
        self._delta += progress.delta
        self._changed.set()

    def __aiter__(self) -> AsyncIterator[Progress]:
        return self._snapshots()

    async def _snapshots(self) -> AsyncIterator[Progress]:
        while True:
            await self._changed.wait()
            self._changed.clear()
            latest = self._latest
            assert latest is not None
            merged = Progress(latest.done, latest.total, self._delta, latest.finished)
            self._delta = 0
            yield merged
            if merged.finished:
                return


class Source:
    """An outgoing byte stream with what its receiver and a progress bar may want to know.

    ``stream`` is an async iterable of bytes-like objects; ``total`` its size if known (sent to
    the receiver); ``progress`` a callback receiving ``Progress`` as the receiver confirms
    bytes. Wherever a stream is sent (``call_with_stream``, ``pipe``, a handler's return
    value), a ``Source`` may stand for it.
    """

    def __init__(
        self, stream: ByteStream, total: int | None = None, progress: ProgressCallback | None = None
    ) -> None:
        if not hasattr(stream, '__aiter__'):
            raise TypeError(
                'a stream must be an async iterable of bytes-like objects '
                '(an async generator, a MetaGenerator, ...)'
            )
        if total is not None and (
            not isinstance(total, int) or isinstance(total, bool) or total < 0
        ):
            raise ValueError('total must be None or the non-negative size of the stream')
        if progress is not None and not callable(progress):
            raise TypeError('progress must be a callable taking a Progress')
        self.stream = stream
        self.total = total
        self.progress = progress

    def __aiter__(self) -> AsyncIterator[ByteChunk]:
        return self.stream.__aiter__()


def as_source(
    stream: ByteStream, total: int | None = None, progress: ProgressCallback | None = None
) -> Source:
    """``stream`` as a Source; the keyword arguments override what a given Source says."""
    if isinstance(stream, Source):
        return Source(
            stream.stream,
            total if total is not None else stream.total,
            progress if progress is not None else stream.progress,
        )
    return Source(stream, total, progress)


def is_stream(value: Any) -> bool:
    """Whether a handler's return value is sent as a stream (an async iterable)."""
    return hasattr(value, '__aiter__')
