"""What page -> kernel streams hold: ``stream_buffer`` per stream, whatever the chunks' overlaps,
and ``streams_buffer`` for all streams together; over raw HTTP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from test_stream_http import chunk, page  # type: ignore[import-not-found]  # a sibling module, on sys.path by pytest (a folder of its own in mypy_path would name each conftest twice)

import jchannel_http
from jchannel_http.protocol.streams import Reassembly

TOKEN = 'test-token-0123456789'
KiB = 1024
MiB = 1024 * KiB


@pytest.fixture
async def auth() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={'Authorization': f'Bearer {TOKEN}'}) as session:
        yield session


def test_overlapping_chunks_are_kept_once() -> None:
    core = Reassembly(window=8 * MiB)
    data = random.Random(3).randbytes(2 * MiB)
    for offset in range(1, 201):
        assert core.put(offset, data[offset : offset + 512 * KiB])
    assert core.held == 512 * KiB + 199
    pieces = list(range(0, 2 * MiB, 1000))
    random.Random(4).shuffle(pieces)
    for offset in pieces:  # re-split and overlapping in every way, in any order
        assert core.put(offset, data[offset : offset + 3000])
        assert core.held <= 2 * MiB
    out = b''.join(iter(core.take, None))
    assert out == data and core.held == 0


async def test_overlapping_chunks_of_one_upload_stay_within_stream_buffer(auth) -> None:
    async with jchannel_http.Server(token=TOKEN, heartbeat=0.3, stream_buffer=8 * MiB) as server:
        response, _, session = await page(auth, server)
        try:
            data = random.Random(5).randbytes(512 * KiB + 200)
            for offset in range(1, 201):
                status, answer = await chunk(
                    auth, server, session, 1, offset, data[offset : offset + 512 * KiB]
                )
                assert status == 200 and answer['stored']
            stream = server.streams.uploads[1]
            assert stream.core.held == 512 * KiB + 199  # not 200 x 512 KiB
            assert server.streams.upload_budget.held == stream.core.held
            assert server.streams.status()['held_bytes'] <= 8 * MiB
            await chunk(auth, server, session, 1, 0, data[:1], end=False)
            got = b''
            while len(got) < 512 * KiB + 200:
                piece = await stream.next_chunk()
                assert piece is not None
                got += piece
            assert got == data[: len(got)]
            assert server.streams.upload_budget.held == 0
        finally:
            response.close()


async def test_streams_together_stay_within_streams_buffer(auth) -> None:
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=0.3, stream_buffer=4 * MiB, streams_buffer=6 * MiB
    ) as server:
        response, _, session = await page(auth, server)
        try:
            piece = bytes(512 * KiB)
            stored = {}
            for key in (1, 2, 3, 4):
                stored[key] = 0
                for index in range(8):  # 4 MiB each: a full stream_buffer
                    status, answer = await chunk(
                        auth, server, session, key, index * len(piece), piece
                    )
                    assert status == 200
                    if not answer['stored']:
                        break
                    stored[key] += len(piece)
            held = server.streams.status()['held_bytes']
            # one chunk more than the total for each stream whose consumer waits for it
            assert held <= 6 * MiB + 4 * len(piece)
            assert held == server.streams.upload_budget.held
            assert stored[1] == 4 * MiB and stored[4] == 512 * KiB
            # a refused chunk is stored once the consumer of another stream took bytes
            waiting = asyncio.ensure_future(chunk(auth, server, session, 4, 512 * KiB, piece))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            assert held == 7 * MiB  # 4 + 2, then 512 KiB for streams 3 and 4
            for _ in range(3):
                await server.streams.uploads[1].next_chunk()
            status, answer = await asyncio.wait_for(waiting, 2)
            assert answer['stored']
        finally:
            response.close()
