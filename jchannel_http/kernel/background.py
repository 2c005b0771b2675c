"""``@background``: handler methods that run on the transport's thread.

An ordinary handler method runs on the loop that started the server (in a notebook, the
kernel's), so it waits while a cell computes. A method marked ``@background`` runs on the
transport's own thread and loop instead, and so answers the page while the kernel is busy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar('F', bound=Callable[..., Any])

_MARK = '__jchannel_http_background__'


def background(method: F) -> F:
    """Mark a handler method to run on the transport's thread, even while the kernel is busy.

    Sync and async methods both work. Such a method runs at the same time as the code of the
    kernel's cells: what it shares with them should be simple values it sets or reads (a flag,
    a counter, the latest progress) or objects made for threads (``threading.Event``,
    ``queue.Queue``). It must not await objects of the kernel's loop (its futures, locks,
    queues) or call asyncio functions of that loop, and a sync one should return quickly:
    while it runs, the transport serves nothing else. It may call the page with
    ``await channel.call(...)`` (never ``call_sync``, which would wait for itself).
    """
    if not callable(method):
        raise TypeError('@background marks a function or method')
    target = getattr(method, '__func__', method)
    try:
        setattr(target, _MARK, True)
    except (AttributeError, TypeError):
        raise TypeError(f'@background cannot mark {method!r}: it takes no attributes') from None
    return method


def is_background(method: object) -> bool:
    """Whether ``method`` (a function or a bound method) was marked ``@background``."""
    target = getattr(method, '__func__', method)
    return getattr(target, _MARK, False) is True
