"""What a value may be to cross the wire, and its JSON bytes.

Values (call arguments, results) cross as JSON, which the page reads with ``JSON.parse``. A
value that would not arrive as it left is refused with a ``TypeError`` that says where it sits
(``args[2]['x']: NaN``) before anything is sent: NaN and infinities (JSON has no token for
them), integers beyond +/-(2**53 - 1) (JavaScript would round them), dict keys that are not
strings, types JSON has no form for, and nesting deeper than ``MAX_DEPTH``.

Converted on the way, as orjson does: tuples become arrays; ``datetime``, ``date`` and ``time``
RFC 3339 strings; ``UUID`` its string; an ``Enum`` its value; a dataclass an object of its
fields; numpy scalars numbers or booleans and numpy arrays (nested) arrays.

Strings may hold lone surrogates (half of a UTF-16 pair, as ``s[:n]`` of an emoji cut in two
can make on the page): they travel as ``\\udXXX`` escapes and arrive as the same lone surrogate,
in both directions, since Python and JavaScript strings can both hold one. (A high surrogate
followed by a low one in a Python string arrives as the one character the pair encodes: a
JavaScript string cannot tell the two apart.)
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any, TypeAlias

import orjson

JsonValue: TypeAlias = bool | int | float | str | list['JsonValue'] | dict[str, 'JsonValue'] | None
"""A value as it arrives from the page (``JSON.parse``'s result, read by orjson): what a call
gives back when the page method returned no stream."""

MAX_DEPTH = 250
"""Most levels of arrays and objects in a value; deeper values are refused on both sides."""
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript number holds exactly."""

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_STRICT_INTEGER
_SURROGATES = 'surrogates not allowed'


def _orjson_levels() -> int:
    """The most levels of arrays orjson writes (it refuses deeper values)."""
    value: Any = 0
    for levels in range(1, 4097):
        value = [value]
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return levels - 1
    return 4096


_WRAP = max(0, _orjson_levels() - MAX_DEPTH - 1)
"""Arrays put around a value before orjson writes it, so that orjson's own nesting limit
refuses exactly the values whose members are nested deeper than ``MAX_DEPTH``: those are then
walked, and refused naming their place."""


def _numpy_default(value: Any) -> Any:
    """orjson's fallback for numpy values its own support leaves out (object arrays, ...)."""
    numpy = sys.modules.get('numpy')
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    raise TypeError


def dumps(value: Any) -> bytes:
    """JSON bytes of a protocol object (a frame, an HTTP answer) whose user values were checked."""
    try:
        return orjson.dumps(value, default=_numpy_default, option=_OPTIONS)
    except TypeError as exc:
        if _SURROGATES not in str(exc):
            raise TypeError(f'cannot send this value as JSON: {exc}') from exc
        return _dumps_with_surrogates(value)


def _dumps_with_surrogates(value: Any) -> bytes:
    """The slow way, for strings holding lone surrogates: the standard library writes them as
    ``\\udXXX`` escapes (orjson refuses them); other types are converted as orjson does."""

    def default(item: Any) -> Any:
        return orjson.loads(dumps(item))

    return json.dumps(
        value, ensure_ascii=True, allow_nan=False, separators=(',', ':'), default=default
    ).encode('ascii')


def loads(data: bytes | str) -> Any:
    """Parse JSON from the page; lone surrogate escapes (which orjson refuses) are kept.

    A number is what ``JSON.parse`` makes of it: an integer literal beyond +/-(2**53 - 1) is
    the JavaScript number (a float) it stands for. ``JSON.stringify`` writes large numbers such
    as ``2**60`` as integer literals (``1152921504606847000``), which Python would read as
    another integer, and one that could not be sent back.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if 'surrogate' not in str(exc):
            raise
        try:
            value = json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise exc from None
    if (
        _LONG_DIGITS.search(data)
        if isinstance(data, (bytes, bytearray, memoryview))
        else _LONG_DIGITS_TEXT.search(data)
    ):
        value = _as_doubles(value)
    return value


_LONG_DIGITS = re.compile(rb'[0-9]{16}')
_LONG_DIGITS_TEXT = re.compile(r'[0-9]{16}')
"""Integers beyond 2**53 - 1 have 16 digits or more: only then are the parsed values walked."""


def _as_doubles(value: Any) -> Any:
    """``value`` with every integer beyond +/-(2**53 - 1) made a float, in place."""
    if not isinstance(value, (dict, list)):
        return _as_double(value) if _is_unsafe_integer(value) else value
    stack = [value]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in list(pairs):
            if isinstance(child, (dict, list)):
                stack.append(child)
            elif _is_unsafe_integer(child):
                item[key] = _as_double(child)
    return value


def _is_unsafe_integer(value: Any) -> bool:
    return type(value) is int and abs(value) > MAX_SAFE_INTEGER


def _as_double(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # JSON.parse makes it an infinity
        return math.copysign(math.inf, value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f'{name} is not JSON')


def encode_checked(value: Any, fields: dict[str, Any]) -> bytes:
    """JSON bytes of ``value`` after checking its user values, ``fields`` (root name -> value).

    Raises TypeError naming the first value that cannot cross (see the module's docstring).
    ``fields`` are members of the object ``value``. The values are walked only when orjson
    refused something (nesting deeper than ``MAX_DEPTH`` included) or wrote a ``null``.
    """
    wrapped = value
    for _ in range(_WRAP):
        wrapped = [wrapped]
    try:
        data = orjson.dumps(wrapped, default=_numpy_default, option=_OPTIONS)
        if _WRAP:
            data = data[_WRAP:-_WRAP]
    except TypeError as exc:
        for root, item in fields.items():
            _raise_problem(root, item)
        if _SURROGATES in str(exc):
            return _dumps_with_surrogates(value)
        raise TypeError(f'cannot send this value as JSON: {exc}') from exc
    if b'null' in data:  # orjson writes NaN and infinities as null
        for root, item in fields.items():
            _raise_problem(root, item, floats_only=True)
    return data


def _raise_problem(root: str, value: Any, floats_only: bool = False) -> None:
    for path, problem in _problems(root, value, floats_only):
        if len(path) > 120:  # deep nesting: its start and its end say enough
            head, tail = path[:60], path[-50:]
            path = f'{head[: head.rfind("[")]}...{tail[tail.find("[") :]}'
        raise TypeError(f'cannot send {path}: {problem}')


def _problems(root: str, value: Any, floats_only: bool) -> Iterator[tuple[str, str]]:
    """Where ``value`` holds something that cannot cross, first found first."""
    numpy = sys.modules.get('numpy')
    stack: list[tuple[str, Any, int]] = [(root, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, (str, bool)) or item is None:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                yield path, f'{item!r} (JSON has no NaN or infinity)'
            continue
        if isinstance(item, int):
            if not floats_only and abs(item) > MAX_SAFE_INTEGER:
                yield (
                    path,
                    (
                        f'the integer {item} is beyond +/-(2**53 - 1), so JavaScript '
                        'would round it (send it as a string)'
                    ),
                )
            continue
        if numpy is not None and isinstance(item, numpy.generic):
            stack.append((path, item.item(), depth))
            continue
        if numpy is not None and isinstance(item, numpy.ndarray):
            if item.dtype.kind == 'f' and not bool(numpy.isfinite(item).all()):
                yield path, 'a numpy array holding NaN or infinity (JSON has none)'
            elif item.dtype.kind == 'c':
                yield path, 'a numpy array of complex numbers (JSON has no complex numbers)'
            elif item.dtype.kind == 'O':
                stack.append((path, item.tolist(), depth))
            continue
        if isinstance(item, enum.Enum):
            stack.append((path, item.value, depth))
            continue
        if depth >= MAX_DEPTH and isinstance(item, (dict, list, tuple)):
            yield (
                path,
                (
                    f'nesting deeper than {MAX_DEPTH} levels of arrays and objects '
                    '(or a value that contains itself)'
                ),
            )
            continue
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                if not isinstance(key, str):
                    if not floats_only:
                        yield path, f'the key {key!r} is not a string (JSON keys are strings)'
                    continue
                children.append((f'{path}[{key!r}]', child, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(
                (f'{path}[{index}]', child, depth + 1)
                for index, child in reversed(list(enumerate(item)))
            )
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(
                (f'{path}.{field.name}', getattr(item, field.name), depth + 1)
                for field in reversed(dataclasses.fields(item))
            )
        elif not floats_only and not _orjson_takes(item):
            yield path, f'a value of type {type(item).__qualname__!r}, which JSON cannot carry'


def _orjson_takes(item: Any) -> bool:
    try:
        orjson.dumps(item, default=_numpy_default, option=_OPTIONS)
    except TypeError as exc:
        return _SURROGATES in str(exc)
    return True
