"""The kernel server's log lines read well under a log format that names the logger."""

from __future__ import annotations

import io
import logging

import jchannel_http
from support.kernel_server import TOKEN


async def test_the_start_line_does_not_repeat_the_logger_name() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter('%(name)s: %(message)s'))
    log = logging.getLogger('jchannel_http')
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        async with jchannel_http.Server(token=TOKEN) as server:
            page_url = server.page_url
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert f'jchannel_http: open {page_url} in a browser to connect a page' in lines, lines
    for line in lines:
        name, _, message = line.partition(': ')
        assert name.startswith('jchannel_http'), line
        assert not message.startswith('jchannel_http'), line


async def test_without_a_log_handler_the_start_line_goes_to_stderr_with_its_prefix(capsys) -> None:
    log = logging.getLogger('jchannel_http')
    propagate = log.propagate
    log.propagate = False  # no handler anywhere above: the plain fallback line
    try:
        assert not log.hasHandlers()
        async with jchannel_http.Server(token=TOKEN) as server:
            page_url = server.page_url
    finally:
        log.propagate = propagate
    err = capsys.readouterr().err
    assert f'jchannel_http: open {page_url} in a browser to connect a page\n' in err
