"""Kernel-side calls: numbering the kernel's calls, matching replies, running handler methods.

Each incoming frame type has one small method; ``handle`` picks it from a table.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import traceback
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import FrontendError, ProtocolError, StateError
from ..protocol.calls import CallTable
from ..protocol.frames import Call, Echo, Error, Frame, Invalid, Pipe, Request, Result
from ..protocol.session import Prepared
from .background import is_background
from .loops import call_on, cross_call, hop_for, outcome_of, running_loop
from .progress import is_stream
from .user_streams import read_on

if TYPE_CHECKING:
    from .link import Link
    from .transfers import StreamHub

log = logging.getLogger('jchannel_http')


class HasHandler(Protocol):
    """What a page call reaches: a channel's handler (see channel.py)."""

    @property
    def handler(self) -> object: ...


class MissingMethod(AttributeError):
    """The channel's handler has no method of the called name."""


def find_method(handler: object, name: str) -> Callable[..., Any]:
    """The callable ``name`` of ``handler``, or MissingMethod naming what is missing."""
    if handler is None:
        raise MissingMethod(f"the channel has no handler, so it has no method '{name}'")
    if name.startswith('_'):
        raise MissingMethod(f"handler method '{name}' is private")
    method: object = getattr(handler, name, None)
    if not callable(method):
        raise MissingMethod(f"handler has no method '{name}'")
    return method


