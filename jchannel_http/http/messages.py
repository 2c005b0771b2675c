"""Page -> kernel frames over HTTP: ``POST /messages``, its ``GET`` form, and ``/release``.

Each handler reads and checks its request, then calls the kernel endpoint once: take the batch
(acknowledgement, inbox, dispatch), and, when the page asks (``"carry": true``), the frames to
carry back in the answer (see protocol/delivery.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import ProtocolError
from ..protocol import wire
from ..protocol.frames import Call, Echo, Error, Pipe, Result, decode_item
from .context import ENDPOINT, PARTS
from .events import answer_bytes
from .query_form import decode_base64url
from .replies import NO_STORE, frames_response, json_response, parse_json, read_json

FROM_PAGE = (Call, Echo, Pipe, Result, Error)
POST_FIELDS = {'client', 'session', 'ack', 'messages', 'carry'}


def _parse_post(body: Any) -> tuple[str, str, int, list[Any], bool]:
    if not isinstance(body, dict):
        raise ProtocolError('the body must be a JSON object')
    unknown = set(body) - POST_FIELDS
    if unknown:
        raise ProtocolError(f'unknown field(s) {sorted(unknown)}; expected {sorted(POST_FIELDS)}')
    client = wire.check_client_id(body.get('client'))
    session = body.get('session')
    if not isinstance(session, str):
        raise ProtocolError(f"field 'session' must be {wire.SESSION_REQUIRED}")
    ack = body.get('ack', 0)
    if not isinstance(ack, int) or isinstance(ack, bool) or ack < 0:
        raise ProtocolError("field 'ack' must be a non-negative integer")
    messages = body.get('messages', [])
    if not isinstance(messages, list):
        raise ProtocolError("field 'messages' must be a JSON array")
    carry = body.get('carry', False)
    if not isinstance(carry, bool):
        raise ProtocolError("field 'carry' must be true or false")
    return client, session, ack, messages, carry


async def messages(request: web.Request) -> web.Response:
    """POST /messages: frames and acknowledgements from the page; with ``carry``, the answer
    also carries kernel frames after ``ack``."""
    client, session, ack, raw, carry = _parse_post(await read_json(request))
    return await _take_batch(request, client, session, ack, raw, carry, wire.SEND_POST)


async def messages_by_get(request: web.Request) -> web.Response:
    """GET /messages: the same batch in the query, for paths that refuse POST (see
    query_form.py). The answer always carries frames, except that of a batch's non-final part,
    which is ``{"ack": ..., "have": <characters held>}``."""
    endpoint = request.app[ENDPOINT]
    query = request.query
    client = wire.check_client_id(query.get('client'))
    session = query.get('session')
    if not session:
        raise ProtocolError(f"'session' must be {wire.SESSION_REQUIRED}")
    ack = wire.sequence_number(query.get('ack'), 'ack')
    if 'messages' in query:
        text = query['messages']
    else:
        endpoint.join(client, session)
        assembly = request.app[PARTS]
        whole = assembly.add((client, session), query)
        if whole is None:
            cursor = endpoint.acknowledge(client, ack, wire.SEND_GET)
            return json_response({'ack': cursor, 'have': assembly.have}, headers=NO_STORE)
        text = whole
    raw = parse_json(decode_base64url(text, 'messages'), 'the batch')
    if not isinstance(raw, list):
        raise ProtocolError('messages must encode a JSON array of frames')
    return await _take_batch(request, client, session, ack, raw, True, wire.SEND_GET)


async def _take_batch(
    request: web.Request,
    client: str,
    session: str,
    ack: int,
    raw: list[Any],
    carry: bool,
    method: str,
) -> web.Response:
    endpoint = request.app[ENDPOINT]
    limit = answer_bytes(endpoint.options, request.query.get('bytes'))
    # An item that is not a valid frame keeps its place in the sequence and fails only its own
    # call (kernel/rpc.py); only an item without a usable sequence number refuses the batch.
    frames = [decode_item(item, FROM_PAGE) for item in raw]
    answer = {'ack': endpoint.take_batch(client, session, ack, frames, method)}
    if not carry:
        return json_response(answer)
    return frames_response(answer, await endpoint.carry(ack, limit))


async def release(request: web.Request) -> web.Response:
    """POST (or GET) /release: the page is going away; another may take over at once."""
    client = wire.check_client_id(request.query.get('client'))
    return json_response({'released': request.app[ENDPOINT].release(client)}, headers=NO_STORE)
