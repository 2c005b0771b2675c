"""Every error answer the kernel server can give has a row in tests/vectors/answers.json (what
the page does with each answer, read by ``node --test tests/js/answers.test.mjs``), so the kernel
never answers something the page has no rule for. Pure: the sources, the app's error mapping and
the OpenAPI description are read; no server runs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import orjson

from jchannel_http.http import app
from jchannel_http.http.openapi import describe

ROOT = Path(__file__).resolve().parent.parent.parent
HTTP = ROOT / 'jchannel_http' / 'http'
CASES = json.loads((ROOT / 'tests' / 'vectors' / 'answers.json').read_text())['cases']
USES = ('call', 'receive', 'stream')
MODULE_USES: dict[str, tuple[str, ...]] = {
    'streams.py': ('stream',),  # the handlers of /streams/...
    'direct.py': (),  # /channels/.../call/...: for HTTP clients, the page never calls it
}
"""Which of the page's requests can get the answers a module raises; any other module (the
guard, the shared replies) answers every request."""
PATH_USES = {'/messages': 'call', '/events': 'receive', '/poll': 'receive'}


def http_errors(source: Path) -> tuple[list[tuple[int, str]], list[str]]:
    """The ``HttpError(...)`` calls in ``source``: (status, code) of those whose status and code
    are written out, and the source text of the others."""
    text = source.read_text()
    known: list[tuple[int, str]] = []
    dynamic: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id != 'HttpError':
            continue
        status, code = [*node.args, None, None][:2]
        if (
            isinstance(status, ast.Constant)
            and isinstance(status.value, int)
            and isinstance(code, ast.Constant)
            and isinstance(code.value, str)
        ):
            known.append((status.value, code.value))
        else:
            dynamic.append(' '.join((ast.get_source_segment(text, node) or '').split()))
    return known, dynamic


def rows() -> set[tuple[str, int, str | None]]:
    """(use, status, error code) of every case; the code is None for an answer not the kernel's."""
    found = set()
    for case in CASES:
        if case['status'] is None:
            continue
        try:
            body = orjson.loads(case['body'])
        except orjson.JSONDecodeError:
            body = None
        code = body.get('error') if isinstance(body, dict) else None
        found.add((case['use'], case['status'], code))
    return found


def kernel_answers() -> set[tuple[str, int, str]]:
    """(use, status, code) of every error answer the kernel server can give the page."""
    answers = set()
    for source in sorted(HTTP.glob('*.py')):
        uses = MODULE_USES.get(source.name, USES)
        for status, code in http_errors(source)[0]:
            answers |= {(use, status, code) for use in uses}
    for kind, status, code in app._STATUS:  # the library's errors, raised by the endpoint
        error = app.error_for(kind('x'))
        assert (error.status, error.body['error']) == (status, code)
        answers |= {(use, status, code) for use in USES}
    unexpected = app.error_for(RuntimeError('a bug'))
    answers |= {(use, unexpected.status, unexpected.body['error']) for use in USES}
    return answers


def test_the_sources_are_read() -> None:
    answers = kernel_answers()
    codes = {code for _, _, code in answers}
    assert {
        'unauthorized',
        'forbidden_origin',
        'too_many_requests',
        'request_timeout',
        'too_large',
        'not_found',
        'method_not_allowed',
        'internal_error',
        'client_conflict',
        'resync',
        'bad_request',
        'unavailable',
        'stream_error',
    } <= codes
    assert ('stream', 422, 'stream_error') in answers
    assert ('call', 422, 'stream_error') not in answers


def test_every_error_the_kernel_server_answers_has_a_row_for_each_request_it_can_answer() -> None:
    known = rows()
    missing = sorted(answer for answer in kernel_answers() if answer not in known)
    assert missing == [], f'no row in tests/vectors/answers.json for {missing}'


def test_every_status_of_the_description_has_a_row_for_its_use() -> None:
    document = describe('http://127.0.0.1:1')
    known = {(use, status) for use, status, code in rows() if code is not None}
    missing = []
    for path, operations in document['paths'].items():
        use = 'stream' if path.startswith('/streams/') else PATH_USES.get(path)
        if use is None:
            continue  # not a request of the page's transport (/status, /release, direct calls)
        for operation in operations.values():
            for status in operation['responses']:
                if int(status) >= 400 and (use, int(status)) not in known:
                    missing.append((use, path, int(status)))
    assert missing == [], f'no row in tests/vectors/answers.json for {sorted(set(missing))}'


def test_the_only_answer_with_a_status_not_known_in_advance_is_aiohttps_own() -> None:
    # any other aiohttp HTTPException is answered with its own status as 'http_error'; the page's
    # default rule (retry, or check for a refusal) applies to it
    dynamic = [call for source in sorted(HTTP.glob('*.py')) for call in http_errors(source)[1]]
    assert sorted(dynamic) == [
        "HttpError(exc.status, 'http_error', exc.reason)",
        'HttpError(status_code, code, str(exc))',  # the library's errors: app._STATUS, read above
    ]
