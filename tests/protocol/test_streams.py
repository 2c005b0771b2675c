"""The pure stream core (no I/O) and MetaGenerator, with chunks split, repeated and reordered."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jchannel_http import MetaGenerator, Progress, ProgressFeed, Source
from jchannel_http.errors import ProtocolError, StateError
from jchannel_http.protocol.streams import SMALL, Backlog, Reassembly


def split(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [(a, data[a:b]) for a, b in itertools.pairwise(points)]


def drain(core: Reassembly) -> bytes:
    out = bytearray()
    while (piece := core.take()) is not None:
        out += piece
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=0, max_size=300),
    st.lists(st.integers(0, 400), max_size=12),
    st.lists(st.integers(0, 400), max_size=12),
    st.randoms(use_true_random=False),
)
def test_reassembly_delivers_every_byte_once_whatever_the_order(data, cuts_a, cuts_b, rnd):
    # Two different splittings of the same bytes (a 413 makes the page re-split), shuffled
    # and repeated: the consumer still gets every byte once, in order.
    chunks = split(data, cuts_a) + split(data, cuts_b)
    chunks += rnd.sample(chunks, len(chunks) // 2)
    rnd.shuffle(chunks)
    core = Reassembly(window=10_000)
    for offset, piece in chunks:
        assert core.put(offset, piece)
    assert core.put(len(data), b'', last=True)
    assert drain(core) == data
    assert core.complete and core.held == 0


def test_reassembly_window_bounds_memory_and_never_deadlocks() -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes in chunks of 512
    chunks = split(data, list(range(0, len(data), 512)))
    core = Reassembly(window=2048)
    waiting = list(reversed(chunks))  # the worst order: the last chunk first
    out = bytearray()
    for _ in range(1000):
        if not waiting:
            break
        waiting = [(o, p) for o, p in waiting if not core.put(o, p)]
        assert core.held <= 2048
        out += core.take() or b''
    out += drain(core)
    assert bytes(out) == data


def test_reassembly_admits_a_chunk_larger_than_the_window_when_empty() -> None:
    core = Reassembly(window=4)
    assert core.put(0, b'0123456789')
    assert not core.put(10, b'abcdef')  # beyond the window while the first is unread
    assert core.take() == b'0123456789'
    assert core.put(10, b'abcdef', last=True)
    assert core.take() == b'abcdef' and core.complete


def test_reassembly_refuses_bytes_after_the_end() -> None:
    core = Reassembly(window=100)
    core.put(0, b'abc', last=True)
    with pytest.raises(ProtocolError, match='after the end'):
        core.put(3, b'd')
    with pytest.raises(ProtocolError, match='moved'):
        core.put(0, b'ab', last=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=SMALL * 2), max_size=20), st.data())
def test_backlog_serves_any_offset_between_acked_and_produced(pieces, draw):
    backlog = Backlog(window=1 << 30)
    data = b''.join(pieces)
    for piece in pieces:
        backlog.append(bytearray(piece))
    assert backlog.produced == len(data)
    acked = draw.draw(st.integers(0, len(data)))
    backlog.ack(acked)
    offset = draw.draw(st.integers(acked, len(data)))
    limit = draw.draw(st.integers(0, len(data) + 1))
    got = b''.join(bytes(view) for view in backlog.read(offset, limit))
    assert got == data[offset : offset + limit]
    assert backlog.held == len(data) - acked


def test_backlog_window_and_errors() -> None:
    backlog = Backlog(window=10)
    backlog.append(b'x' * 10)
    assert not backlog.has_room()
    assert backlog.ack(4) == 4 and backlog.has_room()
    with pytest.raises(ProtocolError, match='acknowledged already'):
        backlog.read(3, 10)
    with pytest.raises(ProtocolError, match='beyond'):
        backlog.ack(11)


class ListSource:
    """A ChunkSource over a list of chunks, optionally failing at the end."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.total: int | None = sum(len(chunk) for chunk in chunks)
        self.cancelled = False

    async def next_chunk(self) -> bytes | None:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return None

    def cancel(self) -> None:
        self.cancelled = True


def meta(*texts: str, error: Exception | None = None) -> MetaGenerator:
    return MetaGenerator(ListSource([text.encode() for text in texts], error))


async def collect(iterator) -> list[str]:
    return [chunk.decode() async for chunk in iterator]


async def test_iteration_keeps_the_chunks_as_sent() -> None:
    assert await collect(meta('a', '', 'bc', '', 'def')) == ['a', '', 'bc', '', 'def']


@pytest.mark.parametrize(
    'texts, expected',
    [
        (['a', '', 'bcd', '', 'efghijk'], ['abcd', 'efgh', 'ijk']),
        (['ab', '', 'cdef', '', 'ghijklmn'], ['abcd', 'efgh', 'ijkl', 'mn']),
        (['abc', '', 'defgh', '', 'ijklmnopq'], ['abcd', 'efgh', 'ijkl', 'mnop', 'q']),
        (['abcd', '', 'efghij', '', 'klmnopqrst'], ['abcd', 'efgh', 'ijkl', 'mnop', 'qrst']),
    ],
)
async def test_by_limit_at_chunk_boundaries(texts, expected) -> None:
    assert await collect(meta(*texts).by_limit(4)) == expected


