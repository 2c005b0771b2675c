"""The pure core, paired: two sessions exchange frames through a network that drops,
repeats and reorders, and every frame arrives exactly once, in order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jchannel_http.errors import ProtocolError, ResyncError
from jchannel_http.protocol.frames import Call, Result
from jchannel_http.protocol.session import Inbox, Outbox, OutboxFull, Session


class Network:
    """Carries (seq, frame) packets and acks between two sessions, with faults."""

    def __init__(self, rng: random.Random, drop: float, repeat: float, reorder: bool) -> None:
        self.rng = rng
        self.drop = drop
        self.repeat = repeat
        self.reorder = reorder

    def carry(self, packets: list) -> list:
        out = []
        for packet in packets:
            if self.rng.random() < self.drop:
                continue
            out.append(packet)
            if self.rng.random() < self.repeat:
                out.append(packet)
        if self.reorder:
            self.rng.shuffle(out)
        return out


def exchange(sender: Session, receiver: Session, network: Network, delivered: list) -> None:
    """One round: the sender replays its outbox, the receiver takes what arrives and acks."""
    packets = [(entry.seq, entry.frame) for entry in sender.outbox.entries()]
    for seq, frame in network.carry(packets):
        delivered.extend(receiver.inbox.receive(seq, frame))
    if network.rng.random() >= network.drop:  # the ack can be lost too
        sender.outbox.ack(receiver.inbox.cursor)


def run_pair(seed: int, count: int, drop: float, repeat: float, reorder: bool) -> None:
    rng = random.Random(seed)
    kernel, page = Session('k'), Session('p')
    network = Network(rng, drop, repeat, reorder)
    to_page: list = []
    to_kernel: list = []
    sent = 0
    for _ in range(10_000):  # bounded: far more rounds than any seed needs
        while sent < count and kernel.outbox.has_room() and page.outbox.has_room():
            sent += 1
            kernel.outbox.push(Call(sent, 1, 'f', [sent]))
            page.outbox.push(Result(sent, sent))
        exchange(kernel, page, network, to_page)
        exchange(page, kernel, network, to_kernel)
        if sent == count and not len(kernel.outbox) and not len(page.outbox):
            break
    assert [frame.args[0] for frame in to_page] == list(range(1, count + 1))
    assert [frame.value for frame in to_kernel] == list(range(1, count + 1))
    assert len(kernel.outbox) == len(page.outbox) == 0
    assert kernel.outbox.bytes == page.outbox.bytes == 0


@pytest.mark.parametrize('seed', range(20))
def test_exactly_once_in_order_under_drops_repeats_and_reorders(seed: int) -> None:
    run_pair(seed, count=300, drop=0.3, repeat=0.3, reorder=True)


def test_perfect_network_needs_one_round_per_batch() -> None:
    run_pair(0, count=50, drop=0.0, repeat=0.0, reorder=False)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 120),
    drop=st.floats(0, 0.6),
    repeat=st.floats(0, 0.6),
    reorder=st.booleans(),
)
def test_any_fault_pattern_delivers_exactly_once(seed, count, drop, repeat, reorder) -> None:
    run_pair(seed, count, drop, repeat, reorder)


def test_outbox_numbers_from_one_and_acks_cumulatively() -> None:
    outbox = Outbox()
    seqs = [outbox.push(Result(i, i)).seq for i in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [entry.seq for entry in outbox.ack(3)] == [1, 2, 3]
    assert len(outbox) == 2 and outbox.acked == 3
    assert outbox.ack(2) == []  # a stale ack changes nothing
    assert outbox.acked == 3
    with pytest.raises(ProtocolError, match='beyond'):
        outbox.ack(9)


def test_outbox_entry_bytes_are_the_encoded_frame() -> None:
    outbox = Outbox()
    entry = outbox.push(Result(7, {'a': [1, 'é']}))
    assert entry.data == '{"seq":1,"type":"result","call":7,"value":{"a":[1,"é"]}}'.encode()
    assert outbox.bytes == len(entry.data)


def test_outbox_bounds_refuse_without_dropping() -> None:
    outbox = Outbox(max_messages=2, max_bytes=10_000)
    outbox.push(Result(1, 1))
    outbox.push(Result(2, 2))
    assert not outbox.has_room()
    with pytest.raises(OutboxFull):
        outbox.push(Result(3, 3))
    assert outbox.last_seq == 2  # the refused frame took no number
    outbox.ack(1)
    assert outbox.push(Result(3, 3)).seq == 3


def test_outbox_byte_bound_still_lets_one_big_frame_through() -> None:
    outbox = Outbox(max_messages=100, max_bytes=64)
    outbox.push(Result(1, 'x' * 500))
    assert not outbox.has_room(10)
    outbox.ack(1)
    assert outbox.has_room(10)


def test_since_serves_the_tail_or_raises_resync() -> None:
    outbox = Outbox()
    for i in range(1, 6):
        outbox.push(Result(i, i))
    outbox.ack(2)
    assert [entry.seq for entry in outbox.since(3)] == [4, 5]
    assert [entry.seq for entry in outbox.since(2)] == [3, 4, 5]
    with pytest.raises(ResyncError, match='no longer held'):
        outbox.since(1)
    with pytest.raises(ResyncError, match='only 5'):
        outbox.since(6)


def test_resume_acknowledges_the_cursor() -> None:
    session = Session('s')
    for i in range(1, 4):
        session.outbox.push(Result(i, i))
    assert [entry.seq for entry in session.resume(1)] == [2, 3]
    assert session.outbox.acked == 1 and len(session.outbox) == 2


def test_inbox_holds_gaps_and_drops_duplicates() -> None:
    a, b, c, d, e, f = (Result(call, None) for call in range(1, 7))
    inbox = Inbox(max_ahead=2)
    assert inbox.receive(2, b) == []
    assert inbox.receive(2, b) == []
    assert inbox.held == 1
    assert inbox.receive(1, a) == [a, b]
    assert inbox.receive(1, a) == []
    assert inbox.cursor == 2 and inbox.duplicates == 2
    inbox.receive(4, d)
    inbox.receive(5, e)
    with pytest.raises(ProtocolError, match='too far ahead'):
        inbox.receive(6, f)
    assert inbox.receive(3, c) == [c, d, e]


def test_inbox_bound_is_the_distance_from_the_cursor_not_the_count_held() -> None:
    inbox = Inbox(max_ahead=2)
    c, e = Result(3, None), Result(5, None)
    assert inbox.receive(3, c) == []  # cursor + 1 + max_ahead: the farthest one held
    with pytest.raises(ProtocolError, match='too far ahead of cursor 0'):
        inbox.receive(5, e)  # only one frame is held, but 5 is beyond 0 + 1 + 2
    assert inbox.held == 1


def test_inbox_refuses_a_batch_whole_when_a_frame_is_too_far_even_after_the_cursor_moves() -> None:
    inbox = Inbox(max_ahead=1)
    a, b, c, d, f, g = (Result(call, None) for call in (1, 2, 3, 4, 6, 7))
    assert inbox.receive_all([(3, c), (1, a), (2, b)]) == [a, b, c]
    with pytest.raises(ProtocolError, match='too far ahead'):
        inbox.receive_all([(4, d), (7, g)])  # 7 > 4 + 1 + 1
    assert inbox.cursor == 3 and inbox.held == 0
    assert inbox.receive_all([(6, f), (4, d)]) == [d]
    assert inbox.held == 1
