"""The OpenAPI 3 description served at ``GET /openapi.json`` (see docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..protocol import wire
from ..protocol.frames import MAX_INTEGER, TYPES

PUBLIC_PATHS = frozenset({'/client.js', '/openapi.json', '/page', '/favicon.ico'})
"""The paths served without the token (static content, no data). The guard in app.py lets
exactly these through; every operation below on one of them says ``security: []``."""

_ERROR = {'$ref': '#/components/schemas/Error'}
_CURSOR = {'type': 'string', 'pattern': '^[0-9]{0,16}$'}
_CLIENT = {
    'name': 'client',
    'in': 'query',
    'required': True,
    'schema': {'type': 'string', 'pattern': f'^{wire.CLIENT_ID_PATTERN}$'},
    'description': 'The page client id.',
}


def _errors(*statuses: int) -> dict[str, Any]:
    """Error responses; an endpoint that needs the token (401) also has 403, 429 and 503."""
    if 401 in statuses:
        statuses += (403, 429, 503)
    reasons = {
        400: 'Malformed request: the message names the problem.',
        401: 'The token is missing or wrong.',
        403: 'The Origin header names an origin that allow_origins does not list '
        '(forbidden_origin): the message gives the allow_origins that would let it in, '
        'and the answer carries Access-Control-Allow-Origin so that its page can read it.',
        404: 'Unknown channel, method or stream.',
        409: 'Another page client is live.',
        410: 'Resync: the session is over or the cursor cannot be served; start a new session.',
        413: 'The body is larger than max_body.',
        422: 'The handler method raised an exception.',
        429: 'More than max_requests requests are in flight; retry after Retry-After seconds.',
        503: 'The server is stopping.',
    }
    return {
        str(status): {
            'description': reasons[status],
            'content': {'application/json': {'schema': _ERROR}},
        }
        for status in statuses
    }


EVENT = {
    'type': 'object',
    'required': ['data'],
    'properties': {
        'event': {'type': 'string', 'enum': ['hello']},
        'id': {'type': 'string', 'pattern': '^[0-9]+$'},
        'data': {'type': 'string'},
    },
    'description': 'One event: first "hello", whose data is JSON with session, cursor, ack, '
    'heartbeat, max_body and max_url; then one per frame, whose id is its seq '
    'and whose '
    'data is the frame as JSON.',
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {'description': description, 'content': {'application/json': {'schema': schema}}}


FRAME: dict[str, Any] = {
    'type': 'object',
    'required': ['seq', 'type'],
    'properties': {
        'seq': {'type': 'integer', 'minimum': 1, 'maximum': MAX_INTEGER},
        'type': {'type': 'string', 'enum': list(TYPES)},
        'call': {'type': 'integer', 'minimum': 1, 'maximum': MAX_INTEGER},
        'channel': {'type': 'integer', 'minimum': 1, 'maximum': MAX_INTEGER},
        'code': {
            'type': 'string',
            'description': 'open: JavaScript source of a function (channel) => ..., one '
            'expression or a script whose completion value is the function; '
            'not run again for a channel the page has open',
        },
        'name': {'type': 'string'},
        'args': {'type': 'array'},
        'value': {},
        'message': {'type': 'string'},
        'stream': {'type': 'integer', 'minimum': 1, 'maximum': MAX_INTEGER},
    },
    'description': 'A frame; which fields it needs depends on its type (docs/protocol.md).',
}


_SESSION = {
    'name': 'session',
    'in': 'query',
    'required': True,
    'schema': {'type': 'string'},
    'description': 'The session id from the hello event.',
}
_STREAM_ID = {
    'name': 'id',
    'in': 'path',
    'required': True,
    'schema': {'type': 'integer', 'minimum': 1},
    'description': 'The stream id.',
}


_BYTES = {
    'name': 'bytes',
    'in': 'query',
    'schema': {'type': 'integer', 'minimum': 1},
    'description': 'Most bytes of kernel frames in the answer, at most poll_bytes (a page '
    'asks for less after a path cut an answer).',
}
_BASE64URL = {'type': 'string', 'pattern': '^[A-Za-z0-9_-]*$'}


def _post_or_get(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation answered the same to POST and, for paths that refuse POST, to GET."""
    return {
        'post': operation,
        'get': {
            **operation,
            'summary': operation['summary'] + ' (GET: for paths that refuse POST)',
        },
    }


