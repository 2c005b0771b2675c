"""Frames: the messages both sides exchange, as small immutable values.

``encode`` turns a frame and its sequence number into JSON bytes; ``decode`` validates a
parsed JSON object and turns it back into ``(seq, frame)``. See ``docs/protocol.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import ProtocolError
from ..values import encode_checked


@dataclass(frozen=True, slots=True)
class Open:
    """Kernel -> page: evaluate ``code`` and call it with a new channel ``channel``."""

    call: int
    channel: int
    code: str


@dataclass(frozen=True, slots=True)
class Close:
    """Kernel -> page: forget channel ``channel``."""

    call: int
    channel: int


@dataclass(frozen=True, slots=True)
class Echo:
    """Either way: answer with ``args`` unchanged."""

    call: int
    channel: int
    args: list[Any]


@dataclass(frozen=True, slots=True)
class Call:
    """Either way: call handler method ``name`` of channel ``channel`` with ``args``."""

    call: int
    channel: int
    name: str
    args: list[Any]
    stream: int | None = None
    """A stream of the sender's direction, passed to the method before ``args``."""


@dataclass(frozen=True, slots=True)
class Result:
    """Either way: call ``call`` of the other direction returned ``value``."""

    call: int
    value: Any
    stream: int | None = None
    """When given, the call returned this stream of the sender's direction (``value`` is null)."""


@dataclass(frozen=True, slots=True)
class Pipe:
    """Either way: send stream ``stream`` (of the sender's direction) back as the result."""

    call: int
    channel: int
    stream: int


@dataclass(frozen=True, slots=True)
class Error:
    """Either way: call ``call`` of the other direction raised ``name``: ``message``."""

    call: int
    name: str
    message: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Kernel -> page: the server is stopping; stop the client (the answer may never come)."""

    call: int


Frame = Open | Close | Echo | Call | Pipe | Result | Error | Stop
Request = Open | Close | Echo | Call | Pipe | Stop
Reply = Result | Error

TYPES: dict[str, type] = {
    'open': Open,
    'close': Close,
    'echo': Echo,
    'call': Call,
    'pipe': Pipe,
    'result': Result,
    'error': Error,
    'stop': Stop,
}
NAMES: dict[type, str] = {cls: name for name, cls in TYPES.items()}

# The JSON type each field must have; ``object`` accepts any JSON value.
_FIELD_TYPES: dict[str, type] = {
    'call': int,
    'channel': int,
    'code': str,
    'args': list,
    'name': str,
    'message': str,
    'value': object,
    'stream': int,
}
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(field.name for field in fields(cls)) for cls in TYPES.values()
}
# Fields that default to None may be left out (and are left out when None).
_OPTIONAL: dict[type, frozenset[str]] = {
    cls: frozenset(field.name for field in fields(cls) if field.default is None)
    for cls in TYPES.values()
}


def to_dict(seq: int, frame: Frame) -> dict[str, Any]:
    """The JSON object of ``frame`` numbered ``seq``."""
    return {'seq': seq, **_body(frame)}


def _body(frame: Frame) -> dict[str, Any]:
    data: dict[str, Any] = {'type': NAMES[type(frame)]}
    optional = _OPTIONAL[type(frame)]
    for name in _FIELDS[type(frame)]:
        value = getattr(frame, name)
        if value is not None or name not in optional:
            data[name] = value
    return data


def _user_values(frame: Frame) -> dict[str, Any]:
    """The values of ``frame`` that came from user code, by the name errors give them."""
    if isinstance(frame, (Call, Echo)):
        return {'args': frame.args}
    if isinstance(frame, Result):
        return {'result': frame.value}
    return {}


def encode_rest(frame: Frame) -> bytes:
    """The JSON bytes of ``frame`` after ``{"seq":N,``: a frame waiting for room in the outbox
    is encoded once, whatever number it gets. TypeError names a value that cannot be sent."""
    return encode_checked(_body(frame), _user_values(frame))[1:]


def with_seq(seq: int, rest: bytes) -> bytes:
    """The JSON bytes of a frame numbered ``seq`` whose ``encode_rest`` is ``rest``."""
    return b'{"seq":%d,%b' % (seq, rest)


def encode(seq: int, frame: Frame) -> bytes:
    """JSON bytes of ``frame`` numbered ``seq`` (one line: orjson never writes newlines)."""
    return with_seq(seq, encode_rest(frame))


MAX_INTEGER = 2**53 - 1
"""The largest ``seq``, ``call``, ``channel`` or ``stream``: JavaScript holds integers exactly up
to it, so the page reads the same number (docs/protocol.md, "Frames")."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= MAX_INTEGER


def _check(name: str, value: Any) -> None:
    expected = _FIELD_TYPES[name]
    if expected is int:
        if not _is_integer(value) or value < 1:
            raise ProtocolError(f'field {name!r} must be a positive integer')
    elif not isinstance(value, expected):
        raise ProtocolError(f'field {name!r} must be a JSON {expected.__name__}')


@dataclass(frozen=True, slots=True)
class Invalid:
    """Not a frame: an item of a page's batch that has a sequence number but is not a valid
    frame. It takes its place in the sequence, so the rest of the batch goes on, and the call it
    belongs to (when ``call`` could be read) fails on the side that made it."""

    call: int | None
    kind: str | None
    """The item's ``type``, when it is a string."""
    reason: str


Incoming = Frame | Invalid
"""An item of a page's batch, decoded: a frame, or the Invalid that takes its place."""


def _seq_of(data: Any) -> int:
    """The sequence number of a parsed frame; ProtocolError if it has none usable."""
    if not isinstance(data, dict):
        raise ProtocolError('a frame must be a JSON object')
    seq = data.get('seq')
    if not isinstance(seq, int) or not _is_integer(seq) or seq < 1:
        raise ProtocolError("field 'seq' must be a positive integer")
    return seq


def decode_item(data: Any, allowed: tuple[type, ...] | None = None) -> tuple[int, Frame | Invalid]:
    """Like ``decode``, but an item with a valid ``seq`` that is not a valid frame (or not one of
    ``allowed``) gives an ``Invalid`` in its place; ProtocolError only when ``seq`` is unusable."""
    seq = _seq_of(data)
    kind = data.get('type')
    call = data.get('call')
    try:
        _, frame = decode(data)
    except ProtocolError as exc:
        return seq, Invalid(
            call if _is_integer(call) and call > 0 else None,
            kind if isinstance(kind, str) else None,
            str(exc),
        )
    if allowed is not None and not isinstance(frame, allowed):
        names = ', '.join(NAMES[cls] for cls in allowed)
        return seq, Invalid(
            getattr(frame, 'call', None),
            kind,
            f'{kind!r} frames cannot be sent this way (only {names})',
        )
    return seq, frame


def decode(data: Any) -> tuple[int, Frame]:
    """Validate a parsed JSON object and return ``(seq, frame)``; ProtocolError if invalid."""
    seq = _seq_of(data)
    kind = data.get('type')
    cls = TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f'unknown frame type {kind!r}; expected one of {sorted(TYPES)}')
    names = _FIELDS[cls]
    unknown = set(data) - set(names) - {'seq', 'type'}
    if unknown:
        raise ProtocolError(f'unknown field(s) {sorted(unknown)} in a {kind!r} frame')
    values: list[Any] = []
    for name in names:
        if name not in data and name in _OPTIONAL[cls]:
            values.append(None)
            continue
        if name not in data:
            raise ProtocolError(f'a {kind!r} frame needs the field {name!r}')
        _check(name, data[name])
        values.append(data[name])
    return seq, cls(*values)
