"""Two event loops and the hops between them.

The transport (HTTP server, event streams, acknowledgements, outboxes, uploads, downloads) runs
on a loop of its own, on a thread of its own (``TransportThread``), so that it keeps serving the
page while the caller's loop is blocked, for example by a notebook cell that computes. The
public API and ordinary handler methods stay on the caller's loop.

Work crosses with ``cross(loop, coroutine)``, awaited on one loop, run as a task on the other.
Each loop has one ``Hop``: a queue of callbacks that the other thread fills, drained by a single
``call_soon_threadsafe``. A burst of thousands of frames costs one wake-up of the loop, not one
each, and callbacks run in the order they were queued.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import StateError

log = logging.getLogger('jchannel_http')

T = TypeVar('T')

STOP_TIMEOUT = 10.0
"""Most seconds ``TransportThread.stop`` waits for the thread to end."""


class Hop:
    """Callbacks queued from any thread, run on ``loop`` in order, one wake-up per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._armed = False

    def call(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon (StateError when the loop is closed)."""
        with self._lock:
            self._queue.append((callback, args))
            if self._armed:
                return
            self._armed = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError as exc:  # the loop is closed
            with self._lock:
                self._queue.clear()
                self._armed = False
            raise StateError('the event loop this work was meant for is closed') from exc

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
            self._armed = False
        for callback, args in batch:
            try:
                callback(*args)
            except Exception:
                log.exception('a callback handed over from another thread raised')


_hops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hop] = weakref.WeakKeyDictionary()
_hops_lock = threading.Lock()


def hop_for(loop: asyncio.AbstractEventLoop) -> Hop:
    """The one ``Hop`` of ``loop``."""
    with _hops_lock:
        hop = _hops.get(loop)
        if hop is None:
            hop = _hops[loop] = Hop(loop)
        return hop


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def call_on(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop``: now when it is this thread's loop, else soon."""
    if running_loop() is loop:
        callback(*args)
    else:
        hop_for(loop).call(callback, *args)


class _Escaped:
    """A KeyboardInterrupt or SystemExit that work on another loop raised, carried back as a
    value: raised out of a task, it would stop that loop instead of reaching the awaiting side."""

    __slots__ = ('error',)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _contained(work: Coroutine[Any, Any, T]) -> T | _Escaped:
    try:
        return await work
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Escaped(exc)


async def cross(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` as a task on ``loop`` and await its outcome here.

    On the same loop this is ``await work``. Cancelling the awaiting task cancels the task on
    the other loop (the awaiting side does not wait for it to finish cancelling). A
    KeyboardInterrupt or SystemExit of ``work`` is raised here, as any other exception (on
    ``loop`` it would stop the loop: a notebook's stop button pressed while a handler runs
    ends that call only).
    """
    here = asyncio.get_running_loop()
    if loop is here:
        return await work
    outcome: asyncio.Future[T] = here.create_future()
    back = hop_for(here)
    started: list[asyncio.Task[T | _Escaped]] = []

    def settle(task: asyncio.Task[T | _Escaped]) -> None:
        if outcome.done():
            return
        if task.cancelled():
            outcome.cancel()
        elif (error := task.exception()) is not None:
            outcome.set_exception(error)
        elif isinstance(result := task.result(), _Escaped):
            outcome.set_exception(result.error)
        else:
            outcome.set_result(result)

    def deliver(task: asyncio.Task[T | _Escaped]) -> None:
        work.close()  # a no-op once it ran; cancelled before its first step, it never will
        try:
            back.call(settle, task)
        except StateError:
            pass  # the awaiting loop is closed (the server stopped meanwhile): nobody waits

    def start() -> None:
        task = loop.create_task(_contained(work))
        started.append(task)
        task.add_done_callback(deliver)

    def cancel() -> None:
        for task in started:
            task.cancel()

    hop = hop_for(loop)
    try:
        hop.call(start)
    except StateError:
        work.close()
        raise
    try:
        return await outcome
    except asyncio.CancelledError:
        hop.call(cancel)  # queued after start: the task exists when this runs
        raise


def block_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on ``loop`` (another thread's) and block this thread until it is over.

    A ``KeyboardInterrupt`` while blocked (a notebook's interrupt) cancels the work and is
    raised again.
    """
    if running_loop() is loop:
        work.close()
        raise StateError(
            "this would deadlock: it blocks the transport's own thread, which must run it"
        )
    future = asyncio.run_coroutine_threadsafe(work, loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


class TransportThread:
    """A daemon thread that runs an event loop for the transport, from ``start`` to ``stop``."""

    def __init__(self, name: str = 'jchannel_http transport') -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread; its loop, running."""
        if self.loop is not None:
            return self.loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                try:
                    _cancel_all(loop)
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    asyncio.set_event_loop(None)
                    loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        self.loop = loop
        self._thread = thread
        return loop

    def stop(self) -> None:
        """Stop the loop (cancelling what still runs on it) and wait for the thread to end.

        On the thread itself (the server stopped by a ``@background`` handler) it cannot wait
        for itself: the loop stops once the running callback returns, and the thread ends."""
        loop, thread = self.loop, self._thread
        self.loop = None
        self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            loop.stop()
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # closed already
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning('the transport thread did not end within %g s', STOP_TIMEOUT)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