@pytest.mark.parametrize(
    'texts, expected',
    [
        (
            ['abcdef  ', '', 'ghijk  lmno  ', '', 'pqr  st  u  '],
            ['abcdef  ', 'ghijk  ', 'lmno  ', 'pqr  ', 'st  ', 'u  '],
        ),
        (
            ['  abcdef', '', '  ghijk  lmno', '', '  pqr  st  u'],
            ['  ', 'abcdef  ', 'ghijk  ', 'lmno  ', 'pqr  ', 'st  ', 'u'],
        ),
        (
            [' abcdef ', '', ' ghijk  lmno ', '', ' pqr  st  u '],
            [' abcdef  ', 'ghijk  ', 'lmno  ', 'pqr  ', 'st  ', 'u '],
        ),
        (
            ['abcdef', '', 'ghijk  lmno', '', 'pqr  st  u'],
            ['abcdefghijk  ', 'lmnopqr  ', 'st  ', 'u'],
        ),
    ],
)
async def test_by_separator_at_chunk_boundaries(texts, expected) -> None:
    assert await collect(meta(*texts).by_separator('  ')) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(['a', 'b', '\n', 'xy', '\r\n']), max_size=40),
    st.lists(st.integers(0, 80), max_size=10),
    st.integers(1, 7),
    st.sampled_from(['\n', '\r\n', 'ab']),
)
def test_by_limit_and_by_separator_agree_with_plain_splitting(parts, cuts, limit, separator):
    data = ''.join(parts).encode()
    chunks = [piece for _, piece in split(data, cuts)]
    got = asyncio.run(collect(MetaGenerator(ListSource(chunks)).by_limit(limit)))
    assert got == [data[i : i + limit].decode() for i in range(0, len(data), limit)]
    pieces = asyncio.run(collect(MetaGenerator(ListSource(chunks)).by_separator(separator)))
    assert ''.join(pieces) == data.decode()
    assert all(piece.endswith(separator) for piece in pieces[:-1])
    assert all(separator not in piece[: -len(separator)] for piece in pieces)


@pytest.mark.parametrize(
    'call, error',
    [
        (lambda m: m.by_limit('8192'), TypeError),
        (lambda m: m.by_limit(True), TypeError),
        (lambda m: m.by_limit(0), ValueError),
        (lambda m: m.by_limit(-1), ValueError),
        (lambda m: m.by_separator(True), TypeError),
        (lambda m: m.by_separator(b''), ValueError),
        (lambda m: m.by_separator(''), ValueError),
    ],
)
async def test_validation_errors(call, error) -> None:
    with pytest.raises(error):
        await anext(call(meta('x')))


async def test_join_progress_and_errors() -> None:
    seen: list[Progress] = []
    stream = meta('ab', 'cde')
    stream.on_progress = seen.append
    assert await stream.join() == b'abcde'
    assert [(p.done, p.total, p.delta, p.finished) for p in seen] == [
        (2, 5, 2, False),
        (5, 5, 3, False),
        (5, 5, 0, True),
    ]
    assert await stream.join() == b''  # read: a second reading yields nothing
    assert [chunk async for chunk in stream] == [] and len(seen) == 3
    with pytest.raises(ValueError, match='boom'):
        await meta('a', error=ValueError('boom')).join()


async def test_anext_reads_the_same_bytes_as_a_loop() -> None:
    stream = meta('ab', 'cd', 'e')
    assert await anext(stream) == b'ab'
    assert [chunk async for chunk in stream] == [b'cd', b'e']
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert await anext(stream, None) is None


async def test_a_cancelled_stream_refuses_a_new_reading() -> None:
    source = ListSource([b'a', b'b'])
    stream = MetaGenerator(source)
    async for _ in stream:
        break
    for _ in range(10):  # the loop closes the abandoned generator
        if source.cancelled:
            break
        await asyncio.sleep(0)
    with pytest.raises(StateError, match='cancelled'):
        await stream.join()


async def test_a_consumer_that_stops_early_cancels_the_source() -> None:
    source = ListSource([b'a', b'b', b'c'])
    async for _ in MetaGenerator(source).by_limit(1):
        break
    for _ in range(10):  # the loop closes the abandoned generator
        if source.cancelled:
            break
        await asyncio.sleep(0)
    assert source.cancelled
    complete = ListSource([b'a'])
    assert await MetaGenerator(complete).join() == b'a'
    assert not complete.cancelled


async def test_progress_feed_is_a_callback_and_an_async_iterable() -> None:
    feed = ProgressFeed()
    stream = meta('abc', 'de')
    stream.on_progress = feed
    reader = asyncio.ensure_future(stream.join())
    snapshots = [p async for p in feed]
    assert await reader == b'abcde'
    assert snapshots[-1].finished and snapshots[-1].done == 5
    assert sum(p.delta for p in snapshots) == 5


def test_source_validates_what_it_is_given() -> None:
    async def gen():
        yield b''

    with pytest.raises(TypeError, match='async iterable'):
        Source([b'x'])  # type: ignore[arg-type]  # refused at run time, the point of the test
    with pytest.raises(ValueError, match='total'):
        Source(gen(), total=-1)
    assert Source(gen(), total=3).total == 3
    assert random  # the module is used by hypothesis' randoms
