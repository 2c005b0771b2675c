"""Bounds on TCP connections, with raw sockets: head deadline, unauthenticated cap, body deadline,
keep-alive deadline."""

from __future__ import annotations

import asyncio
import time

import jchannel_http

TOKEN = 'test-token-0123456789'


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closed the connection (reading and dropping what it sends)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(65536), seconds):
        pass
    return time.monotonic() - started


async def ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: str, timeout: float = 2
) -> bytes:
    """Send a request head and return its answer's status line (reading the whole answer)."""
    writer.write(head.encode())
    status = await asyncio.wait_for(reader.readline(), timeout)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), timeout)) not in (b'\r\n', b''):
        name, _, value = line.decode().partition(':')
        if name.lower() == 'content-length':
            length = int(value)
    await asyncio.wait_for(reader.readexactly(length), timeout)
    return status


STATUS = f'GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n'


async def is_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Whether the server still keeps the connection (a request on it is answered)."""
    try:
        writer.write(b'GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n')
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2)
    except (ConnectionError, asyncio.TimeoutError):
        return False
    return line.startswith(b'HTTP/1.1 204')


async def test_a_connection_without_a_complete_head_is_closed_after_head_timeout() -> None:
    async with jchannel_http.Server(token=TOKEN, head_timeout=0.6) as server:
        silent = await asyncio.open_connection('127.0.0.1', server.port)
        partial = await asyncio.open_connection('127.0.0.1', server.port)
        partial[1].write(b'GET /status HTTP/1.1\r\nHost: x\r\n')  # the head never ends
        prompt = await asyncio.open_connection('127.0.0.1', server.port)
        assert await is_open(*prompt)
        assert await closed_within(silent[0], 5) < 2
        assert await closed_within(partial[0], 5) < 2
        # a connection that answered a request and then trickles a new head is closed too
        started = time.monotonic()
        prompt[1].write(b'GET /sta')
        assert await closed_within(prompt[0], 5) < 2
        assert time.monotonic() - started > 0.5
        assert server.connections.closed_by_guard == 3
        for _, writer in (silent, partial, prompt):
            writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() -> None:
    async with jchannel_http.Server(token=TOKEN, keepalive_timeout=1, head_timeout=30) as server:
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        assert await is_open(reader, writer)
        assert 0.5 < await closed_within(reader, 5) < 3
        writer.close()


async def test_beyond_max_unauthenticated_the_oldest_idle_ones_are_closed() -> None:
    async with jchannel_http.Server(token=TOKEN, max_unauthenticated=5, head_timeout=30) as server:
        authed = await asyncio.open_connection('127.0.0.1', server.port)
        assert b' 200 ' in await ask(*authed, STATUS)
        idle = []
        for _ in range(8):
            idle.append(await asyncio.open_connection('127.0.0.1', server.port))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        for reader, _ in idle[:3]:
            assert await closed_within(reader, 2) < 2  # the three oldest
        assert [await is_open(*pair) for pair in idle[3:]] == [True] * 5
        assert server.connections.status()['unauthenticated'] == 5
        # the connection that showed the token was never counted
        assert b' 200 ' in await ask(*authed, STATUS)
        for _, writer in [authed, *idle]:
            writer.close()


async def test_a_body_that_never_completes_is_answered_408_and_frees_its_slot() -> None:
    async with jchannel_http.Server(
        token=TOKEN, body_timeout=0.5, max_requests=2, head_timeout=30
    ) as server:
        stuck = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
            writer.write(
                f'POST /messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}'
                '\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"cl'.encode()
            )
            stuck.append((reader, writer))
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        assert b' 429 ' in await ask(reader, writer, STATUS)  # both slots are held
        started = time.monotonic()
        for stuck_reader, _ in stuck:
            line = await asyncio.wait_for(stuck_reader.readline(), 3)
            assert b'408' in line
        assert time.monotonic() - started < 1.5
        assert b' 200 ' in await ask(reader, writer, STATUS)
        for _, stuck_writer in [*stuck, (reader, writer)]:
            stuck_writer.close()


async def test_a_slow_body_that_completes_in_time_is_handled() -> None:
    async with jchannel_http.Server(token=TOKEN, body_timeout=2) as server:
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        body = b'[1, 2]'
        writer.write(
            f'POST /channels/none/call/m HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
            f'{TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n'.encode()
        )
        for byte in body:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
        assert b'404' in await asyncio.wait_for(reader.readline(), 2)  # no such channel
        writer.close()