def _offset_header(required: bool, what: str) -> dict[str, Any]:
    return {
        'name': 'Stream-Offset',
        'in': 'header',
        'required': required,
        'schema': {'type': 'integer', 'minimum': 0},
        'description': what,
    }


def _stream_paths() -> dict[str, Any]:
    """The byte stream endpoints (docs/protocol.md, "Byte streams")."""
    chunk_answer = _json(
        {
            'type': 'object',
            'properties': {
                'stored': {'type': 'boolean'},
                'received': {'type': 'integer'},
                'state': {'type': 'string', 'enum': ['open', 'done', 'cancelled']},
                'chunk_size': {'type': 'integer'},
                'in_flight': {'type': 'integer'},
            },
        },
        'Whether the chunk was stored (false: the kernel buffer stayed full, send it again).',
    )
    chunk_parameters = [
        _STREAM_ID,
        _SESSION,
        _offset_header(True, 'Offset of the first byte of the chunk.'),
        {
            'name': 'Stream-End',
            'in': 'header',
            'schema': {'type': 'string', 'enum': ['1']},
            'description': 'The stream ends right after this chunk.',
        },
        {
            'name': 'Stream-Total',
            'in': 'header',
            'schema': {'type': 'integer'},
            'description': 'The declared size of the stream.',
        },
    ]
    return {
        '/streams/up/{id}': {
            'post': {
                'summary': 'One chunk of a page -> kernel stream',
                'parameters': chunk_parameters,
                'requestBody': {
                    'required': False,
                    'content': {
                        'application/octet-stream': {
                            'schema': {'type': 'string', 'format': 'binary'}
                        }
                    },
                },
                'responses': {'200': chunk_answer, **_errors(400, 401, 410, 413)},
            },
            'get': {
                'summary': 'One chunk of a page -> kernel stream, in the query (for paths that '
                'refuse POST)',
                'parameters': [
                    *chunk_parameters,
                    {
                        'name': 'data',
                        'in': 'query',
                        'schema': _BASE64URL,
                        'description': 'The bytes of the chunk in unpadded base64url.',
                    },
                ],
                'responses': {'200': chunk_answer, **_errors(400, 401, 410, 413)},
            },
        },
        '/streams/up/{id}/error': {
            'post': {
                'summary': "The page's producer of a stream raised",
                'parameters': [_STREAM_ID, _SESSION],
                'requestBody': {
                    'required': True,
                    'content': {
                        'application/json': {
                            'schema': {
                                'type': 'object',
                                'required': ['name', 'message'],
                                'properties': {
                                    'name': {'type': 'string'},
                                    'message': {'type': 'string'},
                                },
                            }
                        }
                    },
                },
                'responses': {'200': _json({'type': 'object'}, 'Noted.'), **_errors(400, 401, 410)},
            },
            'get': {
                'summary': "The page's producer of a stream raised (the query form)",
                'parameters': [
                    _STREAM_ID,
                    _SESSION,
                    {'name': 'name', 'in': 'query', 'required': True, 'schema': {'type': 'string'}},
                    {
                        'name': 'message',
                        'in': 'query',
                        'required': True,
                        'schema': {'type': 'string'},
                    },
                ],
                'responses': {'200': _json({'type': 'object'}, 'Noted.'), **_errors(400, 401, 410)},
            },
        },
        '/streams/down/{id}': {
            'get': {
                'summary': 'The bytes of a kernel -> page stream from an offset',
                'parameters': [
                    _STREAM_ID,
                    _SESSION,
                    {
                        'name': 'offset',
                        'in': 'query',
                        'schema': {'type': 'integer', 'minimum': 0},
                        'description': 'The bytes the page holds (acknowledges them).',
                    },
                ],
                'responses': {
                    '200': {
                        'description': 'The bytes from offset. Stream-End: the size of the '
                        'stream, once its producer finished; Stream-Total: '
                        'declared size; Stream-Window: acknowledge every '
                        'quarter of it.',
                        'content': {
                            'application/octet-stream': {
                                'schema': {'type': 'string', 'format': 'binary'}
                            }
                        },
                    },
                    '422': {
                        'description': 'The producer raised after the bytes before offset.',
                        'content': {'application/json': {'schema': _ERROR}},
                    },
                    **_errors(400, 401, 404, 410),
                },
            }
        },
        '/streams/down/{id}/ack': _post_or_get(
            {
                'summary': 'The page holds every byte before Stream-Offset',
                'parameters': [
                    _STREAM_ID,
                    _SESSION,
                    _offset_header(True, 'The bytes the page holds.'),
                    {
                        'name': 'Stream-End',
                        'in': 'header',
                        'schema': {'type': 'string', 'enum': ['1']},
                        'description': 'The page read the whole stream.',
                    },
                ],
                'responses': {
                    '200': _json({'type': 'object'}, 'Acknowledged.'),
                    **_errors(400, 401, 404, 410),
                },
            }
        ),
        '/streams/down/{id}/cancel': _post_or_get(
            {
                'summary': "The page's consumer stopped: stop the producer",
                'parameters': [_STREAM_ID, _SESSION],
                'responses': {
                    '200': _json({'type': 'object'}, 'Cancelled.'),
                    **_errors(400, 401, 410),
                },
            }
        ),
    }


