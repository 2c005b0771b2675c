"""Streams and progress callbacks of user code, used from the transport's loop.

A byte stream that kernel code hands over (``call_with_stream``, ``pipe``, a handler's return
value) belongs to the caller's loop: it may await that loop's objects. ``read_on`` wraps it so
the transport's pump reads it there, one step at a time; ``progress_on`` makes a progress
callback run there too (a ``ProgressFeed`` and a progress bar are not made for threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .loops import call_on, cross
from .progress import ByteChunk, ProgressCallback, Source

_END = object()


class ReadOn:
    """An async iterable whose every step runs on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: Any) -> None:
        self._loop = loop
        self._stream = stream
        self._iterator: AsyncIterator[ByteChunk] | None = None

    def __aiter__(self) -> ReadOn:
        return self

    async def _step(self) -> object:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            return _END

    async def __anext__(self) -> ByteChunk:
        chunk = await cross(self._loop, self._step())
        if chunk is _END:
            raise StopAsyncIteration
        return chunk  # type: ignore[return-value]

    async def _close(self) -> None:
        close = getattr(self._iterator, 'aclose', None)
        if close is not None:
            await close()

    async def aclose(self) -> None:
        if self._iterator is not None:
            await cross(self._loop, self._close())


def progress_on(
    loop: asyncio.AbstractEventLoop, callback: ProgressCallback | None
) -> ProgressCallback | None:
    """``callback``, called on ``loop`` whatever thread reports."""
    if callback is None:
        return None
    return lambda progress: call_on(loop, callback, progress)


def read_on(loop: asyncio.AbstractEventLoop | None, stream: Any) -> Any:
    """``stream`` (an async iterable or a ``Source``) read on ``loop``; unchanged when None."""
    if loop is None:
        return stream
    if isinstance(stream, Source):
        return Source(ReadOn(loop, stream.stream), stream.total, progress_on(loop, stream.progress))
    return ReadOn(loop, stream)