async def call_method(method: Callable[..., Any], args: list[Any]) -> Any:
    """Call ``method`` with ``args``, awaiting it when it is async."""
    result = method(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def invoke(
    handler: object,
    name: str,
    args: list[Any],
    loop: asyncio.AbstractEventLoop | None = None,
) -> Any:
    """Call handler method ``name`` with ``args``, awaiting it when it is async.

    ``loop`` is where ordinary methods run (the loop that started the server); a method marked
    ``@background``, or any method when ``loop`` is None, runs here, on the transport's loop.
    A stream an ordinary method returns is read on its loop too.
    """
    method = find_method(handler, name)
    if loop is None or is_background(method) or loop is asyncio.get_running_loop():
        return await call_method(method, args)
    value = await cross_call(loop, method, *args)  # a plain method runs without a task
    return read_on(loop, value) if is_stream(value) else value


def describe(exc: BaseException) -> str:
    """``str(exc)``, or a description of ``exc`` when its ``__str__`` fails."""
    try:
        return str(exc)
    except Exception as failure:  # noqa: BLE001 (an exception must never keep its call from an answer)
        return (
            f'<{type(exc).__name__} could not describe itself: its __str__ raised '
            f'{type(failure).__name__}>'
        )


class Unsent(asyncio.TimeoutError):
    """A request found the outbox full for longer than its timeout: it was not sent."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


class _Reply:
    """The bookkeeping of a request sent without a task: its deadline, and its call id closed
    once the reply (or a failure) settled its future."""

    __slots__ = ('call', 'pending', 'timer', 'what')

    def __init__(
        self,
        pending: CallTable[asyncio.Future[Any]],
        call: int,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        reply_by: float | None,
        what: str,
    ) -> None:
        self.pending = pending
        self.call = call
        self.what = what
        self.timer = None if reply_by is None else loop.call_at(reply_by, self.expire, future)
        future.add_done_callback(self.settled)

    def expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(
                TimeoutError(f'the page did not answer {self.what} by its deadline')
            )

    def settled(self, future: asyncio.Future[Any]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.pending.close(self.call)


_EVERY: weakref.WeakSet[Rpc] = weakref.WeakSet()


def calls_in_flight() -> bool:
    """Whether a call of any server of this process is in flight: a kernel call waiting for its
    page, or a page's call being handled (see ColabLauncher, which must not block meanwhile)."""
    return any(len(rpc._pending) or rpc._tasks or rpc._elsewhere for rpc in list(_EVERY))


class Rpc:
    """Outgoing calls waiting for replies, and incoming calls being answered."""

    def __init__(
        self,
        link: Link,
        channel_of: Callable[[int], HasHandler | None],
        debug: bool = False,
        streams: StreamHub | None = None,
    ) -> None:
        self._link = link
        self._streams = streams
        self._channel_of = channel_of
        """The channel of a key, or None (the endpoint's registry)."""
        self._debug = debug
        self.handler_loop: asyncio.AbstractEventLoop | None = None
        """Where ordinary handler methods run (the loop that started the server); None: here."""
        self._pending: CallTable[asyncio.Future[Any]] = CallTable()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = running_loop()
        """The transport's loop (None when made outside a loop: then calls run where they come)."""
        self._elsewhere = 0
        """Page calls handed to the handler loop, not answered yet."""
        self._there: set[asyncio.Task[tuple[bool, Any]]] = set()
        """Async handler methods running on the handler loop (touched only there)."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            Result: self._on_result,
            Error: self._on_error,
            Call: self._on_request,
            Echo: self._on_request,
            Pipe: self._on_request,
            Invalid: self._on_invalid,
        }
        _EVERY.add(self)

    @property
    def pending(self) -> int:
        """Kernel calls waiting for the page."""
        return len(self._pending)

    async def request(
        self,
        make: Callable[[int], Request],
        timeout: float | None = None,
        reply_by: float | None = None,
    ) -> Any:
        """Send the request ``make(call_id)`` and wait for its reply.

        ``timeout`` bounds the wait for room in a full outbox (``Unsent`` beyond it: nothing was
        sent); ``reply_by`` is the loop time by which the whole request must be answered
        (``asyncio.TimeoutError`` beyond it). None: no bound.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        call = self._pending.open(future)
        timer = None
        try:
            frame = Prepared.of(make(call))  # TypeError here: nothing was sent
            if self._link.push(frame) is None:  # the outbox is full: wait for room, in time
                bounds = [
                    bound
                    for bound in (None if timeout is None else loop.time() + timeout, reply_by)
                    if bound is not None
                ]
                remaining = max(0.0, min(bounds) - loop.time()) if bounds else None
                try:
                    await asyncio.wait_for(self._link.send(frame), remaining)
                except asyncio.TimeoutError:
                    raise Unsent() from None
            # A timer on the future rather than wait_for: no task more per call.
            if reply_by is not None:
                timer = loop.call_at(reply_by, _expire, future)
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.close(call)

    def start_request(
        self, make: Callable[[int], Request], reply_by: float | None, what: str
    ) -> asyncio.Future[Any] | None:
        """``request`` without a task, when the outbox has room: the future of the reply, or
        None when the frame does not fit now (nothing was sent: use ``request``).

        Past ``reply_by`` the future fails with a TimeoutError naming ``what``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = self._pending.open(future)
        try:
            frame = Prepared.of(make(call))  # TypeError here: nothing was sent
        except BaseException:
            self._pending.close(call)
            raise
        if self._link.push(frame) is None:
            self._pending.close(call)
            return None
        _Reply(self._pending, call, future, loop, reply_by, what)
        return future

    def fail_all(self, error: Exception) -> None:
        """Fail every kernel call still waiting (the page went away, or the server stopped)."""
        for future in self._pending.drain():
            if not future.done():
                future.set_exception(error)

    def handle(self, frame: Frame | Invalid) -> None:
        """Process one frame from the page."""
        self._handlers[type(frame)](frame)

    def _settle(self, call: int, settle: Callable[[asyncio.Future[Any]], None]) -> None:
        future = self._pending.waiter(call)
        if future is None or future.done():
            log.debug('reply to call %d, which nobody waits for any more', call)
            return
        settle(future)

    def _on_result(self, frame: Result) -> None:
        if frame.stream is None or self._streams is None:
            self._settle(frame.call, lambda future: future.set_result(frame.value))
            return
        future = self._pending.waiter(frame.call)
        if future is None or future.done():  # nobody will read the stream: stop its producer
            self._streams.refuse(frame.stream)
            return
        future.set_result(self._streams.receive(frame.stream))

    def _on_error(self, frame: Error) -> None:
        error = FrontendError(frame.name, frame.message)
        self._settle(frame.call, lambda future: future.set_exception(error))

    def _on_request(self, frame: Call | Echo | Pipe) -> None:
        if not self._hand_over(frame):
            self._spawn(self._answer(frame))

    # -- ordinary handler methods, run on the handler loop without a task on either side -----

    def _hand_over(self, frame: Call | Echo | Pipe) -> bool:
        """Hand a page call of an ordinary method to the handler loop (the caller's) with one
        queued callback: no task, no future, and one wake-up for a whole batch. False when the
        call takes the general way (a stream, a background method, a missing one, one loop)."""
        loop = self.handler_loop
        if (
            loop is None
            or self._loop is None
            or loop is self._loop
            or not isinstance(frame, Call)
            or frame.stream is not None
        ):
            return False
        channel = self._channel_of(frame.channel)
        if channel is None:
            return False
        try:
            method = find_method(channel.handler, frame.name)
        except MissingMethod:
            return False
        if is_background(method):
            return False
        try:
            hop_for(loop).call(self._run_there, method, frame, self._link.session)
        except StateError:
            return False  # the handler loop is closed: the general way says so to the page
        self._elsewhere += 1
        return True

    def _run_there(self, method: Callable[..., Any], frame: Call, session: object) -> None:
        """On the handler loop: run the method; its outcome goes back to the transport."""
        try:
            result = method(*frame.args)
        except BaseException as exc:  # noqa: BLE001 (the page gets every handler error)
            self._back(frame, session, False, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(outcome_of(result))
            self._there.add(task)
            task.add_done_callback(functools.partial(self._awaited_there, frame, session))
            return
        self._back(frame, session, True, result)

    def _awaited_there(
        self, frame: Call, session: object, task: asyncio.Task[tuple[bool, Any]]
    ) -> None:
        self._there.discard(task)
        if task.cancelled():  # the server stopped: the page gets no answer from this one
            assert self._loop is not None
            try:
                hop_for(self._loop).call(self._dropped)
            except StateError:
                pass
        elif (error := task.exception()) is not None:
            self._back(frame, session, False, error)
        else:
            finished, value = task.result()
            self._back(frame, session, finished, value)

    def _back(self, frame: Call, session: object, finished: bool, value: Any) -> None:
        """On the handler loop: hand the outcome back to the transport's loop."""
        if finished and is_stream(value):
            value = read_on(asyncio.get_running_loop(), value)
        assert self._loop is not None
        try:
            hop_for(self._loop).call(self._answered, frame, session, finished, value)
        except StateError:
            pass  # the transport stopped: nobody is there to answer

    def _answered(self, frame: Call, session: object, finished: bool, value: Any) -> None:
        """On the transport's loop: the reply to a page call run on the handler loop."""
        self._elsewhere -= 1
        if not finished:
            self._log_failure(frame, value)
        if session is not self._link.session or self._link.stopped:
            log.debug('dropping the reply to call %d: its page is gone', frame.call)
            return
        reply = self._result(frame.call, value) if finished else self.error_frame(frame.call, value)
        try:
            if self._link.push(Prepared.of(reply)) is not None:
                return
        except (TypeError, StateError):
            pass  # the general way logs an unsendable result, or drops it for a gone page
        self._spawn(self._send_reply(session, reply))

    def _dropped(self) -> None:
        self._elsewhere -= 1

    def _cancel_there(self) -> None:
        for task in list(self._there):
            task.cancel()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_invalid(self, frame: Invalid) -> None:
        """An item of the page's batch that is not a valid frame: fail the call it belongs to."""
        if frame.call is not None and frame.kind not in ('result', 'error'):
            log.warning('refused a page call: %s', frame.reason)
            error = Error(
                frame.call, 'ProtocolError', f'the kernel refused the call: {frame.reason}'
            )
            self._spawn(self._send_reply(self._link.session, error))
        elif frame.call is not None and frame.kind in ('result', 'error'):
            refused = ProtocolError(
                f'the page answered with a frame the kernel refused: {frame.reason}'
            )
            self._settle(frame.call, lambda future: future.set_exception(refused))
        else:
            log.warning('ignored an item of a page batch that is not a frame: %s', frame.reason)

    async def _answer(self, frame: Call | Echo | Pipe) -> None:
        session = self._link.session
        try:
            value = await self._run(frame)
            await self._send_reply(session, self._result(frame.call, value))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 (the page gets every handler error, as in a local call);
            # KeyboardInterrupt (the notebook's stop button) and SystemExit end only this call
            self._log_failure(frame, exc)
            await self._send_reply(session, self.error_frame(frame.call, exc))

    def _result(self, call: int, value: Any) -> Result:
        """The reply carrying a handler's ``value``: a stream the page receives, or JSON."""
        if is_stream(value) and self._streams is not None:
            return Result(call, None, self._streams.send(value))
        return Result(call, value)

    def _log_failure(self, frame: Call | Echo | Pipe, exc: BaseException) -> None:
        """One WARNING per failed page call, with the traceback when a handler raised."""
        what = (
            f'call {frame.name!r}' if isinstance(frame, Call) else f'{type(frame).__name__.lower()}'
        )
        if isinstance(exc, (MissingMethod, StateError)):
            log.warning(
                "the page's %s of channel %d failed: %s", what, frame.channel, describe(exc)
            )
        else:
            log.warning(
                "the page's %s of channel %d raised %s",
                what,
                frame.channel,
                type(exc).__name__,
                exc_info=exc,
            )

    async def _run(self, frame: Call | Echo | Pipe) -> Any:
        channel = self._channel_of(frame.channel)
        stream = getattr(frame, 'stream', None)
        received = (
            None if stream is None or self._streams is None else self._streams.receive(stream)
        )
        if channel is None:
            raise StateError(f'no channel {frame.channel} on the kernel')
        if isinstance(frame, Echo):
            return frame.args
        if isinstance(frame, Pipe):
            return received
        args = frame.args if received is None else [received, *frame.args]
        return await invoke(channel.handler, frame.name, args, self.handler_loop)

    async def _send_reply(self, session: object, reply: Result | Error) -> None:
        if session is not self._link.session or self._link.stopped:
            log.debug('dropping the reply to call %d: its page is gone', reply.call)
            return
        try:
            try:
                await self._link.send(reply)
            except TypeError as exc:  # a result JSON cannot carry
                log.warning('the result of call %d cannot be sent: %s', reply.call, exc)
                await self._link.send(self.error_frame(reply.call, exc))
        except StateError:
            log.debug('dropping the reply to call %d: its page is gone', reply.call)

    def error_frame(self, call: int, exc: BaseException) -> Error:
        """The error frame for ``exc``: class name and message, a traceback only in debug."""
        message = describe(exc)
        if self._debug:
            message += '\n' + ''.join(traceback.format_exception(exc))
        # A missing method is an AttributeError, as in jupyter-jchannel (MissingMethod is ours)
        name = 'AttributeError' if isinstance(exc, MissingMethod) else type(exc).__name__
        return Error(call, name, message)

    async def stop(self) -> None:
        """Cancel handler calls still running."""
        loop = self.handler_loop
        if loop is not None and loop is not self._loop:
            try:
                call_on(loop, self._cancel_there)
            except StateError:
                pass  # that loop is closed: nothing runs there
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
