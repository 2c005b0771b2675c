"""The exceptions jchannel_http raises.

::

    JChannelError                 base of everything below
    ├── StateError                no page client, a page gone, a stopped server
    │   └── ResyncError           a peer asked to resume from a point no longer held
    ├── FrontendError             a JavaScript exception raised in the page
    ├── ProtocolError             a peer sent something the protocol does not allow
    └── TunnelError               a tunnel could not be started: what is missing and how to fix it

Low-level errors (aiohttp, orjson, subprocess) are translated into these at the boundary,
keeping the original as ``__cause__``.
"""

from __future__ import annotations


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