POLL_ANSWER = {
    'type': 'object',
    'required': ['session', 'cursor', 'ack', 'heartbeat', 'max_body', 'hold', 'frames'],
    'properties': {
        'session': {'type': 'string'},
        'cursor': {'type': 'integer', 'minimum': 0},
        'ack': {'type': 'integer', 'minimum': 0, 'description': 'The kernel inbox cursor.'},
        'heartbeat': {'type': 'number'},
        'max_body': {'type': 'integer'},
        'max_url': {
            'type': 'integer',
            'description': 'Most characters of a URL the page builds when it sends over GET.',
        },
        'hold': {'type': 'number', 'description': "The server's poll_hold."},
        'frames': {'type': 'array', 'items': FRAME},
    },
}


def _messages_by_get() -> dict[str, Any]:
    """``GET /messages``: the batch of a POST in the query, whole or in parts (query_form.py)."""
    count = {'type': 'string', 'pattern': '^[0-9]{1,16}$'}
    return {
        'summary': 'Page -> kernel frames and acknowledgements in the query (for paths that '
        'refuse POST); the answer always carries kernel frames, as with carry',
        'parameters': [
            _CLIENT,
            _SESSION,
            {
                'name': 'ack',
                'in': 'query',
                'schema': _CURSOR,
                'description': "The page's inbox cursor.",
            },
            {
                'name': 'messages',
                'in': 'query',
                'schema': _BASE64URL,
                'description': 'The JSON array of frames, UTF-8, in unpadded base64url; absent '
                'when the batch comes in parts.',
            },
            {
                'name': 'batch',
                'in': 'query',
                'schema': {'type': 'string', 'pattern': '^[A-Za-z0-9_-]{1,64}$'},
                'description': 'The id of a batch sent in parts.',
            },
            {
                'name': 'offset',
                'in': 'query',
                'schema': count,
                'description': 'Where this part starts in the base64url text of the batch.',
            },
            {
                'name': 'total',
                'in': 'query',
                'schema': count,
                'description': 'The length of the base64url text of the batch.',
            },
            {
                'name': 'part',
                'in': 'query',
                'schema': _BASE64URL,
                'description': 'The characters of the batch from offset.',
            },
            _BYTES,
        ],
        'responses': {
            '200': _json(
                {
                    'type': 'object',
                    'required': ['ack'],
                    'properties': {
                        'ack': {'type': 'integer'},
                        'frames': {'type': 'array', 'items': FRAME},
                        'have': {
                            'type': 'integer',
                            'description': 'For a part that did not complete '
                            'its batch: the characters held; '
                            'send the next part from there.',
                        },
                    },
                },
                'The kernel inbox cursor and the kernel frames after ack (up to poll_bytes); '
                'for a part that does not complete its batch, the characters held.',
            ),
            **_errors(400, 401, 409, 410),
        },
    }


