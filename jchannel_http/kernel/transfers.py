"""The kernel's ends of byte streams: asyncio around the pure ``protocol/streams.py`` core.

* ``Upload``: a page -> kernel stream. HTTP handlers ``put`` chunks (waiting while the window is
  full: that wait is what slows the page down to the consumer's pace); a ``MetaGenerator``
  reads it through ``next_chunk``.
* ``Download``: a kernel -> page stream. A pump task pulls the producer while the backlog has
  room; GET responses ``serve`` bytes from any offset the page still needs; the page's
  acknowledgements free the backlog and let the producer go on.
* ``StreamHub``: the streams of the current session, numbered per direction, and the bridge
  between frames (``call``/``pipe``/``result`` naming a stream) and the objects above.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ProtocolError, StateError
from ..options import Options
from ..protocol.streams import Backlog, Reassembly
from .loops import call_on, cross, running_loop
from .meta_generator import MetaGenerator
from .progress import ProgressReporter, Source, as_source

log = logging.getLogger('jchannel_http')

WRITE_BYTES = 1024 * 1024
"""Most bytes handed to one ``write`` of a GET response."""


class Signal:
    """Wakes every waiter at once; a waiter that arrives later waits for the next notify."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the next notify; False when ``timeout`` passed first."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class Budget:
    """The bytes all streams of one direction hold together, and a bound on them.

    A stream may add bytes while the total stays within ``limit``, or whatever the total when
    its consumer waits for exactly these bytes (it took everything in order and the bytes
    continue there): so streams never wait for each other forever, and the total stays within
    ``limit`` plus one chunk per stream whose consumer waits.
    ``freed`` wakes the senders waiting for room whenever bytes are freed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.freed = Signal()

    def allows(self, size: int, awaited: bool) -> bool:
        """Whether a stream may add ``size`` bytes now; ``awaited``: its consumer waits for them."""
        return awaited or self.held + size <= self.limit

    def add(self, size: int) -> None:
        self.held += size

    def free(self, size: int) -> None:
        if size:
            self.held -= size
            self.freed.notify()


class PageWatch:
    """Whether the page is still there, for consumers waiting for its bytes.

    ``alive()`` turns False once the page has been silent for the liveness window (two
    heartbeats) or released the server; a consumer waiting for bytes checks it every ``every``
    seconds and then fails with StateError instead of waiting forever.
    """

    def __init__(self, alive: Callable[[], bool], liveness: float) -> None:
        self.alive = alive
        self.every = min(1.0, liveness / 4)
        self.gone_message = (
            f'the page went away (silent for {liveness:g} s, or closed) before '
            'it sent the whole stream'
        )


class Upload:
    """The kernel's end of a page -> kernel stream; the ChunkSource of a MetaGenerator."""

    def __init__(
        self,
        key: int,
        window: int,
        on_end: Callable[[Upload, str], None],
        budget: Budget | None = None,
        watch: PageWatch | None = None,
    ) -> None:
        self.key = key
        self._watch = watch
        self.core = Reassembly(window)
        self.total: int | None = None
        self.error: Exception | None = None
        self.state = 'open'
        self._on_end = on_end
        self._signal = Signal()
        self._budget = budget or Budget(window)
        self._loop = running_loop()
        """The transport's loop: a consumer on another loop (the caller's) crosses to it."""

    async def put(self, offset: int, data: bytes, last: bool, hold: float) -> bool:
        """Store a chunk, waiting up to ``hold`` seconds for room in this stream's window and in
        the budget of all streams; False if it did not fit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        budget = self._budget
        while self.state == 'open' and self.error is None:
            core = self.core
            held = core.held
            awaited = offset <= core.received == core.consumed
            if budget.allows(core.new_bytes(offset, len(data)), awaited) and core.put(
                offset, data, last
            ):
                budget.add(self.core.held - held)
                self._signal.notify()
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or not await budget.freed.wait(remaining):
                return False
        return False

    def fail(self, error: Exception) -> None:
        """The producer failed (or the session ended): the consumer gets ``error``."""
        if self.state == 'open' and self.error is None:
            self.error = error
            self._signal.notify()
            self._budget.freed.notify()

    def cancel(self) -> None:
        """The consumer stopped: drop what is held; the page is told at its next chunk."""
        if self._loop is not None and running_loop() is not self._loop:
            call_on(self._loop, self.cancel)
            return
        if self.state == 'open':
            self.state = 'cancelled'
            self.release()
            self._signal.notify()
            self._on_end(self, 'cancelled')

    def release(self) -> None:
        """Drop what is held and give it back to the budget."""
        held = self.core.held
        self.core.clear()
        self._budget.free(held)
        self._budget.freed.notify()

    async def next_chunk(self) -> bytes | None:
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            return await cross(self._loop, self._next_chunk())
        return await self._next_chunk()

    async def _next_chunk(self) -> bytes | None:
        while True:
            data = self.core.take()
            if data is not None:
                self._budget.free(len(data))
                self._signal.notify()
                return data
            if self.error is not None:
                raise self.error
            if self.state == 'cancelled':
                raise StateError('the stream was cancelled by its consumer')
            if self.core.complete:
                if self.state == 'open':
                    self.state = 'done'
                    self._on_end(self, 'done')
                return None
            watch = self._watch
            if watch is None:
                await self._signal.wait()
            elif not await self._signal.wait(watch.every) and not watch.alive():
                self.error = StateError(watch.gone_message)
                self.cancel()  # the page, if it comes back, stops sending this stream

    @property
    def answer_state(self) -> str:
        """What the page is told about the stream after a chunk."""
        if self.state == 'open' and self.core.finished_receiving:
            return 'done'
        return self.state


class Download:
    """The kernel's end of a kernel -> page stream: a producer pump and a resumable backlog."""

    def __init__(
        self,
        key: int,
        source: Source,
        window: int,
        on_end: Callable[[Download], None],
        budget: Budget | None = None,
    ) -> None:
        self.key = key
        self.backlog = Backlog(window)
        self._budget = budget or Budget(window)
        self.total = source.total
        self.finished = False
        self.error: BaseException | None = None
        self.cancelled = False
        self._reporter = ProgressReporter(source.progress, source.total)
        self._on_end = on_end
        self._signal = Signal()
        self._task = asyncio.create_task(self._pump(source.stream))

    async def _pump(self, stream: Any) -> None:
        iterator = stream.__aiter__()
        try:
            while True:
                while not self._has_room() and not self.cancelled:
                    await self._budget.freed.wait()
                if self.cancelled:
                    return
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    self.finished = True
                    return
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(
                        f'a stream must yield bytes-like objects, not {type(chunk).__name__}'
                    )
                before = self.backlog.produced
                self.backlog.append(chunk)
                self._budget.add(self.backlog.produced - before)
                self._signal.notify()
        except asyncio.CancelledError:
            self.cancelled = True
        except Exception as exc:  # noqa: BLE001 (the page's consumer gets the producer's error)
            self.error = exc
        finally:
            self._signal.notify()
            close = getattr(iterator, 'aclose', None)
            if close is not None and not self.finished:
                try:
                    await close()
                except Exception:
                    log.debug('closing the producer of stream %d raised', self.key, exc_info=True)
            self._check_end()

    def _has_room(self) -> bool:
        """Whether the producer may add a chunk: room in the window, and in the budget of all
        streams unless the page has every byte made so far (it waits for the next ones)."""
        return self.backlog.has_room() and self._budget.allows(1, self.backlog.held == 0)

    @property
    def ended(self) -> bool:
        """Whether the producer will add nothing more (finished, failed or cancelled)."""
        return self.finished or self.error is not None or self.cancelled

    @property
    def complete_at(self) -> int | None:
        """The stream's size, once the producer finished without error."""
        return self.backlog.produced if self.finished and self.error is None else None

    def ack(self, offset: int) -> None:
        """The page has every byte before ``offset``."""
        freed = self.backlog.ack(offset)
        if freed:
            self._budget.free(freed)
            self._signal.notify()
        self._check_end()

    def _check_end(self) -> None:
        done = self.finished and self.backlog.held == 0
        self._reporter.advance(
            self.backlog.acked,
            finished=done or self.cancelled or (self.error is not None and self.backlog.held == 0),
        )

    def acknowledge_end(self, offset: int) -> None:
        """The page read the whole stream: forget it."""
        self.ack(offset)
        if self.finished and self.backlog.held == 0:
            self._on_end(self)

    def cancel(self) -> None:
        """The consumer stopped (or the session ended): stop the producer, drop the backlog."""
        if not self.cancelled:
            self.cancelled = True
            held = self.backlog.held
            self.backlog.clear()
            self._budget.free(held)
            self._budget.freed.notify()
            self._task.cancel()
            self._signal.notify()
            self._on_end(self)

    async def serve(
        self,
        offset: int,
        write: Callable[[memoryview], Awaitable[Any]],
        limit: int | None,
        idle: float,
    ) -> None:
        """Write bytes from ``offset`` until the producer ends, ``limit`` bytes were written,
        or nothing new came for ``idle`` seconds (the page then asks again from its offset).

        A response that wrote every byte the producer may make before an acknowledgement ends
        there too: on a path that passes a response only once it ended (a buffering proxy) the
        page could not acknowledge anything before, and would wait ``idle`` seconds for
        nothing. Where bytes flow, the page acknowledges each quarter of the window as it
        reads, so this end is rare and costs one request."""
        written = 0
        while limit is None or written < limit:
            budget = WRITE_BYTES if limit is None else min(WRITE_BYTES, limit - written)
            views = self.backlog.read(offset, budget) if not self.cancelled else []
            if views:
                for view in views:
                    await write(view)
                    offset += len(view)
                    written += len(view)
                continue
            if self.ended or (written and not self._has_room()):
                return
            if not await self._signal.wait(idle):
                return

    async def wait_stopped(self) -> None:
        """Wait until the pump task ended."""
        await asyncio.gather(self._task, return_exceptions=True)


