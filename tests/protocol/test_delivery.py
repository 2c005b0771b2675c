"""The one-way-per-frame rule of protocol/delivery.py, without a loop or a socket."""

from __future__ import annotations

from jchannel_http.protocol.calls import CallTable
from jchannel_http.protocol.delivery import Delivery, first_entries, with_frames
from jchannel_http.protocol.frames import Result
from jchannel_http.protocol.session import Entry


def entries(*seqs: int, size: int = 10) -> list[Entry]:
    return [Entry(seq, Result(seq, None), b'x' * size) for seq in seqs]


def seqs(items: list[Entry]) -> list[int]:
    return [entry.seq for entry in items]


def test_a_frame_a_stream_handed_out_is_never_carried_by_a_post() -> None:
    delivery = Delivery()
    delivery.handed_out(entries(1, 2), by_post=False)
    assert seqs(delivery.for_post(entries(1, 2, 3))) == [3]
    assert delivery.post_after(0) == 2 and delivery.post_after(5) == 5


def test_a_carried_frame_goes_again_by_post_only_until_acknowledged() -> None:
    delivery = Delivery()
    delivery.handed_out(entries(1, 2), by_post=True)
    assert seqs(delivery.for_stream(entries(1, 2, 3))) == [3]
    delivery.handed_out(entries(3), by_post=False)  # a stream took 3 meanwhile
    assert seqs(delivery.for_post(entries(1, 2, 3))) == [1, 2]  # the lost answer, again
    delivery.acknowledged(1)
    assert delivery.carried == {2}
    assert seqs(delivery.for_stream(entries(2, 3))) == [3]


def test_every_frame_has_exactly_one_way() -> None:
    delivery = Delivery()
    delivery.handed_out(entries(1, 2), by_post=False)
    delivery.handed_out(entries(3, 4), by_post=True)
    pending = entries(1, 2, 3, 4, 5)
    by_stream = set(seqs(delivery.for_stream(pending)))
    by_post = set(seqs(delivery.for_post(pending)))
    assert by_stream & by_post == {5}  # the new one: whichever way hands it out first
    assert by_stream | by_post == {1, 2, 3, 4, 5}


def test_first_entries_keep_at_least_one_and_stop_at_the_limit() -> None:
    assert seqs(first_entries(entries(1, 2, 3, size=10), 25)) == [1, 2]
    assert seqs(first_entries(entries(1, 2, size=100), 25)) == [1]
    assert first_entries([], 25) == []


def test_frames_join_the_fields_as_they_were_encoded() -> None:
    assert with_frames(b'{"ack":3}', entries(1, 2, size=1)) == b'{"ack":3,"frames":[x,x]}'


def test_call_ids_are_never_reused_and_a_closed_call_finds_nobody() -> None:
    table: CallTable[str] = CallTable()
    first = table.open('a')
    table.close(first)
    second = table.open('b')
    assert second != first and table.waiter(first) is None and table.waiter(second) == 'b'
    assert len(table) == 1 and table.drain() == ['b'] and len(table) == 0
