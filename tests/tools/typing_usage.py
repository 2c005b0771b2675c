"""User code of the public API, checked by ``mypy --strict`` in test_typing.py (never run).

Each ``assert_type`` fails the check if the expression's type is not exactly the one named: a
public method that went back to returning ``Any`` (or a bare ``asyncio.Task``) is caught here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from typing_extensions import assert_type

import jchannel_http
from jchannel_http import (
    Channel,
    FrontendError,
    JChannelError,
    MetaGenerator,
    Progress,
    Server,
    Source,
    StateError,
)
from jchannel_http.types import ByteStream, CallResult, JsonValue


async def chunks() -> AsyncIterator[bytes]:
    yield b'abc'


def on_progress(progress: Progress) -> None:
    print(progress)


async def server_side() -> None:
    server = await jchannel_http.start(port=0, heartbeat=5)
    assert_type(server, Server)
    assert_type(server.start(), asyncio.Task[None])
    assert_type(server.stop(), asyncio.Task[None])
    assert_type(server.url, str)
    assert_type(server.page_url, str)
    assert_type(server.token, str)
    assert_type(server.port, int)
    assert_type(server.running, bool)
    assert_type(server.max_msg_size, int)
    assert_type(server.send_timeout, float | None)
    assert_type(server.channel('plots'), Channel | None)
    assert_type(server.client_options(), dict[str, Any])
    channel = await server.open('(channel) => 1', timeout=None, name='plots')
    assert_type(channel, Channel)
    async with Server() as other:
        assert_type(other, Server)
    await server.stop()


async def channel_side(channel: Channel) -> None:
    assert_type(channel.open(), asyncio.Task[CallResult])
    assert_type(channel.close(), asyncio.Task[None])
    assert_type(channel.call('add', 1, 2.5, 'x', [1, {'a': None}]), asyncio.Task[CallResult])
    assert_type(channel.echo(1, 'two'), asyncio.Task[list[JsonValue]])
    assert_type(
        channel.call_with_stream('upload', chunks(), total=3, progress=on_progress),
        asyncio.Task[CallResult],
    )
    assert_type(channel.pipe(Source(chunks(), total=3)), asyncio.Task[MetaGenerator])
    assert_type(channel.is_open, bool)
    assert_type(channel.handler, object)
    async with channel as same:
        assert_type(same, Channel)

    result = await channel.call('add', 1, 2)
    assert_type(result, CallResult)
    if isinstance(result, MetaGenerator):
        assert_type(await result.join(), bytes)
    elif isinstance(result, int):
        assert_type(result + 1, int)
    else:
        assert_type(result, float | str | list[JsonValue] | dict[str, JsonValue] | None)

    try:
        await asyncio.wait_for(channel.call('fail', deadline=1.0), 2)
    except FrontendError as error:
        assert_type(error.type, str)
        assert_type(error.detail, str)
    except StateError as error:
        assert_type(error, StateError)
    except JChannelError:
        pass


async def stream_side(stream: MetaGenerator) -> None:
    source: ByteStream = stream  # a received stream can be sent on
    assert_type(source, ByteStream)
    assert_type(stream.total, int | None)
    assert_type(stream.received, int)
    assert_type(await stream.__anext__(), bytes)
    async for chunk in stream:
        assert_type(chunk, bytes)
    assert_type(stream.by_limit(4), AsyncGenerator[bytes, None])
    assert_type(stream.by_separator('\n'), AsyncGenerator[bytes, None])
    stream.on_progress = on_progress
    await stream.aclose()
