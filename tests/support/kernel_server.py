"""A real kernel server on a free loopback port, and an HTTP session holding its token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

import jchannel_http

TOKEN = 'test-token-0123456789'
"""The token of the ``server`` fixture, sent by the ``http`` fixture."""


@pytest.fixture
async def server() -> AsyncIterator[jchannel_http.Server]:
    server = jchannel_http.Server(token=TOKEN, heartbeat=1)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={'Authorization': f'Bearer {TOKEN}'}) as session:
        yield session
