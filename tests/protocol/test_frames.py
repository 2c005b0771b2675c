"""Frames: encoding, decoding and validation."""

from __future__ import annotations

import orjson
import pytest

from jchannel_http.errors import ProtocolError
from jchannel_http.protocol.frames import Call, Close, Echo, Error, Open, Result, decode, encode

FRAMES = [
    Open(1, 2, '(channel) => 1'),
    Close(3, 2),
    Echo(4, 2, [1, 'two', None, {'x': [3.5]}]),
    Call(5, 2, 'name', [True, False, 2**53 - 1]),
    Result(6, {'nested': {'deep': ['é', '😀']}}),
    Error(7, 'TypeError', 'x is not a function'),
]


@pytest.mark.parametrize('frame', FRAMES, ids=lambda frame: type(frame).__name__)
def test_round_trip(frame) -> None:
    data = encode(42, frame)
    assert b'\n' not in data
    assert decode(orjson.loads(data)) == (42, frame)


def test_wire_form_is_flat_json() -> None:
    assert orjson.loads(encode(1, Call(9, 3, 'f', [1]))) == {
        'seq': 1,
        'type': 'call',
        'call': 9,
        'channel': 3,
        'name': 'f',
        'args': [1],
    }


@pytest.mark.parametrize(
    'data, message',
    [
        ([], 'must be a JSON object'),
        ({'type': 'call'}, "'seq'"),
        ({'seq': 0, 'type': 'call'}, "'seq'"),
        ({'seq': True, 'type': 'call'}, "'seq'"),
        ({'seq': 1, 'type': 'bogus'}, 'unknown frame type'),
        ({'seq': 1, 'type': 'result'}, "needs the field 'call'"),
        ({'seq': 1, 'type': 'result', 'call': 1}, "needs the field 'value'"),
        ({'seq': 1, 'type': 'call', 'call': 1, 'channel': 1, 'name': 'f', 'args': 'no'}, "'args'"),
        ({'seq': 1, 'type': 'call', 'call': 1, 'channel': 1, 'name': 3, 'args': []}, "'name'"),
        ({'seq': 1, 'type': 'result', 'call': 1, 'value': 1, 'extra': 2}, 'unknown field'),
        ({'seq': 1, 'type': 'echo', 'call': -1, 'channel': 1, 'args': []}, "'call'"),
    ],
)
def test_invalid_frames_are_refused_with_the_reason(data, message) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode(data)


def test_values_json_cannot_carry_give_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="cannot send result: a value of type 'object'"):
        encode(1, Result(1, object()))
    with pytest.raises(
        TypeError, match=r'cannot send result\[0\]: the integer 1180591620717411303424 is beyond'
    ):
        encode(1, Result(1, [2**70]))


def test_openapi_frame_types_are_the_frames_modules() -> None:
    from jchannel_http.http.openapi import FRAME
    from jchannel_http.protocol.frames import TYPES

    assert FRAME['properties']['type']['enum'] == list(TYPES)
    assert 'stop' in FRAME['properties']['type']['enum']
