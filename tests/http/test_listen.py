"""A server that cannot listen says why and what to do, in an error ``except OSError`` catches."""

from __future__ import annotations

import errno
import socket

import pytest

import jchannel_http
from jchannel_http import ListenError, StateError
from support.kernel_server import TOKEN


async def test_a_port_in_use_raises_an_oserror_naming_the_port_and_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(('127.0.0.1', 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = jchannel_http.Server(port=port, token=TOKEN)
        with pytest.raises(OSError) as caught:
            await server.start()
        error = caught.value
        assert isinstance(error, ListenError) and isinstance(error, StateError)
        assert error.errno == errno.EADDRINUSE
        assert (error.host, error.port) == ('127.0.0.1', port)
        message = str(error)
        assert message.startswith(f'cannot listen on 127.0.0.1:{port}: ')
        assert f'port {port} is in use' in message
        assert 'port=0 picks a free one' in message
        assert '[Errno' not in message
        with pytest.raises(StateError):  # what worked before still works
            await server.start()
    await server.start()  # the port is free again: the same server starts
    try:
        assert server.port == port
    finally:
        await server.stop()


async def test_a_host_that_is_not_this_machines_is_named_with_what_to_give() -> None:
    host = '192.0.2.1'  # a documentation address: binding to it fails here, nothing is sent
    with pytest.raises(OSError) as caught:
        await jchannel_http.Server(host=host, token=TOKEN).start()
    assert isinstance(caught.value, ListenError)
    assert caught.value.errno == errno.EADDRNOTAVAIL
    assert str(caught.value).startswith(f'cannot listen on {host}:0: ')
    assert f'{host} is not an address of this machine: give host=' in str(caught.value)