class StreamHub:
    """The byte streams of the current session, both directions.

    Page -> kernel streams are numbered by the page, kernel -> page streams by the kernel,
    each direction 1, 2, 3, ... within a session; a new session starts over.
    """

    def __init__(self, options: Options, alive: Callable[[], bool] | None = None) -> None:
        self.options = options
        self.watch = None if alive is None else PageWatch(alive, options.liveness)
        """How a consumer of a page -> kernel stream learns that the page is gone."""
        self.uploads: dict[int, Upload] = {}
        self.downloads: dict[int, Download] = {}
        self._ended_uploads: dict[int, str] = {}
        self._next_download = 0
        self._stopped = False
        self._new_budgets()

    def _new_budgets(self) -> None:
        """One budget per direction and session (``streams_buffer`` bytes each)."""
        self.upload_budget = Budget(self.options.streams_buffer)
        self.download_budget = Budget(self.options.streams_buffer)

    # -- the kernel sends ----------------------------------------------------------------

    def send(self, stream: Any) -> int:
        """Start sending ``stream`` (an async iterable or a Source); return its stream id."""
        if self._stopped:
            raise StateError('the server is stopped')
        source = as_source(stream)
        self._next_download += 1
        key = self._next_download
        self.downloads[key] = Download(
            key, source, self.options.stream_buffer, self._forget_download, self.download_budget
        )
        return key

    def download(self, key: int) -> Download:
        """The kernel -> page stream ``key``; ProtocolError if unknown."""
        stream = self.downloads.get(key)
        if stream is None:
            raise LookupError(
                f'no stream {key} from the kernel in this session (finished, '
                'cancelled or never started)'
            )
        return stream

    def progress_of(self, key: int) -> int:
        """Bytes of kernel -> page stream ``key`` the page confirmed (its size once gone)."""
        stream = self.downloads.get(key)
        return -1 if stream is None else stream.backlog.acked

    def abandon(self, key: int) -> None:
        """The call that sent kernel -> page stream ``key`` failed: stop its producer."""
        stream = self.downloads.get(key)
        if stream is not None:
            stream.cancel()

    def _forget_download(self, stream: Download) -> None:
        if self.downloads.get(stream.key) is stream:
            del self.downloads[stream.key]

    # -- the kernel receives -------------------------------------------------------------

    def upload(self, key: int) -> Upload:
        """The page -> kernel stream ``key``, made on first use (a chunk may come first)."""
        stream = self.uploads.get(key)
        if stream is None:
            if key < 1:
                raise ProtocolError('stream ids are positive integers')
            stream = Upload(
                key, self.options.stream_buffer, self._upload_ended, self.upload_budget, self.watch
            )
            if key in self._ended_uploads:
                stream.state = self._ended_uploads[key]
            elif self._stopped:
                stream.fail(StateError('the server is stopped'))
            else:
                self.uploads[key] = stream
        return stream

    def receive(self, key: int) -> MetaGenerator:
        """A MetaGenerator reading page -> kernel stream ``key``.

        If the MetaGenerator is dropped before the stream was read to its end, the stream is
        cancelled, which stops the producer in the page.
        """
        stream = self.upload(key)
        meta = MetaGenerator(stream)
        weakref.finalize(meta, _cancel_unread, weakref.ref(stream))
        return meta

    def refuse(self, key: int) -> None:
        """Nobody will read page -> kernel stream ``key`` (its call was abandoned)."""
        self.upload(key).cancel()

    def _upload_ended(self, stream: Upload, state: str) -> None:
        self._ended_uploads[stream.key] = state
        if self.uploads.get(stream.key) is stream:
            del self.uploads[stream.key]

    # -- lifecycle -------------------------------------------------------------------------

    def reset(self, reason: str) -> None:
        """The session ended: every stream fails with StateError and a new numbering starts."""
        error = StateError(f'{reason}; the stream was interrupted')
        for upload in list(self.uploads.values()):
            upload.fail(error)
        for download in list(self.downloads.values()):
            download.cancel()
        self.uploads.clear()
        self.downloads.clear()
        self._ended_uploads.clear()
        self._next_download = 0
        self._new_budgets()

    async def stop(self) -> None:
        """The server stops: fail and cancel everything, and wait for the producers to stop."""
        self._stopped = True
        downloads = list(self.downloads.values())
        self.reset('the server was stopped')
        await asyncio.gather(*(download.wait_stopped() for download in downloads))

    def status(self) -> dict[str, int]:
        """Counts for ``GET /status``."""
        return {
            'uploads': len(self.uploads),
            'downloads': len(self.downloads),
            'held_bytes': sum(s.core.held for s in self.uploads.values())
            + sum(s.backlog.held for s in self.downloads.values()),
        }


def _cancel_unread(ref: weakref.ref[Upload]) -> None:
    stream = ref()
    if stream is not None and stream.state == 'open' and not stream.core.complete:
        stream.cancel()
