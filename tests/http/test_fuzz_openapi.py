"""Schemathesis against /openapi.json of a real server, with the token and without it.

Every documented operation gets generated requests, valid and invalid ones: no answer may be a
5xx, and every answer must be one the description allows (status, content type, body schema,
headers). Without the token every authenticated operation must answer 401.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import jchannel_http

TOKEN = 'fuzz-token-0123456789abcdef'
EXAMPLES = 25  # per operation and run; without the token every answer is the same 401
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class Handler:
    def multiply(self, a, b):
        return a * b


class ServerThread:
    """A kernel server running in its own thread and event loop, for synchronous tests."""

    def __init__(self, **options) -> None:
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.server: jchannel_http.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> jchannel_http.Server:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self.server

    async def _start(self) -> jchannel_http.Server:
        server = jchannel_http.Server(token=TOKEN, **self.options)
        await server.start()
        channel = jchannel_http.Channel(server, '(channel) => {}', name='math')
        channel.handler = Handler()
        return server

    async def _stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope='module')
def live_server() -> Iterator[jchannel_http.Server]:
    # Long heartbeats keep a page client live, so that most generated /events requests meet a
    # 409 instead of opening streams; short holds keep long-polls and streams brief.
    with ServerThread(heartbeat=30, poll_hold=0.2, stream_max_age=1) as server:
        yield server


@pytest.fixture(scope='module')
def api_schema(live_server):
    schema = schemathesis.openapi.from_url(f'{live_server.url}/openapi.json')
    schema.config.max_stream_events = 1  # an event stream's hello is enough
    schema.config.request_timeout = 10
    schema.config.generation.database = 'none'
    # 410 is how the server refuses a request naming no session or another one
    schema.config.checks.negative_data_rejection.expected_statuses += ['410']
    return schema


schema = schemathesis.pytest.from_fixture('api_schema')


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


def _without_credentials(case) -> None:
    if case.headers:
        case.headers = {
            name: value for name, value in case.headers.items() if name.lower() != 'authorization'
        }
    if case.query:
        case.query = {name: value for name, value in case.query.items() if name != 'token'}


def _public(case) -> bool:
    return case.operation.definition.raw.get('security') == []


@schema.parametrize()
@fuzz_settings(EXAMPLES)
def test_with_the_token_every_answer_is_documented(case, live_server) -> None:
    _without_credentials(case)
    case.headers = {**(case.headers or {}), 'Authorization': f'Bearer {TOKEN}'}
    response = case.call(base_url=live_server.url)
    case.validate_response(response, checks=[*CONFORMANCE, negative_data_rejection])
    assert response.status_code < 500


@schema.parametrize()
@fuzz_settings(EXAMPLES // 3)
def test_without_the_token_only_public_files_answer(case, live_server) -> None:
    _without_credentials(case)
    response = case.call(base_url=live_server.url)
    case.validate_response(response, checks=CONFORMANCE)
    if case.method == 'OPTIONS':  # a CORS preflight needs no token
        assert response.status_code == 204
    elif _public(case):
        if case.method == case.operation.method.upper():  # 200, or 204 for /favicon.ico
            assert response.status_code in (200, 204), response.text
        else:
            assert response.status_code == 405, response.text
    else:  # whatever the method, path or parameters
        assert response.status_code == 401, response.text
        assert response.json()['error'] == 'unauthorized'
    assert TOKEN not in response.text
