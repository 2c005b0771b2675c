"""``GET /probe/websocket``: whether a WebSocket upgrade reaches the server, for the doctor.

jchannel_http itself uses no WebSocket; knowing whether one would pass tells a user what the path
between the browser and the kernel allows (``python -m jchannel_http doctor``).
"""

from __future__ import annotations

from aiohttp import web

from ..values import dumps

GREETING = 'jchannel_http'


async def websocket_probe(request: web.Request) -> web.StreamResponse:
    """Complete the upgrade, send one text message and close; 426 when no upgrade arrived."""
    response = web.WebSocketResponse()
    if not response.can_prepare(request).ok:
        body = {
            'error': 'upgrade_required',
            'message': 'no WebSocket upgrade arrived: something on the path dropped the '
            'Upgrade header (a plain HTTP request reached the server)',
        }
        return web.Response(
            status=426,
            body=dumps(body),
            content_type='application/json',
            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade'},
        )
    await response.prepare(request)
    await response.send_str(GREETING)
    await response.close()
    return response
