"""The names and rules the wire shares with the page, one copy of each.

Identifier rules (client ids, sequence numbers, stream ids, offsets), transport names, header
names, the bytes of event-stream events, and the texts of the errors that several endpoints
answer. The HTTP adapter, the kernel layer and the OpenAPI description read them from here.
"""

from __future__ import annotations

import re

from ..errors import ProtocolError

# -- identifiers --------------------------------------------------------------------------------

CLIENT_ID_PATTERN = '[A-Za-z0-9_-]{8,64}'
CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
"""A page client id (the page draws it at random)."""

SEQUENCE_NUMBER = re.compile(r'[0-9]{1,16}')
"""A sequence number, cursor, acknowledgement or byte offset: JavaScript counts exactly up to 2**53,
and ``int()`` would take digits beyond ASCII."""

POSITIVE_ID = re.compile(r'[1-9][0-9]{0,15}')
"""A channel key or stream id: a positive integer, ASCII digits only."""

INVALID_CLIENT_ID = 'client must be 8 to 64 characters of A-Z, a-z, 0-9, _ and -'


def check_client_id(client: object) -> str:
    """Return ``client`` if it is a well-formed client id, else raise ProtocolError."""
    if not isinstance(client, str) or not CLIENT_ID.fullmatch(client):
        raise ProtocolError(INVALID_CLIENT_ID)
    return client


def sequence_number(value: str | None, name: str) -> int:
    """A non-negative integer from a query parameter or header (0 when absent or empty)."""
    if value is None or value == '':
        return 0
    if not SEQUENCE_NUMBER.fullmatch(value):
        raise ProtocolError(f'{name} must be a non-negative integer of at most 16 digits')
    return int(value)


# -- transports and send methods ----------------------------------------------------------------

SSE_GET = 'sse-get'
SSE_POST = 'sse-post'
POLL = 'poll'
TRANSPORTS = (SSE_GET, SSE_POST, POLL)
"""The kernel -> page transports, in the order the page tries them."""
STREAM_TRANSPORTS = {'GET': SSE_GET, 'POST': SSE_POST}
"""The transport name of an event stream, by request method."""

SEND_POST = 'post'
SEND_GET = 'get'
SEND_METHODS = (SEND_POST, SEND_GET)
"""How the page sends its frames and upload chunks."""

# -- header names -------------------------------------------------------------------------------

LAST_EVENT_ID = 'Last-Event-ID'
STREAM_OFFSET = 'Stream-Offset'
STREAM_END = 'Stream-End'
STREAM_TOTAL = 'Stream-Total'
STREAM_WINDOW = 'Stream-Window'
REQUEST_HEADERS = (
    'Authorization',
    'Content-Type',
    LAST_EVENT_ID,
    'ngrok-skip-browser-warning',
    'X-XSRFToken',
    STREAM_OFFSET,
    STREAM_END,
    STREAM_TOTAL,
)
"""The request headers a page may send (the CORS preflight allows them)."""
EXPOSED_HEADERS = (STREAM_END, STREAM_TOTAL, STREAM_WINDOW)
"""The response headers of a download the page reads."""

# -- event-stream bytes -------------------------------------------------------------------------

RECONNECT_HINT = b'retry: 0\n\n'
"""Written before a stream ends at its maximum age: reconnect at once (in milliseconds)."""


def sse_event(seq: int, data: bytes) -> bytes:
    """One event-stream event carrying a frame."""
    return b'id: %d\ndata: %b\n\n' % (seq, data)


def sse_hello(cursor: int, data: bytes, padding: int) -> bytes:
    """The first event of a stream, followed by ``padding`` bytes of comment (so size-threshold
    buffers on the way pass it on)."""
    comment = b':' + b' ' * padding + b'\n\n' if padding else b''
    return b'event: hello\nid: %d\ndata: %b\n\n' % (cursor, data) + comment


# -- texts of errors several endpoints answer ---------------------------------------------------

SESSION_OVER = (
    'the session is over (the kernel server was restarted or another page took '
    'over); start a new one'
)
SESSION_TAKEN_OVER = 'the session is over (another page took over); start a new one'
STREAM_SESSION_OVER = (
    'the session of this stream is over (the page was replaced or the kernel '
    'server restarted); start a new one'
)
SESSION_REQUIRED = 'the session id from the hello event'
SERVER_STOPPED = 'the server was stopped'
NOT_RUNNING = 'the server is not running: await server.start() first'
SERVER_TITLE = 'jchannel_http kernel server'
"""The title of ``GET /openapi.json``, by which a probe knows a kernel server."""


def no_page(url: str, waited: str, what: str) -> str:
    """The text of the StateError of a call that found no connected page."""
    return (
        f'no page is connected to {url} (waited {waited} for {what}): run start() in a '
        'notebook, or open server.page_url in a browser'
    )
