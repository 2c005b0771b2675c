"""MetaGenerator: how a received byte stream is read (the same API as jupyter-jchannel's).

It reads from a ``ChunkSource`` (the kernel's end of a page -> kernel stream, see
``transfers.py``) and offers plain async iteration, ``join()``, ``by_limit()`` and
``by_separator()``. A consumer that stops early (``break``, an exception, ``aclose()``)
cancels the stream, which stops the producer in the page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Protocol

from ..errors import StateError
from .progress import ProgressCallback, ProgressReporter


class ChunkSource(Protocol):
    """Where a MetaGenerator's bytes come from."""

    total: int | None

    async def next_chunk(self) -> bytes | None:
        """The next bytes, None at the end; raises the producer's error when it failed."""

    def cancel(self) -> None:
        """The consumer stopped: stop the producer and drop what is held."""


class MetaGenerator:
    """A received byte stream, read once.

    ``async for chunk in stream`` gives the chunks as they arrive, and so does
    ``await anext(stream)`` (a MetaGenerator has ``__anext__``, as in jupyter-jchannel);
    ``join()`` the whole stream; ``by_limit(limit)`` chunks of exactly ``limit`` bytes (the
    last may be shorter); ``by_separator(separator)`` pieces that end with ``separator`` (the
    last may not). Every way of reading takes from the same bytes: once they are all read, a
    new loop yields nothing. ``received`` counts the bytes handed out, ``total`` is the size
    the sender declared (or None), and ``on_progress`` may be set to a callback receiving
    ``Progress`` snapshots (a ``ProgressFeed`` gives them as an async iterable).

    A loop left early (``break``, an exception) cancels the stream, which stops its producer;
    reading a cancelled stream again raises StateError.
    """

    def __init__(self, source: ChunkSource) -> None:
        self._source = source
        self._finished = False
        self._cancelled = False
        self._reporter = ProgressReporter(None)
        self._reading = asyncio.Lock()

    def __repr__(self) -> str:
        return f'<MetaGenerator received={self.received} total={self.total}>'

    @property
    def total(self) -> int | None:
        """The size the sender declared, or None."""
        return self._source.total

    @property
    def received(self) -> int:
        """Bytes handed to the consumer so far."""
        return self._reporter.done

    @property
    def on_progress(self) -> ProgressCallback | None:
        """A callback receiving a ``Progress`` after each chunk and at the end."""
        return self._reporter.callback

    @on_progress.setter
    def on_progress(self, callback: ProgressCallback | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError('on_progress must be a callable taking a Progress, or None')
        self._reporter.callback = callback

    def cancel(self) -> None:
        """Stop reading: the producer is stopped and what is held is dropped."""
        if self._finished or self._cancelled:
            return
        self._cancelled = True
        self._source.cancel()
        self._reporter.advance(self._reporter.done, finished=True)

    async def aclose(self) -> None:
        """The same as ``cancel()``, as an awaitable."""
        self.cancel()

    async def _next(self) -> bytes | None:
        """The next chunk, None once every byte was read."""
        async with self._reading:
            if self._finished:
                return None
            if self._cancelled:
                raise StateError(
                    'this stream was cancelled (a loop over it was left early, '
                    'or cancel() was called): its remaining bytes are gone'
                )
            try:
                chunk = await self._source.next_chunk()
            except BaseException:
                self.cancel()
                raise
            self._reporter.total = self._source.total
            if chunk is None:
                self._finished = True
                self._reporter.advance(self._reporter.done, finished=True)
                return None
            self._reporter.advance(self._reporter.done + len(chunk))
            return chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        # A generator per loop, so that a loop left early (its generator closed) cancels the
        # stream; ``anext(stream)`` reads the same bytes through ``__anext__``.
        return self._chunks()

    async def __anext__(self) -> bytes:
        chunk = await self._next()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        """The chunks, for the readers below: leaving early cancels the stream."""
        try:
            while (chunk := await self._next()) is not None:
                yield chunk
        finally:
            if not self._finished:
                self.cancel()

    async def join(self) -> bytes:
        """Every byte of the stream, as one bytes object."""
        buffer = bytearray()
        async with aclosing(self._chunks()) as chunks:
            async for chunk in chunks:
                buffer += chunk
        return bytes(buffer)

    async def by_limit(self, limit: int = 8192) -> AsyncGenerator[bytes, None]:
        """Chunks of exactly ``limit`` bytes, the last one possibly shorter."""
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError('limit must be an integer')
        if limit <= 0:
            raise ValueError('limit must be positive')
        pending = bytearray()
        async with aclosing(self._chunks()) as chunks:
            async for chunk in chunks:
                view = memoryview(chunk)
                start = 0
                if pending:
                    start = min(limit - len(pending), len(view))
                    pending += view[:start]
                    if len(pending) < limit:
                        continue
                    yield bytes(pending)
                    pending = bytearray()
                while len(view) - start >= limit:
                    yield bytes(view[start : start + limit])
                    start += limit
                pending += view[start:]
        if pending:
            yield bytes(pending)

    async def by_separator(
        self, separator: str | bytes | bytearray | memoryview = b'\n'
    ) -> AsyncGenerator[bytes, None]:
        """Pieces ending with ``separator`` (a str is encoded as UTF-8); the last may not."""
        if isinstance(separator, str):
            separator = separator.encode()
        elif isinstance(separator, (bytearray, memoryview)):
            separator = bytes(separator)
        elif not isinstance(separator, bytes):
            raise TypeError('separator must be a str or a bytes-like object')
        if not separator:
            raise ValueError('separator cannot be empty')
        size = len(separator)
        buffer = bytearray()
        async with aclosing(self._chunks()) as chunks:
            async for chunk in chunks:
                search = max(len(buffer) - size + 1, 0)
                buffer += chunk
                start = 0
                while (found := buffer.find(separator, max(search, start))) >= 0:
                    end = found + size
                    yield bytes(buffer[start:end])
                    start = end
                if start:
                    del buffer[:start]
        if buffer:
            yield bytes(buffer)
