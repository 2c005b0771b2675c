"""The shapes of the adapter's answers: JSON bodies, frames carried in JSON, and HttpError, the
one error every handler raises (the ``guard`` middleware in app.py writes it)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..protocol.delivery import with_frames
from ..protocol.session import Entry
from ..values import dumps, loads

NO_STORE = {'Cache-Control': 'no-store, no-transform'}


class HttpError(Exception):
    """An error answered as JSON ``{"error": code, "message": ..., **extra}`` with a status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body = {'error': code, 'message': message, **extra}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response encoded by orjson."""
    return web.Response(
        body=dumps(data), status=status, content_type='application/json', headers=headers
    )


def frames_response(fields: dict[str, Any], entries: list[Entry]) -> web.Response:
    """The answer of a poll, or of a POST that carries frames back (never cached)."""
    return web.Response(
        body=with_frames(dumps(fields), entries), content_type='application/json', headers=NO_STORE
    )


def parse_json(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON, or a 400 naming ``what`` it is."""
    try:
        return loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, 'bad_request', f'{what} is not valid JSON: {exc}') from exc


async def read_json(request: web.Request, empty: Any = None) -> Any:
    """The request body parsed as JSON (``empty`` for an empty body), or a 400."""
    body = await request.read()
    if not body and empty is not None:
        return empty
    return parse_json(body, 'the body')
