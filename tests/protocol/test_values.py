"""What values cross the wire: refused with the place they sit, converted, or kept as they are."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import random
import uuid

import numpy
import orjson
import pytest

from jchannel_http.protocol.frames import Call, Echo, Result, encode
from jchannel_http.values import MAX_DEPTH, MAX_SAFE_INTEGER, dumps, loads


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ('args', 'where', 'what'),
    [
        ([1, 2, {'x': math.nan}], r"args\[2\]\['x'\]", 'nan'),
        ([math.inf], r'args\[0\]', 'inf'),
        ([[-math.inf]], r'args\[0\]\[0\]', 'inf'),
        ([None, {'a': [1, {'b': numpy.float64('nan')}]}], r"args\[1\]\['a'\]\[1\]\['b'\]", 'nan'),
        ([numpy.array([1.0, numpy.nan])], r'args\[0\]', 'numpy array holding NaN'),
        ([MAX_SAFE_INTEGER + 1], r'args\[0\]', 'beyond'),
        ([-MAX_SAFE_INTEGER - 1], r'args\[0\]', 'beyond'),
        ([{1: 'one'}], r'args\[0\]', 'the key 1 is not a string'),
        ([{'s': {1, 2}}], r"args\[0\]\['s'\]", "type 'set'"),
        ([object()], r'args\[0\]', "type 'object'"),
        ([nested(MAX_DEPTH + 5)], r'args(\[0\])+\.\.\.(\[0\])+', f'deeper than {MAX_DEPTH}'),
        ([numpy.array([1j])], r'args\[0\]', 'complex'),
    ],
)
def test_a_value_that_cannot_cross_is_refused_naming_its_place(args, where, what) -> None:
    with pytest.raises(TypeError, match=f'cannot send {where}: .*{what}'):
        encode(1, Call(1, 1, 'f', args))


def test_a_result_is_named_result() -> None:
    with pytest.raises(TypeError, match=r"cannot send result\['x'\]: nan"):
        encode(1, Result(1, {'x': math.nan}))


def test_a_value_that_contains_itself_is_refused() -> None:
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(TypeError, match='contains itself'):
        encode(1, Echo(1, 1, [cycle]))


def test_null_and_the_word_null_in_strings_are_not_taken_for_nan() -> None:
    data = encode(1, Echo(1, 1, [None, 'null', {'null': None}]))
    assert orjson.loads(data)['args'] == [None, 'null', {'null': None}]


class Color(enum.Enum):
    RED = 'red'


@dataclasses.dataclass
class Point:
    x: int
    y: float


def test_documented_conversions() -> None:
    when = datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.timezone.utc)
    key = uuid.UUID(int=7)
    args = [
        (1, 2),
        when,
        when.date(),
        key,
        Color.RED,
        Point(1, 2.5),
        numpy.int32(5),
        numpy.float32(0.5),
        numpy.bool_(True),
        numpy.arange(6).reshape(2, 3),
        numpy.array([1.5, 2.5])[::-1],
    ]
    assert orjson.loads(encode(1, Call(1, 1, 'f', args)))['args'] == [
        [1, 2],
        '2026-12-01T12:30:00+00:00',
        '2026-12-01',
        str(key),
        'red',
        {'x': 1, 'y': 2.5},
        5,
        0.5,
        True,
        [[0, 1, 2], [3, 4, 5]],
        [2.5, 1.5],
    ]


def test_numpy_arrays_orjson_leaves_out_are_converted() -> None:
    array = numpy.array([1, 'a', None], dtype=object)
    assert orjson.loads(dumps({'v': array})) == {'v': [1, 'a', None]}


def test_integers_at_the_bounds_cross() -> None:
    args = [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]
    assert orjson.loads(encode(1, Echo(1, 1, args)))['args'] == args


def test_nesting_up_to_the_bound_crosses() -> None:
    value = nested(MAX_DEPTH - 1)
    assert orjson.loads(encode(1, Echo(1, 1, [value])))['args'] == [value]


@pytest.mark.parametrize(
    'text',
    [
        '\ud800',
        'a\udfffb',
        '\udbff',  # noqa: PT014 (lone surrogates, distinct strings)
        '\udc00\ud800',
        'ok \U0001f600 \ud83d',
    ],
)
def test_lone_surrogates_cross_unchanged_both_ways(text: str) -> None:
    data = encode(1, Result(1, {'s': text, text: [text]}))
    assert data.isascii()  # written as \\udXXX escapes, as JSON.stringify writes them
    assert loads(data)['value'] == {'s': text, text: [text]}
    from_page = json.dumps({'value': text}).encode()  # what JSON.stringify sends
    assert loads(from_page)['value'] == text


def test_lone_surrogates_next_to_converted_types() -> None:
    data = dumps({'a': ['\ud800', datetime.date(2026, 1, 2), numpy.int8(3)]})
    assert loads(data) == {'a': ['\ud800', '2026-01-02', 3]}


def test_loads_still_refuses_what_is_not_json() -> None:
    for text in (b'[NaN]', b'{"a": Infinity}', b'[1,', b'"\\ud800'):
        with pytest.raises(orjson.JSONDecodeError):
            loads(text)


def test_random_values_round_trip_or_are_refused_by_name() -> None:
    seed = random.randrange(2**32)
    print(f'seed {seed}')
    rng = random.Random(seed)

    def value(depth: int) -> object:
        pick = rng.randrange(10 if depth < 6 else 6)
        if pick == 0:
            return rng.choice([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**53, 2**64])
        if pick == 1:
            return rng.choice([0.0, -0.0, 1e308, 5e-324, math.nan, math.inf, 1.5])
        if pick == 2:
            return ''.join(
                chr(rng.choice([0x41, 0xE9, 0xD800, 0xDFFF, 0x1F600, 0, 0x2028]))
                for _ in range(rng.randrange(4))
            )
        if pick in (3, 4):
            return rng.choice([None, True, False])
        if pick == 5:
            return 'plain'
        if pick in (6, 7):
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {
            f'k{index}\ud800'[: rng.randrange(2, 4)]: value(depth + 1)
            for index in range(rng.randrange(4))
        }

    def sendable(item: object) -> bool:
        if isinstance(item, float):
            return math.isfinite(item)
        if isinstance(item, int):
            return abs(item) <= MAX_SAFE_INTEGER
        if isinstance(item, list):
            return all(map(sendable, item))
        if isinstance(item, dict):
            return all(map(sendable, item.values()))
        return True

    def as_javascript_reads_it(item: object) -> object:
        """A high surrogate followed by a low one is one character in a JavaScript string."""
        if isinstance(item, str):
            return item.encode('utf-16-le', 'surrogatepass').decode('utf-16-le', 'surrogatepass')
        if isinstance(item, list):
            return [as_javascript_reads_it(child) for child in item]
        if isinstance(item, dict):
            return {
                as_javascript_reads_it(key): as_javascript_reads_it(child)
                for key, child in item.items()
            }
        return item

    for _ in range(500):
        args = [value(0) for _ in range(rng.randrange(3))]
        if sendable(args):
            received = loads(encode(1, Echo(1, 1, args)))['args']
            assert received == as_javascript_reads_it(args), f'seed {seed}'
        else:
            with pytest.raises(TypeError, match=r'cannot send args\['):
                encode(1, Echo(1, 1, args))


@pytest.mark.parametrize('extra', [0, 1, 2, 3, 4])
def test_nesting_is_refused_exactly_beyond_the_bound(extra: int) -> None:
    """orjson writes a few levels more than MAX_DEPTH: those are refused too."""
    deep_arg, deep_result = nested(MAX_DEPTH - 1 + extra), nested(MAX_DEPTH + extra)
    if extra == 0:  # the args array is one of the levels of the args
        assert orjson.loads(encode(1, Call(1, 1, 'f', [deep_arg])))['args'] == [deep_arg]
        assert orjson.loads(encode(1, Result(1, deep_result)))['value'] == deep_result
        return
    with pytest.raises(
        TypeError, match=rf'cannot send args(\[0\])+\.\.\..*deeper than {MAX_DEPTH}'
    ):
        encode(1, Call(1, 1, 'f', [deep_arg]))
    with pytest.raises(
        TypeError, match=rf'cannot send result(\[0\])+\.\.\..*deeper than {MAX_DEPTH}'
    ):
        encode(1, Result(1, deep_result))
    with pytest.raises(TypeError, match=f'deeper than {MAX_DEPTH}'):
        encode(1, Result(1, {'s': '\ud800', 'deep': deep_result}))


@pytest.mark.parametrize(
    ('text', 'number'),
    [
        ('1152921504606847000', 2.0**60),  # JSON.stringify(2 ** 60)
        ('9007199254740992', 2.0**53),
        ('-9007199254740993', -(2.0**53)),
        ('7510684884703185000', 7.510684884703185e18),
        ('100000000000000000000', 1e20),
    ],
)
def test_numbers_from_the_page_beyond_2_53_are_the_doubles_they_stand_for(text, number) -> None:
    """JSON.stringify writes numbers below 1e21 without an exponent: Python would read them as
    integers that are not the page's number and that could not be sent back."""
    for data in (f'[{text}, {{"k": [{text}]}}, "{text}"]', f'["\\ud800", {text}]'):
        value = loads(data.encode())
        assert value[-1] == text or (value[-1] == number and type(value[-1]) is float)
        if len(value) == 3:
            assert value[:2] == [number, {'k': [number]}] and type(value[0]) is float
        assert loads(encode(1, Result(1, value)))['value'] == value  # it can go back
    assert loads(text) == number and type(loads(text)) is float
    assert loads(b'[9007199254740991, -9007199254740991, true]') == [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        True,
    ]
    assert type(loads(b'[9007199254740991]')[0]) is int
