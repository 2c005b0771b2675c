"""Which page client may talk to the server: one at a time, with takeover after silence.

Pure bookkeeping with the clock passed in, so the rules are tested without waiting.
"""

from __future__ import annotations

import enum

from ..errors import JChannelError
from .wire import CLIENT_ID, check_client_id

__all__ = ['CLIENT_ID', 'Admission', 'ClientConflict', 'ClientGate', 'check_client_id']


class ClientConflict(JChannelError):
    """Another page client is live (answered with HTTP 409)."""


class Admission(enum.Enum):
    """How a request's client relates to the current one."""

    FIRST = 'first'
    """No client was ever connected: this one adopts the current session."""
    SAME = 'same'
    """The current client again."""
    TAKEOVER = 'takeover'
    """A new client replaces one that went silent or released the server: new session."""


class ClientGate:
    """Tracks the current client, its open streams and when it was last heard from."""

    def __init__(self, liveness: float) -> None:
        self.liveness = liveness
        self.current: str | None = None
        self.transport: str | None = None
        self.send_method: str | None = None
        """How the current client sent its latest frames: 'post' or 'get'."""
        self._streams = 0
        self._last_seen = 0.0
        self._released = False

    def is_live(self, now: float) -> bool:
        """Whether the current client has an open stream or was heard from recently."""
        if self.current is None or self._released:
            return False
        return self._streams > 0 or now - self._last_seen <= self.liveness

    def admit(self, client: str, now: float) -> Admission:
        """Let ``client`` in, or raise ClientConflict while another client is live."""
        if client == self.current:
            admission = Admission.SAME
        elif self.current is None:
            admission = Admission.FIRST
        elif self.is_live(now):
            raise ClientConflict(
                'another page is connected to this server; close it, or wait until it has been '
                f'silent for {self.liveness:g} s'
            )
        else:
            admission = Admission.TAKEOVER
            self._streams = 0
            self.transport = None
            self.send_method = None
        self.current = client
        self._released = False
        self._last_seen = now
        return admission

    def touch(self, client: str, now: float) -> None:
        """Note activity of ``client`` (only the current client counts)."""
        if client == self.current:
            self._last_seen = now

    def sent(self, client: str, method: str) -> None:
        """``client`` sent frames with ``method`` ('post' or 'get')."""
        if client == self.current:
            self.send_method = method

    def stream_opened(self, client: str, transport: str) -> None:
        """``client`` opened a stream of kind ``transport``."""
        if client == self.current:
            self._streams += 1
            self.transport = transport

    def stream_closed(self, client: str, now: float) -> None:
        """A stream of ``client`` ended."""
        if client == self.current and self._streams > 0:
            self._streams -= 1
            self._last_seen = now

    def release(self, client: str) -> bool:
        """``client`` says it is going away; return whether it was the current one."""
        if client != self.current:
            return False
        self._released = True
        return True

    @property
    def streams(self) -> int:
        """Open streams of the current client."""
        return self._streams
