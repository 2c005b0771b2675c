"""Loopback ports for the servers the tests start.

The kernel picks the port: a socket is bound to port 0. Where the server can take that socket
(``aiohttp.web.SockSite``, ``asyncio.start_server(sock=...)``), ``listening_socket`` hands it over
and no other process can take the port in between. The proxies of ``support.proxies`` and
``jchannel_http.Server`` bind port 0 themselves, which is as good: start the proxy first, give the
server its URL, then point the proxy at the server.

Where the server can only be told a number before it starts (nginx, a Jupyter server, a kernel
server whose URL must name its own port, the predecessor's ``start(port=...)``), ``free_port``
returns a port that was free a moment ago: another process may bind it before the server does.
Keep the gap short (start the server right after) and prefer the two ways above.

``refused_port`` is a port where connections are refused for as long as it is held, with no race:
the socket is bound but does not listen, so nobody else can bind it meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Iterator

LOOPBACK = '127.0.0.1'


def listening_socket(host: str = LOOPBACK, backlog: int = 128) -> socket.socket:
    """A socket listening on a port the kernel chose, for a server that accepts a socket."""
    sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    try:
        sock.bind((host, 0))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now, for a server that can only be given a number.

    Check-then-use: the port is released before it is returned, so another process may take it
    before the server binds it (see the module's docstring for the race-free ways)."""
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing holds ``port`` on ``host`` (a server that stopped has let it go)."""
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def refused_port(host: str = LOOPBACK) -> Iterator[int]:
    """A port that refuses connections while the block runs: bound, never listening, so no other
    process can take it meanwhile."""
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as held:
        held.bind((host, 0))
        yield held.getsockname()[1]
