"""What a tunnel launcher is, and how the server starts and stops one."""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Protocol

from ..errors import JChannelError, TunnelError

log = logging.getLogger('jchannel_http')


class Launcher(Protocol):
    """What ``start(tunnel=...)`` accepts besides the names in ``NAMES``."""

    async def start(self, port: int) -> str:
        """Make the server listening on 127.0.0.1:``port`` reachable; return the URL to use."""

    async def stop(self) -> None:
        """Undo ``start``: end processes, close listeners. Called once, also after a failure."""


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


async def open_tunnel(launcher: Launcher, port: int) -> str:
    """Start ``launcher`` for ``port`` and return its URL without a trailing slash.

    On any failure the launcher is stopped before the error propagates; errors that are not the
    library's own become TunnelError, keeping the cause.
    """
    try:
        url = await launcher.start(port)
        if not isinstance(url, str) or not url.startswith(('http://', 'https://', '/')):
            raise TunnelError(
                f'the tunnel launcher {launcher!r} returned {url!r}: start(port) '
                'must return an http(s) URL or an absolute path'
            )
    except BaseException as exc:
        await close_tunnel(launcher)
        if isinstance(exc, JChannelError) or not isinstance(exc, Exception):
            raise
        raise TunnelError(f'the tunnel launcher {launcher!r} failed to start: {exc}') from exc
    return url.rstrip('/')


async def close_tunnel(launcher: Launcher) -> None:
    """Stop ``launcher``; an error it raises is logged, not propagated."""
    try:
        result = launcher.stop()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.warning('the tunnel launcher %r failed to stop', launcher, exc_info=True)
