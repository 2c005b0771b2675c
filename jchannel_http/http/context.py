"""What every handler finds in its application: the kernel endpoint and the adapter's state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from ..kernel.endpoint import Endpoint
from .connections import ConnectionGuard
from .query_form import PartAssembly
from .replies import HttpError


class InFlight:
    """Counts the authenticated requests being handled and refuses those beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots while the request is handled, or raise a 429."""
        if self.count >= self.limit:
            raise HttpError(
                429,
                'too_many_requests',
                f'{self.limit} requests are in flight already (the max_requests '
                'option); retry later',
                headers={'Retry-After': '1'},
            )
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1


@dataclass(frozen=True)
class Access:
    """Who may use the server: the token, and the bounds on its connections."""

    token: str
    connections: ConnectionGuard


ENDPOINT = web.AppKey('endpoint', Endpoint)
ACCESS = web.AppKey('access', Access)
IN_FLIGHT = web.AppKey('in_flight', InFlight)
PARTS = web.AppKey('parts', PartAssembly)
