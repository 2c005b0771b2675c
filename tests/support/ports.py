"""Loopback ports for the servers the tests start.

Race-free first: a server that binds port 0 itself and reports the port it got
(``jchannel_http.Server`` by default, ``aiohttp.web.TCPSite(..., 0)``,
``asyncio.start_server(..., 0)``, the proxies of ``support.proxies``) needs nothing from here.
When a proxy in front of a kernel server needs the server's port and the server the proxy's URL,
start the proxy first on port 0, give the server ``proxy.url``, then set ``proxy.target``.

``free_port`` is for a server that can only be told a number before it starts (nginx, a Jupyter
server, a kernel server whose URL must name its own port, the predecessor's
``start(port=...)``): check-then-use, the port was free a moment ago and another process may bind
it before the server does. Keep the gap short (start the server right after).

``refused_port`` is a port where connections are refused for as long as it is held, with no race:
the socket is bound but does not listen, so nobody else can bind it meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

LOOPBACK = '127.0.0.1'


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now, for a server that can only be given a number.

    Check-then-use: the port is released before it is returned, so another process may take it
    before the server binds it (see the module's docstring for the race-free ways)."""
    with socket.socket(_family(host)) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def refused_port(host: str = LOOPBACK) -> Iterator[int]:
    """A port that refuses connections while the block runs: bound, never listening, so no other
    process can take it meanwhile."""
    with socket.socket(_family(host)) as held:
        held.bind((host, 0))
        yield held.getsockname()[1]
