"""The shared conformance vectors (tests/vectors/*.json) against the kernel's protocol core.

tests/js/vectors.test.mjs runs the same cases against the page's (client_js/frames.js and
client_js/session.js), so both sides keep the rules of docs/protocol.md alike. No server, no
socket: frames and sessions only (the kernel side's sends go through ``Link``, whose waiting
for room is part of the rule, on an event loop of its own).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import pytest

from jchannel_http.errors import ProtocolError, ResyncError
from jchannel_http.kernel.link import Link
from jchannel_http.options import Options
from jchannel_http.protocol.frames import (
    TYPES,
    Frame,
    Invalid,
    decode,
    decode_item,
    encode,
    to_dict,
)
from jchannel_http.protocol.session import Entry, Prepared

VECTORS = pathlib.Path(__file__).parents[1] / 'vectors'
FRAMES = json.loads((VECTORS / 'frames.json').read_text(encoding='utf-8'))
SESSIONS = json.loads((VECTORS / 'sessions.json').read_text(encoding='utf-8'))


def _named(cases: list[dict[str, Any]]) -> Any:
    names = [case['name'] for case in cases]
    assert len(set(names)) == len(names), 'vector names must be unique'
    return pytest.mark.parametrize('case', cases, ids=names)


# -- frames ----------------------------------------------------------------------------------


@_named(FRAMES['valid'])
def test_valid_frame(case: dict[str, Any]) -> None:
    data = json.loads(case['json'])
    seq, frame = decode(data)
    assert seq == case['seq']
    assert to_dict(seq, frame) == {'seq': case['seq'], **case['frame']}
    assert list(to_dict(seq, frame)) == ['seq', *case['frame']]  # the table's order
    assert encode(case['seq'], frame).decode() == case['json']


@_named(FRAMES['invalid'])
def test_invalid_frame(case: dict[str, Any]) -> None:
    allowed = case.get('allowed')
    if allowed is None:
        with pytest.raises(ProtocolError) as raised:
            decode(case['data'])
        assert case['error'] in str(raised.value)
    expected = case['item']
    if expected is None:
        with pytest.raises(ProtocolError) as raised:
            decode_item(case['data'])
        assert case['error'] in str(raised.value)
        return
    kinds = None if allowed is None else tuple(TYPES[name] for name in allowed)
    seq, item = decode_item(case['data'], kinds)
    assert isinstance(item, Invalid)
    assert (seq, item.call, item.kind) == (expected['seq'], expected['call'], expected['kind'])
    assert case['error'] in item.reason


def test_frame_vectors_cover_every_type() -> None:
    assert {case['frame']['type'] for case in FRAMES['valid']} == set(TYPES)


# -- sessions --------------------------------------------------------------------------------


def _error_code(exc: Exception) -> str:
    """The vectors' name for an error of the kernel's core."""
    text = str(exc)
    if isinstance(exc, ProtocolError) and 'too far ahead' in text:
        return 'too_far_ahead'
    if isinstance(exc, ProtocolError) and 'beyond the last frame sent' in text:
        return 'beyond_sent'
    if isinstance(exc, ResyncError) and 'frames were sent' in text:
        return 'beyond_sent'
    raise AssertionError(f'an error the vectors do not name: {exc!r}')


def _frame(fields: dict[str, Any]) -> Frame:
    return decode({'seq': 1, **fields})[1]


class KernelSide:
    """A ``Link`` with the case's bounds, the vectors' operations as its methods."""

    def __init__(self, config: dict[str, int]) -> None:
        self.link = Link(
            Options(
                outbox_messages=config.get('max_messages', 10_000),
                outbox_bytes=config.get('max_bytes', 32 * 1024 * 1024),
                max_ahead=config.get('max_ahead', 10_000),
            )
        )
        self.sends: list[asyncio.Task[Entry]] = []

    async def settle(self) -> None:
        """Let every sender that can go on do so."""
        for _ in range(20):
            await asyncio.sleep(0)

    @property
    def waiting(self) -> int:
        return sum(not task.done() for task in self.sends)

    async def step(self, step: dict[str, Any]) -> None:
        op = step['op']
        outbox = self.link.session.outbox
        if op == 'send':
            task = asyncio.ensure_future(self.link.send(Prepared.of(_frame(step['frame']))))
            self.sends.append(task)
            await self.settle()
            if step.get('waits'):
                assert not task.done(), 'the frame was numbered at once'
            else:
                assert task.done(), 'the frame waits for room'
                assert task.result().seq == step['seq']
        elif op == 'ack':
            self._expect(step, lambda: self.link.acknowledge(step['upto']))
            await self.settle()
        elif op == 'receive':
            delivered = self._expect(
                step, lambda: self.link.receive([(step['seq'], step['frame'])])
            )
            if 'delivered' in step:
                assert delivered == step['delivered']
        elif op == 'reconnect':
            entries = self._expect(step, lambda: self.link.resume(step['cursor']))
            if 'resent' in step:
                assert [entry.seq for entry in entries] == step['resent']
            await self.settle()
        elif op == 'check':
            inbox = self.link.session.inbox
            state = {
                'cursor': inbox.cursor,
                'held': inbox.held,
                'last_seq': outbox.last_seq,
                'acked': outbox.acked,
                'waiting': self.waiting,
                'bytes': outbox.bytes,
                'outbox': [entry.data.decode() for entry in outbox.entries()],
            }
            expected = {name: value for name, value in step.items() if name != 'op'}
            assert {name: state[name] for name in expected} == expected
        else:
            raise AssertionError(f'unknown operation {op!r}')

    @staticmethod
    def _expect(step: dict[str, Any], action: Any) -> Any:
        if 'error' not in step:
            return action()
        with pytest.raises((ProtocolError, ResyncError)) as raised:
            action()
        assert _error_code(raised.value) == step['error']
        return None

    def close(self) -> None:
        for task in self.sends:
            task.cancel()


@_named(SESSIONS['cases'])
def test_session_case(case: dict[str, Any]) -> None:
    async def run() -> None:
        side = KernelSide(case['config'])
        try:
            for number, step in enumerate(case['steps']):
                try:
                    await side.step(step)
                except AssertionError as exc:
                    raise AssertionError(f'step {number} {step}: {exc}') from exc
        finally:
            side.close()
            await side.settle()

    asyncio.run(run())
