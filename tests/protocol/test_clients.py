"""One client at a time, with takeover after silence or release."""

from __future__ import annotations

import pytest

from jchannel_http.errors import ProtocolError
from jchannel_http.protocol.clients import Admission, ClientConflict, ClientGate, check_client_id

A, B = 'client-aaaa', 'client-bbbb'


def test_first_client_adopts_then_same() -> None:
    gate = ClientGate(liveness=30)
    assert gate.admit(A, 0) is Admission.FIRST
    assert gate.admit(A, 1) is Admission.SAME


def test_second_client_refused_while_first_is_live() -> None:
    gate = ClientGate(liveness=30)
    gate.admit(A, 0)
    with pytest.raises(ClientConflict, match='another page'):
        gate.admit(B, 29)
    assert gate.current == A


def test_open_stream_keeps_a_client_live_however_long() -> None:
    gate = ClientGate(liveness=30)
    gate.admit(A, 0)
    gate.stream_opened(A, 'sse')
    with pytest.raises(ClientConflict):
        gate.admit(B, 1000)
    gate.stream_closed(A, 1000)
    with pytest.raises(ClientConflict):
        gate.admit(B, 1029)
    assert gate.admit(B, 1031) is Admission.TAKEOVER
    assert gate.current == B and gate.streams == 0


def test_release_allows_takeover_at_once() -> None:
    gate = ClientGate(liveness=30)
    gate.admit(A, 0)
    assert not gate.release(B)
    assert gate.release(A)
    assert gate.admit(B, 1) is Admission.TAKEOVER


@pytest.mark.parametrize('client', [None, 'short', 'x' * 65, 'bad id!!', 7])
def test_client_ids_are_validated(client) -> None:
    with pytest.raises(ProtocolError):
        check_client_id(client)
