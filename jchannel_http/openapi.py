"""The OpenAPI 3 description served at ``GET /openapi.json`` (see docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from . import __version__

_ERROR = {'$ref': '#/components/schemas/Error'}
_CLIENT = {'name': 'client', 'in': 'query', 'required': True,
           'schema': {'type': 'string', 'pattern': '^[A-Za-z0-9_-]{8,64}$'},
           'description': 'The page client id.'}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: 'Malformed request: the message names the problem.',
        401: 'The token is missing or wrong.',
        404: 'Unknown channel or method.',
        409: 'Another page client is live.',
        410: 'Resync: the session is over or the cursor cannot be served; start a new session.',
        413: 'The body is larger than max_body.',
        422: 'The handler method raised an exception.',
        503: 'The server is stopping.',
    }
    return {str(status): {'description': reasons[status],
                          'content': {'application/json': {'schema': _ERROR}}}
            for status in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {'description': description, 'content': {'application/json': {'schema': schema}}}


FRAME = {
    'type': 'object',
    'required': ['seq', 'type'],
    'properties': {
        'seq': {'type': 'integer', 'minimum': 1},
        'type': {'type': 'string', 'enum': ['open', 'close', 'echo', 'call', 'result', 'error']},
        'call': {'type': 'integer', 'minimum': 1},
        'channel': {'type': 'integer', 'minimum': 1},
        'code': {'type': 'string'},
        'name': {'type': 'string'},
        'args': {'type': 'array'},
        'value': {},
        'message': {'type': 'string'},
    },
    'description': 'A frame; which fields it needs depends on its type (docs/protocol.md).',
}


def describe(url: str) -> dict[str, Any]:
    """The description, with ``url`` as its server."""
    return {
        'openapi': '3.0.3',
        'info': {
            'title': 'jchannel_http kernel server',
            'version': __version__,
            'description': 'RPC between a Jupyter kernel and its page over plain HTTP. '
                           'Every endpoint but /client.js and /openapi.json needs the token.',
        },
        'servers': [{'url': url}],
        'security': [{'bearer': []}, {'token': []}],
        'paths': {
            '/events': {'get': {
                'summary': 'Kernel -> page event stream',
                'parameters': [
                    _CLIENT,
                    {'name': 'session', 'in': 'query', 'schema': {'type': 'string'}},
                    {'name': 'cursor', 'in': 'query',
                     'schema': {'type': 'integer', 'minimum': 0}},
                    {'name': 'Last-Event-ID', 'in': 'header',
                     'schema': {'type': 'integer', 'minimum': 0}},
                ],
                'responses': {
                    '200': {'description': 'An event stream: a hello event, then one event '
                                           'per frame, and ": ping" comments.',
                            'content': {'text/event-stream': {'schema': {'type': 'string'}}}},
                    **_errors(400, 401, 409, 410),
                },
            }},
            '/messages': {'post': {
                'summary': 'Page -> kernel frames and acknowledgements',
                'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                    'type': 'object',
                    'required': ['client', 'session'],
                    'properties': {
                        'client': {'type': 'string'},
                        'session': {'type': 'string'},
                        'ack': {'type': 'integer', 'minimum': 0},
                        'messages': {'type': 'array', 'items': FRAME},
                    },
                }}}},
                'responses': {
                    '200': _json({'type': 'object', 'required': ['ack'],
                                  'properties': {'ack': {'type': 'integer'}}},
                                 'The kernel inbox cursor.'),
                    **_errors(400, 401, 409, 410, 413),
                },
            }},
            '/release': {'post': {
                'summary': 'The page client is going away',
                'parameters': [_CLIENT],
                'responses': {
                    '200': _json({'type': 'object',
                                  'properties': {'released': {'type': 'boolean'}}},
                                 'Whether it was the current client.'),
                    **_errors(400, 401),
                },
            }},
            '/channels/{channel}/call/{method}': {'post': {
                'summary': 'Call a kernel handler method directly',
                'parameters': [
                    {'name': 'channel', 'in': 'path', 'required': True,
                     'schema': {'type': 'string'}, 'description': 'Channel name or key.'},
                    {'name': 'method', 'in': 'path', 'required': True,
                     'schema': {'type': 'string'}},
                ],
                'requestBody': {'required': False, 'content': {'application/json': {
                    'schema': {'type': 'array'}}}},
                'responses': {
                    '200': _json({'type': 'object', 'required': ['result'],
                                  'properties': {'result': {}}}, 'The method returned.'),
                    **_errors(400, 401, 404, 413, 422),
                },
            }},
            '/status': {'get': {
                'summary': 'Connection and outbox state',
                'responses': {'200': _json({'type': 'object'}, 'State.'), **_errors(401)},
            }},
            '/page': {'get': {
                'summary': 'A page that becomes the client (static; reads ?token= itself)',
                'security': [],
                'parameters': [{'name': 'token', 'in': 'query', 'schema': {'type': 'string'}}],
                'responses': {'200': {'description': 'HTML.',
                                      'content': {'text/html': {'schema': {'type': 'string'}}}}},
            }},
            '/client.js': {'get': {
                'summary': 'The browser client', 'security': [],
                'responses': {'200': {'description': 'JavaScript.', 'content': {
                    'text/javascript': {'schema': {'type': 'string'}}}}},
            }},
            '/openapi.json': {'get': {
                'summary': 'This description', 'security': [],
                'responses': {'200': _json({'type': 'object'}, 'OpenAPI 3.')},
            }},
        },
        'components': {
            'securitySchemes': {
                'bearer': {'type': 'http', 'scheme': 'bearer'},
                'token': {'type': 'apiKey', 'in': 'query', 'name': 'token'},
            },
            'schemas': {'Error': {
                'type': 'object', 'required': ['error', 'message'],
                'properties': {'error': {'type': 'string'}, 'message': {'type': 'string'}},
            }},
        },
    }