def _events(method: str) -> dict[str, Any]:
    """The event stream, answered the same to GET (transport sse-get) and POST (sse-post)."""
    transport = wire.STREAM_TRANSPORTS[method]
    return {
        'summary': f'Kernel -> page event stream (transport {transport})',
        'parameters': [
            _CLIENT,
            {'name': 'session', 'in': 'query', 'schema': {'type': 'string'}},
            {
                'name': 'cursor',
                'in': 'query',
                'schema': _CURSOR,
                'description': "The page's inbox cursor; empty or absent means 0.",
            },
            {
                'name': 'Last-Event-ID',
                'in': 'header',
                'schema': _CURSOR,
                'description': 'Wins over cursor when not empty.',
            },
        ],
        'responses': {
            '200': {
                'description': 'An event stream: a hello event, then one event per frame, '
                'and ": ping" comments; after stream_max_age, "retry: 0" '
                'and the end.',
                'content': {'text/event-stream': {'schema': EVENT}},
            },
            **_errors(400, 401, 409, 410),
        },
    }


def describe(url: str) -> dict[str, Any]:
    """The description, with ``url`` as its server."""
    document = _document(url)
    for path, operations in document['paths'].items():
        for operation in operations.values():
            if path in PUBLIC_PATHS:
                operation['security'] = []
            else:
                operation.pop('security', None)  # the document's: the token
    return document


