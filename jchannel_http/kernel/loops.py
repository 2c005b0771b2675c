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
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

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


class _Crossing:
    """One crossing: the future awaited here and what runs on the other loop (a task, or the
    future a call there returned). Bound methods, no closures: a burst of thousands of
    crossings makes few objects for the garbage collector."""

    __slots__ = ('args', 'awaited', 'back', 'caught', 'function', 'loop', 'outcome', 'running')

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        outcome: asyncio.Future[Any],
        back: Hop,
        caught: bool,
    ) -> None:
        self.loop = loop
        self.function: Callable[..., Any] | None = function
        self.args = args
        self.outcome = outcome
        self.back = back
        self.caught = caught
        self.running: asyncio.Future[Any] | None = None
        self.awaited: Coroutine[Any, Any, Any] | None = None

    def start(self) -> None:  # on the other loop
        function, self.function = self.function, None
        if function is None:
            return  # cancelled before it started
        args, self.args = self.args, ()
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting side, raised there
            if not self.caught and not isinstance(exc, Exception):
                raise
            self._send(self._fail, exc)
            return
        running: asyncio.Future[Any]
        if inspect.iscoroutine(result):
            self.awaited = (
                result  # closed when done (cancelled before its first step, it never ran)
            )
        if isinstance(result, asyncio.Future) and result.get_loop() is self.loop:
            running = result
        elif inspect.iscoroutine(result) and not self.caught:
            running = self.loop.create_task(result)
        elif inspect.isawaitable(result):
            running = self.loop.create_task(outcome_of(result) if self.caught else _awaited(result))
        else:
            self._send(self._succeed, result)
            return
        self.running = running
        running.add_done_callback(self._finished)

    def _send(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            self.back.call(callback, value)
        except StateError:
            pass  # the awaiting loop is closed: nobody waits for this outcome

    def _finished(self, running: asyncio.Future[Any]) -> None:  # on the other loop
        if self.awaited is not None:
            self.awaited.close()  # a no-op once it ran
            self.awaited = None
        if running.cancelled():
            self._send(self._cancelled, None)
        elif (error := running.exception()) is not None:
            self._send(self._fail, error)
        elif isinstance(running, asyncio.Task) and self.caught:
            finished, value = running.result()
            self._send(self._succeed if finished else self._fail, value)
        else:
            self._send(self._succeed, running.result())

    # back here
    def _succeed(self, value: Any) -> None:
        if not self.outcome.done():
            self.outcome.set_result(value)

    def _fail(self, error: BaseException) -> None:
        if not self.outcome.done():
            self.outcome.set_exception(error)

    def _cancelled(self, _: None) -> None:
        self.outcome.cancel()

    def cancel(self) -> None:  # on the other loop
        if self.function is not None:  # not started yet
            self.function = None
            for value in self.args:
                if inspect.iscoroutine(value):
                    value.close()
            self.args = ()
        elif self.running is not None:
            self.running.cancel()


async def cross_call(
    loop: asyncio.AbstractEventLoop,
    function: Callable[..., Any],
    *args: Any,
    caught: bool = True,
) -> Any:
    """Call ``function(*args)`` on ``loop`` and await its outcome here; when it returns an
    awaitable, that is awaited on ``loop`` (a future of ``loop`` without a task more).

    On the same loop the function is called here. Cancelling the awaiting task cancels what
    runs on the other loop (the awaiting side does not wait for it to finish cancelling).
    ``caught=False`` saves a wrapper for work that raises no KeyboardInterrupt or SystemExit
    (the library's own, on the transport's thread, where signals never arrive).
    """
    here = asyncio.get_running_loop()
    if loop is here:
        result = function(*args)
        return await result if inspect.isawaitable(result) else result
    outcome: asyncio.Future[Any] = here.create_future()
    crossing = _Crossing(loop, function, args, outcome, hop_for(here), caught)
    hop = hop_for(loop)
    hop.call(crossing.start)
    try:
        return await outcome
    except asyncio.CancelledError:
        hop.call(crossing.cancel)  # queued after start: what runs there exists by then
        raise


def _given(work: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    return work


async def cross(
    loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], *, caught: bool = True
) -> T:
    """Run ``work`` as a task on ``loop`` and await its outcome here (on the same loop this is
    ``await work``); see ``cross_call``."""
    if loop is asyncio.get_running_loop():
        return await work
    try:
        return cast(T, await cross_call(loop, _given, work, caught=caught))
    except StateError:
        work.close()
        raise


async def _awaited(work: Awaitable[T]) -> T:
    return await work


async def outcome_of(work: Awaitable[T]) -> tuple[bool, Any]:
    """``work``'s outcome as a value: a KeyboardInterrupt or SystemExit raised by a handler on
    the other loop must reach the awaiting side, not stop the loop it ran on."""
    try:
        return True, await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 (handed to the awaiting side, raised there)
        return False, exc


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
        """Stop the loop (cancelling what still runs on it) and wait for the thread to end."""
        loop, thread = self.loop, self._thread
        self.loop = None
        self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            # the server stopped by a @background handler: the loop stops once the running
            # callback returns, and the thread ends
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
