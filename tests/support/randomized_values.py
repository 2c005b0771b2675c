"""Random values for the randomized end-to-end test: unicode and number edge cases, nesting
near the bound, strings whose frames sit just under or just over ``max_body``; how a value looks
after a trip through the page; and a strict comparison (``True`` is not ``1``)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

from jchannel_http.values import MAX_DEPTH, MAX_SAFE_INTEGER

STRING_PIECES = [
    '',
    'a',
    ' ',
    'é',
    'ß',
    '中文',
    '😀',
    '\U0010ffff',
    '\U00010000',
    '\u2028',
    '\u2029',
    '\x00',
    '\x01',
    '\x1f',
    '\x7f',
    '\x80',
    '\xa0',
    '\ufeff',
    '\ufffe',
    '\uffff',
    '\ufffd',
    '\ud800',
    '\udbff',
    '\udc00',
    '\udfff',  # lone surrogates
    '\ud83d\ude00',
    '\udbff\udfff',  # pairs: one character in the page
    '\ud83d',
    '\ude00',  # halves of an emoji
    '"',
    '\\',
    '/',
    '\n',
    '\r\n',
    '\t',
    '\b',
    '\f',
    '</script>',
    '<!--',
    ']]>',
    '\u202e',
    'a\u0301',
    '\u200d',
    '👨\u200d👩\u200d👧',
    '🏳️\u200d🌈',
    '\u0000\u0000',
    '__proto__',
    'constructor',
    'toString',
    '1e309',
    'NaN',
    'null',
    'undefined',
]
KEYS = [
    '',
    'a',
    'b',
    'é',
    '😀',
    '\ud800',
    '\udfff',
    '\ud83d\ude00',
    '__proto__',
    'constructor',
    'hasOwnProperty',
    '0',
    '1',
    '42',
    '-1',
    '01',
    'seq',
    'type',
    'call',
    '\x00',
    ' ',
    '"',
]
INTEGERS = [
    0,
    1,
    -1,
    2,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    2**31,
    -(2**31),
    2**32,
    2**52,
    2**53 - 2,
    MAX_SAFE_INTEGER,
    -MAX_SAFE_INTEGER,
    10**15,
    -(10**15),
]
FLOATS = [
    0.0,
    -0.0,
    0.5,
    -0.5,
    0.1,
    1e-7,
    1e21,
    1e-300,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    9007199254740993.0,
    1.0,
    2.0**60,
    3.141592653589793,
    123456789.123456789,
]

KERNEL_UNSENDABLE = {
    'nan': lambda: float('nan'),
    'inf': lambda: float('inf'),
    '-inf': lambda: [1, {'x': -float('inf')}],
    'int 2**53': lambda: 2**53,
    'int -2**53': lambda: {'n': -(2**53)},
    'int 2**64': lambda: [2**64],
    'int key': lambda: {1: 'one'},
    'tuple key': lambda: {'a': {(1, 2): 3}},
    'too deep': lambda: nested(MAX_DEPTH + 1),
    'object': lambda: object(),
    'bytes': lambda: b'bytes',
    'set': lambda: {1, 2},
    'complex': lambda: 1j,
}
"""Values the kernel refuses to send (TypeError before anything is sent)."""


def nested(levels: int, leaf: Any = 0) -> Any:
    """``levels`` levels of arrays and objects around ``leaf``."""
    value = leaf
    for level in range(levels):
        value = [value] if level % 2 else {'d': value}
    return value


def random_string(rng: random.Random, pieces: int = 6) -> str:
    parts = []
    for _ in range(rng.randrange(pieces + 1)):
        pick = rng.random()
        if pick < 0.6:
            parts.append(rng.choice(STRING_PIECES))
        elif pick < 0.8:
            parts.append(chr(rng.randrange(0x20, 0x3000)))
        elif pick < 0.9:
            parts.append(chr(rng.randrange(0xD800, 0xE000)))  # any surrogate, paired by chance
        else:
            parts.append(chr(rng.randrange(0x10000, 0x110000)))
    return ''.join(parts)


def random_number(rng: random.Random) -> int | float:
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(INTEGERS)
    if pick < 0.7:
        return rng.choice(FLOATS)
    if pick < 0.85:
        return rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-300, 290)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value that crosses unchanged (up to ``page_form``), at most 5 levels deep."""
    pick = rng.random()
    if depth >= 5 or pick < 0.45:
        kind = rng.randrange(5)
        if kind == 0:
            return rng.choice([None, True, False])
        if kind in (1, 2):
            return random_number(rng)
        return random_string(rng)
    if pick < 0.75:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        rng.choice(KEYS) if rng.random() < 0.6 else random_string(rng, 2): random_value(
            rng, depth + 1
        )
        for _ in range(rng.randrange(5))
    }


def random_payload(rng: random.Random, max_levels: int) -> Any:
    """A value for a call: usually small and odd, sometimes nested up to ``max_levels``."""
    if rng.random() < 0.12:
        levels = rng.randint(max_levels - 6, max_levels)
        return nested(levels, random_value(rng, 5))
    return random_value(rng)


def page_form(value: Any) -> Any:
    """``value`` as it comes back from the page: a Python pair of surrogates is one character
    there (lone surrogates stay as they are); tuples are arrays."""
    if isinstance(value, str):
        return value.encode('utf-16-le', 'surrogatepass').decode('utf-16-le', 'surrogatepass')
    if isinstance(value, (list, tuple)):
        return [page_form(item) for item in value]
    if isinstance(value, dict):
        return {page_form(key): page_form(item) for key, item in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by value (2 == 2.0), but booleans only to booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return type(a) is type(b) and a == b


def to_page_text(value: Any) -> str:
    """JSON text of ``value`` in ASCII (lone surrogates as escapes), for ``JSON.parse`` in the
    page: Playwright then carries only plain ASCII."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def from_page_text(text: str) -> Any:
    """What ``JSON.parse`` makes of ``text``: integers beyond 2**53 - 1 are doubles."""
    return json.loads(text, parse_int=_page_int)


def _page_int(digits: str) -> int | float:
    value = int(digits)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(digits)


def stream_bytes(call_id: int, size: int) -> bytes:
    """The bytes of stream ``call_id``; the page makes the same ones (``bytesOf``)."""
    return bytes((call_id * 7 + index * 13) & 255 for index in range(size))


def digest(data: bytes) -> list:
    return [len(data), hashlib.sha256(data).hexdigest()]


async def chunked(data: bytes, chunk: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def difference(a: Any, b: Any, path: str = 'value') -> str:
    """Where ``a`` and ``b`` first differ (for failure messages), or ''."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if found := difference(x, y, f'{path}[{index}]'):
                return found
        return ''
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for key in a:
            if found := difference(a[key], b[key], f'{path}[{key!r}]'):
                return found
        return ''
    return '' if same(a, b) else f'{path}: {a!r:.200} != {b!r:.200}'


def utf16_hash(text: str) -> list:
    """[length, FNV-1a of the UTF-16 code units] of ``text``, as the page computes them."""
    units = memoryview(text.encode('utf-16-le', 'surrogatepass')).cast('H')
    value = 2166136261
    for unit in units:
        value = ((value ^ unit) * 16777619) & 0xFFFFFFFF
    return [len(units), value]