def _document(url: str) -> dict[str, Any]:
    public = ', '.join(sorted(PUBLIC_PATHS))
    return {
        'openapi': '3.0.3',
        'info': {
            'title': wire.SERVER_TITLE,
            'version': __version__,
            'description': 'RPC between a Jupyter kernel and its page over plain HTTP. '
            'Every endpoint needs the token (Authorization: Bearer <token>, or '
            f'?token=) except {public}, which serve static content.',
        },
        'servers': [{'url': url}],
        'security': [{'bearer': []}, {'token': []}],
        'paths': {
            '/events': {'get': _events('GET'), 'post': _events('POST')},
            '/poll': {
                'get': {
                    'summary': 'Kernel -> page frames by long-poll (transport poll)',
                    'parameters': [
                        _CLIENT,
                        {
                            'name': 'session',
                            'in': 'query',
                            'schema': {'type': 'string'},
                            'description': 'Absent on the first poll, which is answered at once.',
                        },
                        {
                            'name': 'cursor',
                            'in': 'query',
                            'schema': _CURSOR,
                            'description': "The page's inbox cursor; it acknowledges every frame up "
                            'to it.',
                        },
                        {
                            'name': 'hold',
                            'in': 'query',
                            'schema': {'type': 'number', 'minimum': 0},
                            'description': 'Seconds the request may be held, at most poll_hold.',
                        },
                        _BYTES,
                    ],
                    'responses': {
                        '200': _json(
                            POLL_ANSWER,
                            'The frames after the cursor (up to poll_bytes), '
                            'at once when some wait, else as soon as one is '
                            'sent, or none after the hold.',
                        ),
                        **_errors(400, 401, 409, 410),
                    },
                }
            },
            '/messages': {
                'post': {
                    'summary': 'Page -> kernel frames and acknowledgements',
                    'parameters': [_BYTES],
                    'requestBody': {
                        'required': True,
                        'content': {
                            'application/json': {
                                'schema': {
                                    'type': 'object',
                                    'required': ['client', 'session'],
                                    'properties': {
                                        'client': {'type': 'string'},
                                        'session': {'type': 'string'},
                                        'ack': {'type': 'integer', 'minimum': 0},
                                        'messages': {'type': 'array', 'items': FRAME},
                                        'carry': {
                                            'type': 'boolean',
                                            'default': False,
                                            'description': 'Carry kernel frames after ack back in the '
                                            'answer, waiting at most poll_linger for one '
                                            '(the page always asks).',
                                        },
                                    },
                                }
                            }
                        },
                    },
                    'responses': {
                        '200': _json(
                            {
                                'type': 'object',
                                'required': ['ack'],
                                'properties': {
                                    'ack': {'type': 'integer'},
                                    'frames': {'type': 'array', 'items': FRAME},
                                },
                            },
                            'The kernel inbox cursor; with carry, the kernel frames '
                            'after ack (up to poll_bytes). An item that is not a valid '
                            'frame is acknowledged too: its call fails with an error '
                            'frame (ProtocolError); only an item without a usable seq '
                            'refuses the whole batch (400).',
                        ),
                        **_errors(400, 401, 409, 410, 413),
                    },
                },
                'get': _messages_by_get(),
            },
            '/release': _post_or_get(
                {
                    'summary': 'The page client is going away',
                    'parameters': [_CLIENT],
                    'responses': {
                        '200': _json(
                            {'type': 'object', 'properties': {'released': {'type': 'boolean'}}},
                            'Whether it was the current client.',
                        ),
                        **_errors(400, 401),
                    },
                }
            ),
            '/channels/{channel}/call/{method}': {
                'post': {
                    'summary': 'Call a kernel handler method directly',
                    'parameters': [
                        {
                            'name': 'channel',
                            'in': 'path',
                            'required': True,
                            'schema': {'type': 'string'},
                            'description': 'Channel name or key.',
                        },
                        {
                            'name': 'method',
                            'in': 'path',
                            'required': True,
                            'schema': {'type': 'string'},
                        },
                    ],
                    'requestBody': {
                        'required': False,
                        'content': {'application/json': {'schema': {'type': 'array'}}},
                    },
                    'responses': {
                        '200': _json(
                            {
                                'type': 'object',
                                'required': ['result'],
                                'properties': {'result': {}},
                            },
                            'The method returned.',
                        ),
                        **_errors(400, 401, 404, 413, 422),
                    },
                }
            },
            **_stream_paths(),
            '/status': {
                'get': {
                    'summary': 'Connection and outbox state',
                    'description': "Also the page's probe: when an event stream's first event is "
                    'late, or its heartbeats stop, an answer here says the server is '
                    'alive (a proxy holds the stream); no answer says it is busy.',
                    'responses': {'200': _json({'type': 'object'}, 'State.'), **_errors(401)},
                }
            },
            '/page': {
                'get': {
                    'summary': 'A page that becomes the client (static; reads ?token= itself)',
                    'security': [],
                    'parameters': [{'name': 'token', 'in': 'query', 'schema': {'type': 'string'}}],
                    'responses': {
                        '200': {
                            'description': 'HTML.',
                            'content': {'text/html': {'schema': {'type': 'string'}}},
                        }
                    },
                }
            },
            '/client.js': {
                'get': {
                    'summary': 'The browser client',
                    'security': [],
                    'responses': {
                        '200': {
                            'description': 'JavaScript.',
                            'content': {'text/javascript': {'schema': {'type': 'string'}}},
                        }
                    },
                }
            },
            '/openapi.json': {
                'get': {
                    'summary': 'This description',
                    'security': [],
                    'responses': {'200': _json({'type': 'object'}, 'OpenAPI 3.')},
                }
            },
            '/favicon.ico': {
                'get': {
                    'summary': 'No icon, so browsers stop asking',
                    'security': [],
                    'responses': {'204': {'description': 'Nothing.'}},
                }
            },
            '/probe/websocket': {
                'get': {
                    'summary': 'Whether a WebSocket upgrade reaches the server (for the doctor)',
                    'responses': {
                        '101': {'description': 'Upgraded: one text message, then a close.'},
                        '426': {
                            'description': 'No Upgrade header arrived: a proxy dropped it.',
                            'content': {'application/json': {'schema': _ERROR}},
                        },
                        **_errors(401),
                    },
                }
            },
        },
        'components': {
            'securitySchemes': {
                'bearer': {'type': 'http', 'scheme': 'bearer'},
                'token': {'type': 'apiKey', 'in': 'query', 'name': 'token'},
            },
            'schemas': {
                'Error': {
                    'type': 'object',
                    'required': ['error', 'message'],
                    'properties': {'error': {'type': 'string'}, 'message': {'type': 'string'}},
                }
            },
        },
    }
