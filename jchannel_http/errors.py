"""The exceptions jchannel_http raises.

::

    JChannelError                 base of everything below
    ├── StateError                no page client, a page gone, a stopped server
    │   ├── ResyncError           a peer asked to resume from a point no longer held
    │   └── ListenError           the server cannot listen (port in use): also an OSError
    ├── FrontendError             a JavaScript exception raised in the page
    ├── ProtocolError             a peer sent something the protocol does not allow
    └── TunnelError               a tunnel could not be started: what is missing and how to fix it

Low-level errors (aiohttp, orjson, subprocess) are translated into these at the boundary,
keeping the original as ``__cause__``.
"""

from __future__ import annotations

import errno
import os


class JChannelError(Exception):
    """Base class of every jchannel_http exception."""


class StateError(JChannelError):
    """The operation cannot happen in the current state.

    Raised when no page client is connected within a call's ``timeout``, when the server is
    stopped, or when the page that was running a call went away (a call on a closed channel
    opens it again instead, as in jupyter-jchannel).
    """


class ResyncError(StateError):
    """A peer asked to resume from a point this side no longer holds.

    Both sides fail their waiting calls and the page starts a new session: nothing is lost
    silently.
    """


class ListenError(StateError, OSError):
    """The server cannot listen on its host and port (the port is in use, the host is not one of
    this machine's addresses, ...).

    Both ``except OSError`` and ``except StateError`` catch it; ``errno`` is the system's, the
    message names the address and what to do.
    """

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        address = f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
        if cause.errno == errno.EADDRINUSE:
            advice = (
                f'port {port} is in use (by another program, or the server of another '
                'kernel): stop that one, or start with another port= (port=0 picks a '
                'free one)'
            )
        elif cause.errno == errno.EADDRNOTAVAIL or (cause.errno or 0) < 0:
            # not an address here, or (a negative errno: socket.gaierror) a name not resolved
            advice = (
                f'{host} is not an address of this machine: give host= one of its '
                "addresses ('127.0.0.1', or '0.0.0.0' for all)"
            )
        elif cause.errno == errno.EACCES:
            advice = (
                f'port {port} needs privileges: start with a port above 1023 (port=0 '
                'picks a free one)'
            )
        else:
            advice = 'check host= and port='
        # asyncio's strerror repeats the address: the system's words for errno say it shorter
        code = cause.errno
        reason = (
            os.strerror(code)
            if code is not None and code in errno.errorcode
            else (cause.strerror or str(cause))
        )
        StateError.__init__(self, f'cannot listen on {address}: {reason}; {advice}')
        self.errno = cause.errno
        self.strerror = reason
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.args[0])  # the message, not OSError's "[Errno N] strerror"


class ProtocolError(JChannelError):
    """A peer sent something the wire protocol does not allow (answered with HTTP 400)."""


class FrontendError(JChannelError):
    """A JavaScript exception raised in the page.

    ``type`` is the JavaScript error's name (``TypeError``, ``Error``, ...) and ``detail`` its
    message; ``str()`` gives ``"type: detail"``.
    """

    def __init__(self, type: str, detail: str) -> None:
        super().__init__(f'{type}: {detail}')
        self.type = type
        self.detail = detail


class TunnelError(JChannelError):
    """A tunnel (``start(tunnel=...)``) could not be started or gave no usable URL.

    The message says what is missing and how to fix it (a binary to install, a variable to set,
    an address that did not answer in time). Nothing the tunnel started is left running.
    """
