"""Requests that need no page: ``POST /channels/{channel}/call/{method}`` and ``GET /status``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..kernel.rpc import MissingMethod, invoke
from ..values import encode_checked
from .context import ENDPOINT
from .replies import HttpError, json_response, read_json

log = logging.getLogger('jchannel_http')


async def direct_call(request: web.Request) -> web.Response:
    """POST /channels/{channel}/call/{method}: call a handler method without a page."""
    endpoint = request.app[ENDPOINT]
    channel = endpoint.channel(request.match_info['channel'])
    if channel is None:
        raise HttpError(404, 'not_found', f'no channel {request.match_info["channel"]!r}')
    args = await read_json(request, empty=[])
    if not isinstance(args, list):
        raise HttpError(400, 'bad_request', 'the body must be a JSON array of arguments')
    method = request.match_info['method']
    try:
        result = await invoke(channel.handler, method, args, endpoint.rpc.handler_loop)
        return web.Response(
            body=encode_checked({'result': result}, {'result': result}),
            content_type='application/json',
        )
    except MissingMethod as exc:
        raise HttpError(404, 'not_found', str(exc)) from exc
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit end only this call
        if not isinstance(exc, TypeError):
            log.warning(
                'handler method %r of channel %s raised %s (called over HTTP)',
                method,
                channel.name or channel.key,
                type(exc).__name__,
                exc_info=exc,
            )
        error = endpoint.rpc.error_frame(0, exc)
        raise HttpError(422, 'handler_error', error.message, name=error.name) from exc


async def status(request: web.Request) -> web.Response:
    """GET /status."""
    return json_response(request.app[ENDPOINT].status())
