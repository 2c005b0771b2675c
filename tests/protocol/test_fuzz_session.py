"""Property test of the pure core with reconnects and resyncs.

Hypothesis drives a kernel Session and a page Session through any sequence of sends, lost,
repeated and reordered frames and acknowledgements, batches refused for holding too much,
stream reconnects from honest but stale cursors, claims of a cursor the kernel no longer
holds, and page reloads. Whatever happens, each direction delivers a prefix of what was sent,
each frame once and in order; at the end either everything arrives, or the session ended in
an explicit ResyncError (or a reload's new session) and what did not arrive is known.

A peer is assumed never to acknowledge a frame it did not process: the token makes every
peer trusted, and the core cannot tell such a lie from the truth.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jchannel_http.errors import ProtocolError, ResyncError
from jchannel_http.protocol.frames import Call, Incoming, Result
from jchannel_http.protocol.session import Session

MAX_MESSAGES = 6
MAX_AHEAD = 1


def first_arg(frame: Incoming) -> Any:
    """The argument a kernel -> page call of this machine carries."""
    assert isinstance(frame, Call), frame
    return frame.args[0]


def value_of(frame: Incoming) -> Any:
    """The value a page -> kernel result of this machine carries."""
    assert isinstance(frame, Result), frame
    return frame.value


class Epoch:
    """One session on each side, and what each side sent and received in it."""

    def __init__(self, number: int) -> None:
        self.kernel = Session(f'k{number}', MAX_MESSAGES, 1 << 20, MAX_AHEAD)
        self.page = Session(f'p{number}', MAX_MESSAGES, 1 << 20, MAX_AHEAD)
        self.kernel_sent: list[int] = []
        self.page_sent: list[int] = []
        self.page_got: list[int] = []
        self.kernel_got: list[int] = []
        self.to_page: list = []  # (seq, frame) on the kernel -> page stream
        self.to_kernel_acks: list[int] = []
        self.to_page_acks: list[int] = []

    def check_prefixes(self) -> None:
        assert self.page_got == self.kernel_sent[: len(self.page_got)]
        assert self.kernel_got == self.page_sent[: len(self.kernel_got)]


class CoreWithFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.ended: list[tuple[str, Epoch]] = []
        self.epoch = Epoch(0)

    def _value(self) -> int:
        self.counter += 1
        return self.counter

    def _end(self, how: str) -> None:
        self.epoch.check_prefixes()
        self.ended.append((how, self.epoch))
        self.epoch = Epoch(len(self.ended))

    # -- sending ---------------------------------------------------------------------------

    @rule(count=st.integers(1, MAX_MESSAGES))
    def kernel_sends(self, count: int) -> None:
        e = self.epoch
        for _ in range(count):
            if not e.kernel.outbox.has_room():  # the sender waits: nothing is dropped
                break
            value = self._value()
            entry = e.kernel.outbox.push(Call(value, 1, 'f', [value]))
            e.kernel_sent.append(value)
            e.to_page.append((entry.seq, entry.frame))  # the open stream writes it at once

    @rule(count=st.integers(1, MAX_MESSAGES))
    def page_sends(self, count: int) -> None:
        e = self.epoch
        for _ in range(count):
            if not e.page.outbox.has_room():
                break
            value = self._value()
            e.page.outbox.push(Result(value, value))
            e.page_sent.append(value)

    # -- the kernel -> page stream ---------------------------------------------------------

    @precondition(lambda self: self.epoch.to_page)
    @rule(pick=st.integers(0, 1000), keep=st.booleans())
    def stream_delivers_one(self, pick: int, keep: bool) -> None:
        """Any frame on the stream arrives (reordered); kept on the wire, it may come again."""
        e = self.epoch
        index = pick % len(e.to_page)
        seq, frame = e.to_page[index] if keep else e.to_page.pop(index)
        inbox = e.page.inbox
        before = (inbox.cursor, inbox.held)
        try:
            ready = inbox.receive(seq, frame)
        except ProtocolError as exc:  # refused, as if lost: the kernel still holds it
            assert 'too far ahead' in str(exc) and (inbox.cursor, inbox.held) == before
            return
        e.page_got.extend(first_arg(f) for f in ready)

    @precondition(lambda self: self.epoch.to_page)
    @rule(pick=st.integers(0, 1000))
    def stream_loses_one(self, pick: int) -> None:
        e = self.epoch
        e.to_page.pop(pick % len(e.to_page))

    @rule(behind=st.integers(0, 3))
    def stream_reconnects(self, behind: int) -> None:
        """The page opens a new stream from its cursor, or from an older one it still holds."""
        e = self.epoch
        claim = max(0, e.page.inbox.cursor - behind)
        acked = e.kernel.outbox.acked
        try:
            entries = e.kernel.resume(claim)
        except ResyncError:
            assert claim < acked
            self._end('resync')
            return
        assert claim >= acked
        assert [entry.seq for entry in entries] == list(
            range(claim + 1, e.kernel.outbox.last_seq + 1)
        )
        e.to_page = [(entry.seq, entry.frame) for entry in entries]  # the old stream is gone

    @rule(beyond=st.integers(1, 3))
    def stream_claims_more_than_was_sent(self, beyond: int) -> None:
        """A page from before a kernel restart claims frames this session never sent."""
        e = self.epoch
        with pytest.raises(ResyncError, match='were sent'):
            e.kernel.resume(e.kernel.outbox.last_seq + beyond)
        self._end('resync')

    # -- page -> kernel batches ------------------------------------------------------------

    @precondition(lambda self: len(self.epoch.page.outbox) > 0)
    @rule(picks=st.lists(st.integers(0, 1000), min_size=1, max_size=8))
    def page_posts(self, picks: list[int]) -> None:
        """A POST carries any selection of the page's outbox, with repeats, in any order."""
        e = self.epoch
        entries = e.page.outbox.entries()
        self._post(
            [(entries[p % len(entries)].seq, entries[p % len(entries)].frame) for p in picks]
        )

    @precondition(lambda self: len(self.epoch.page.outbox) > 0)
    @rule(skip=st.integers(0, MAX_MESSAGES - 1))
    def page_posts_all_but_one(self, skip: int) -> None:
        """A POST whose batch lost one frame: what follows the gap must wait (or be refused)."""
        entries = self.epoch.page.outbox.entries()
        self._post([(entry.seq, entry.frame) for i, entry in enumerate(entries) if i != skip])

    def _post(self, batch: list) -> None:
        e = self.epoch
        inbox = e.kernel.inbox
        before = (inbox.cursor, inbox.held, inbox.duplicates)
        try:
            ready = inbox.receive_all(batch)
        except ProtocolError as exc:
            assert 'too far ahead' in str(exc)
            assert (inbox.cursor, inbox.held, inbox.duplicates) == before  # none was taken
            return
        e.kernel_got.extend(value_of(frame) for frame in ready)
        e.to_page_acks.append(inbox.cursor)  # the POST's answer
        e.to_kernel_acks.append(e.page.inbox.cursor)  # the POST's own ack field

    # -- acknowledgements, late, repeated and reordered -------------------------------------

    @precondition(lambda self: self.epoch.to_kernel_acks)
    @rule(pick=st.integers(0, 1000))
    def kernel_gets_an_ack(self, pick: int) -> None:
        e = self.epoch
        ack = e.to_kernel_acks[pick % len(e.to_kernel_acks)]
        e.kernel.outbox.ack(ack)
        assert e.kernel.outbox.acked >= ack

    @precondition(lambda self: self.epoch.to_page_acks)
    @rule(pick=st.integers(0, 1000))
    def page_gets_an_ack(self, pick: int) -> None:
        e = self.epoch
        e.page.outbox.ack(e.to_page_acks[pick % len(e.to_page_acks)])

    @rule(beyond=st.integers(1, 3))
    def an_ack_beyond_what_was_sent_changes_nothing(self, beyond: int) -> None:
        outbox = self.epoch.kernel.outbox
        before = (outbox.acked, len(outbox), outbox.bytes)
        with pytest.raises(ProtocolError, match='beyond the last frame sent'):
            outbox.ack(outbox.last_seq + beyond)
        assert (outbox.acked, len(outbox), outbox.bytes) == before

    # -- the page goes away ----------------------------------------------------------------

    @rule()
    def page_reloads(self) -> None:
        """A new page takes over: the server starts a new session (see Server.admit)."""
        self._end('reload')

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def delivered_exactly_once_in_order(self) -> None:
        self.epoch.check_prefixes()

    @invariant()
    def outboxes_hold_exactly_the_unacknowledged(self) -> None:
        for session, sent in (
            (self.epoch.kernel, self.epoch.kernel_sent),
            (self.epoch.page, self.epoch.page_sent),
        ):
            outbox = session.outbox
            assert outbox.last_seq == len(sent)
            assert [entry.seq for entry in outbox.entries()] == list(
                range(outbox.acked + 1, outbox.last_seq + 1)
            )
            assert outbox.bytes == sum(len(entry.data) for entry in outbox.entries())

    def teardown(self) -> None:
        """Heal the network: everything still held arrives, once, in order."""
        e = self.epoch
        for _ in range(4 * MAX_MESSAGES + 4):  # bounded; each round moves every held frame
            for entry in e.kernel.resume(e.page.inbox.cursor):
                e.page_got.extend(
                    first_arg(f) for f in e.page.inbox.receive(entry.seq, entry.frame)
                )
            batch = [(entry.seq, entry.frame) for entry in e.page.outbox.entries()]
            e.kernel_got.extend(value_of(f) for f in e.kernel.inbox.receive_all(batch))
            e.page.outbox.ack(e.kernel.inbox.cursor)
            e.kernel.outbox.ack(e.page.inbox.cursor)
            if not len(e.kernel.outbox) and not len(e.page.outbox):
                break
        assert e.page_got == e.kernel_sent
        assert e.kernel_got == e.page_sent
        for how, ended in self.ended:
            assert how in ('resync', 'reload')
            ended.check_prefixes()


CoreWithFaults.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_core_with_faults_reconnects_and_resyncs = CoreWithFaults.TestCase
