"""Waiting until a tunnel's address reaches this kind of server, and a free local port."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import orjson

from ..errors import TunnelError
from ..protocol.wire import SERVER_TITLE

PROBE_INTERVAL = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        port: int = probe.getsockname()[1]
        return port


def probe_session() -> aiohttp.ClientSession:
    """A client session for probes, trusting what OpenSSL trusts now (SSL_CERT_FILE too)."""
    connector = aiohttp.TCPConnector(
        ssl=ssl.create_default_context(), ttl_dns_cache=None, use_dns_cache=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=5, sock_connect=3),
        headers={'ngrok-skip-browser-warning': '1'},
    )


async def wait_until_answers(
    http: aiohttp.ClientSession, url: str, deadline: float, timeout: float, what: str
) -> None:
    """Return once ``url/openapi.json`` is this kind of server's; TunnelError at ``deadline``."""
    loop = asyncio.get_running_loop()
    last = 'no answer yet'
    while True:
        try:
            async with http.get(f'{url}/openapi.json') as response:
                body = await response.read()
                if response.status == 200 and is_description(body):
                    return
                last = f'HTTP {response.status} {response.content_type}'
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last = f'{type(exc).__name__}: {exc}'
        if loop.time() >= deadline:
            raise TunnelError(
                f'{what} at {url} did not reach this server within {timeout:g} s '
                f'(last attempt: {last}); raise tunnel_timeout, or run '
                f'python -m jchannel_http doctor {url} to see where it breaks'
            )
        await asyncio.sleep(PROBE_INTERVAL)


def is_description(body: bytes) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get('info', {}).get('title') == SERVER_TITLE
