"""Bounded waiting: poll a condition until a deadline, then fail saying what did not happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(
    condition: Callable[[], Any], seconds: float = 10, what: str = '', interval: float = 0.05
) -> None:
    """Return once ``condition()`` is true; after ``seconds`` (checked once more) fail with
    ``what`` (or the condition's name) in the message."""
    if seconds <= 0 or interval <= 0:
        raise ValueError(f'seconds and interval must be positive, not {seconds} and {interval}')
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(interval)
    if not condition():
        name = what or getattr(condition, '__qualname__', repr(condition))
        raise AssertionError(f'not true within {seconds} s: {name}')


async def wait_connected(page: Any, transport: str, seconds: float = 60) -> None:
    """Wait until the client of ``page`` (a Playwright page) is connected over ``transport``;
    else fail naming the transport and state it has."""
    try:
        await page.wait_for_function(
            '(t) => window.jchannelClient.transport === t'
            ' && window.jchannelClient.state === "connected"',
            arg=transport,
            timeout=seconds * 1000,
        )
    except Exception as exc:
        found = await page.evaluate("""() => window.jchannelClient === undefined ? null
            : [window.jchannelClient.transport, window.jchannelClient.state]""")
        raise AssertionError(
            f'not connected over {transport} within {seconds} s (transport and state: {found})'
        ) from exc
