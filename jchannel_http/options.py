"""Every bound of the server, in one place, with its default.

``start(**options)`` and ``Server(**options)`` accept these names; README.md lists them in one
table. Unknown names are refused with a TypeError that lists the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    """Tunable bounds. Times are in seconds, sizes in bytes."""

    heartbeat: float = 15.0
    """Seconds between ``: ping`` comments on an idle event stream. A page client that has been
    silent for two heartbeats may be replaced by another."""

    outbox_messages: int = 10_000
    """Most frames the kernel keeps unacknowledged; senders wait beyond it."""

    outbox_bytes: int = 32 * MiB
    """Most encoded bytes the kernel keeps unacknowledged; senders wait beyond it."""

    max_ahead: int = 10_000
    """Most out-of-order frames held while waiting for a gap to be filled."""

    max_body: int = 1 * MiB
    """Largest request body accepted (413 beyond); the page keeps its batches under it."""

    stream_padding: int = 2048
    """Bytes of comment after the first event, so size-threshold buffers pass it on."""

    allow_origins: tuple[str, ...] | None = None
    """Origins whose pages may call the server; ``None`` allows any (the token is still needed)."""

    debug: bool = False
    """Send Python tracebacks to the page with errors."""

    def __post_init__(self) -> None:
        if self.heartbeat <= 0:
            raise ValueError('heartbeat must be a positive number of seconds')
        for name in ('outbox_messages', 'outbox_bytes', 'max_ahead', 'max_body'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be a positive integer')
        if self.stream_padding < 0:
            raise ValueError('stream_padding cannot be negative')
        if self.allow_origins is not None:
            object.__setattr__(self, 'allow_origins', tuple(self.allow_origins))

    @property
    def liveness(self) -> float:
        """Seconds of silence after which a page client counts as gone."""
        return 2 * self.heartbeat

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> 'Options':
        """Build options from keyword arguments, refusing unknown names clearly."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f'unknown option(s) {unknown}; known options are {sorted(known)}')
        return cls(**kwargs)

