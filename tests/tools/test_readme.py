"""README's samples run as written, in order.

Every fenced block of README.md follows a marker, ``<!-- readme-sample: <kind> [options] -->``:

- ``kernel``: Python run in one namespace shared by every kernel block, statement by statement
  (top-level ``await`` allowed), against a real server whose ``page_url`` is open in headless
  Chromium; the option ``cloudflared`` puts the stand-in cloudflared on PATH first;
- ``page``: JavaScript run in that page, statement by statement;
- ``script``: Python run as a program of its own, whose printed ``page_url`` is opened;
- ``curl``: bash run against ``python -m jchannel_http demo --calls 2``, one shell per block,
  ``URL``, ``TOKEN`` and ``SESSION`` taken from the live demo (their ``=...`` lines stand for
  them); the option ``sent>=N`` waits until the kernel has sent N frames first;
- ``shell, not run (<reason>)``: commands the tests do not run, with the reason.

Comments say what to expect, and are checked: a Python literal after ``#`` on an expression is its
value, ``# SomeError: text`` the exception it raises; in JavaScript ``// <JSON>`` and
``// throws Name: text``; in curl blocks, JSON after ``#`` (after an HTTP status or ``data:``, if
any) must be found in what the block printed, where a string ``"..."`` stands for any string and
one ending in ``...`` for any string that starts with what comes before.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import os
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

import jchannel_http
from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.stand_ins import install_fake_cloudflared

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / 'README.md'
BLOCK = re.compile(r'^```(?P<lang>\w*)\n(?P<body>.*?)^```$', re.DOTALL | re.MULTILINE)
MARKER = re.compile(r'<!-- readme-sample: (?P<spec>.*?) -->\n')
LANGUAGES = {
    'kernel': 'python',
    'page': 'javascript',
    'script': 'python',
    'curl': 'bash',
    'shell': 'bash',
}
PYTHON_ERROR = re.compile(r'(?P<name>[A-Z]\w*(?:Error|Exception)): (?P<detail>.+)')
JS_ERROR = re.compile(r'throws (?P<name>\w+)(?:: (?P<detail>.+))?')
JSON_COMMENT = re.compile(r'(?:\d{3} |(?:event: \w+\s+)?(?:id: \d+\s+)?data:\s*)?(?=[{\[])')
PLACEHOLDERS = ('URL', 'TOKEN', 'SESSION')
MISSING = object()


@dataclass(frozen=True)
class Sample:
    kind: str
    options: tuple[str, ...]
    lang: str
    body: str
    line: int

    @property
    def where(self) -> str:
        return f'README.md:{self.line}'


def readme_samples() -> list[Sample]:
    """Every fenced block of README.md with its marker; a block without one is an error."""
    text = README.read_text()
    samples = []
    for block in BLOCK.finditer(text):
        line = text.count('\n', 0, block.start()) + 2  # the block's first line of code
        before = text[text.rfind('\n', 0, block.start() - 1) + 1 : block.start()]
        marker = MARKER.fullmatch(before)
        if marker is None:
            raise AssertionError(
                f'README.md:{line - 1}: a code block without a '
                '<!-- readme-sample: ... --> marker on the line before it'
            )
        words = marker['spec'].replace(',', ' ').split()
        kind = words[0]
        if kind not in LANGUAGES:
            raise AssertionError(f'README.md:{line - 1}: unknown sample kind {kind!r}')
        if LANGUAGES[kind] != block['lang']:
            raise AssertionError(
                f'README.md:{line - 1}: a {kind} sample must be '
                f'```{LANGUAGES[kind]}, not ```{block["lang"]}'
            )
        if kind == 'shell' and not re.search(r'not run \(.+\)', marker['spec']):
            raise AssertionError(f'README.md:{line - 1}: say why a shell sample is not run')
        samples.append(Sample(kind, tuple(words[1:]), block['lang'], block['body'], line))
    return samples


def test_every_block_is_marked_and_each_kind_is_there() -> None:
    samples = readme_samples()
    assert {sample.kind for sample in samples} == set(LANGUAGES)
    assert len(samples) == README.read_text().count('\n```') // 2


# -- Python in the kernel ----------------------------------------------------------------------


def python_comments(source: str) -> dict[int, str]:
    """The comment ending each line of ``source``, by line number."""
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip('#').strip()
    return comments


def literal(text: str | None) -> Any:
    """The Python literal ``text`` is, else MISSING."""
    if not text:
        return MISSING
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return MISSING


async def run_python(sample: Sample, namespace: dict[str, Any]) -> None:
    """Run ``sample`` statement by statement in ``namespace``, checking what its comments say."""
    comments = python_comments(sample.body)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for node in ast.parse(sample.body).body:
        where = f'README.md:{sample.line + node.lineno - 1}'
        comment = comments.get(node.end_lineno or node.lineno)
        error = PYTHON_ERROR.fullmatch(comment) if comment else None
        expected = literal(comment) if isinstance(node, ast.Expr) else MISSING
        if isinstance(node, ast.Expr):
            code = compile(ast.Expression(node.value), where, 'eval', flags=flags)
        else:
            code = compile(ast.Module([node], type_ignores=[]), where, 'exec', flags=flags)
        try:
            value = eval(code, namespace)
            if code.co_flags & inspect.CO_COROUTINE:
                value = await asyncio.wait_for(value, 60)
        except Exception as exc:
            if error is not None and type(exc).__name__ == error['name']:
                assert error['detail'].rstrip('.') in str(exc), (where, str(exc))
                continue
            raise AssertionError(
                f'{where}: {ast.get_source_segment(sample.body, node)!r} '
                f'raised {type(exc).__name__}: {exc}'
            ) from exc
        assert error is None, f'{where}: {error["name"]} was expected, nothing was raised'
        if expected is not MISSING:
            assert value == expected, f'{where}: {value!r}, README says {expected!r}'


# -- JavaScript in the page --------------------------------------------------------------------

RUN_IN_PAGE = """async (source) => {
  const AsyncFunction = (async () => {}).constructor;
  let run;
  try {
    run = new AsyncFunction('return (' + source.replace(/;\\s*$/, '') + ');');
  } catch (error) {
    run = new AsyncFunction(source);
  }
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, name: error.name, message: error.message };
  }
}"""


def js_statements(sample: Sample) -> list[tuple[int, str, str | None]]:
    """(line, code, comment of its last line) for each statement: lines up to one ending in ';'."""
    statements: list[tuple[int, str, str | None]] = []
    lines: list[str] = []
    first = 0
    for number, line in enumerate(sample.body.splitlines(), sample.line):
        code, _, comment = line.partition('//')
        if not lines:
            first = number
        if code.strip():
            lines.append(code)
        if code.rstrip().endswith(';'):
            statements.append((first, '\n'.join(lines), comment.strip() or None))
            lines = []
    assert not lines, f'{sample.where}: a statement does not end with ";"'
    return statements


async def run_page(sample: Sample, page: Page) -> None:
    for line, code, comment in js_statements(sample):
        outcome = await page.evaluate(RUN_IN_PAGE, code)
        error = JS_ERROR.fullmatch(comment) if comment else None
        if error is not None:
            assert not outcome['ok'], f'README.md:{line}: {error["name"]} was expected'
            assert outcome['name'] == error['name'], (line, outcome)
            assert (error['detail'] or '') in outcome['message'], (line, outcome)
            continue
        assert outcome['ok'], f'README.md:{line}: {code!r} threw {outcome}'
        if comment is not None:
            try:
                expected = json.loads(comment)
            except ValueError:
                continue
            assert outcome['value'] == expected, (line, outcome['value'], expected)


# -- the kernel and page samples, in order -----------------------------------------------------


async def test_kernel_page_and_script_samples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the samples write files (data.bin)
    namespace: dict[str, Any] = {'__name__': '__readme__'}
    servers: list[jchannel_http.Server] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        try:
            for sample in readme_samples():
                if sample.kind == 'kernel':
                    if 'cloudflared' in sample.options:
                        install_fake_cloudflared(tmp_path, monkeypatch)
                    await run_python(sample, namespace)
                    for value in list(namespace.values()):
                        if isinstance(value, jchannel_http.Server) and value not in servers:
                            servers.append(value)
                            if len(servers) == 1:  # the tab of the quickstart
                                await page.goto(value.page_url)
                elif sample.kind == 'page':
                    await run_page(sample, page)
                elif sample.kind == 'script':
                    await run_script(sample, browser, tmp_path)
            assert servers and namespace.get('channel2') is not None
        finally:
            for server in servers:
                await server.stop()
            await browser.close()


async def run_script(sample: Sample, browser: Any, folder: Path) -> None:
    """Run a program sample; open the page address it prints; it must end by itself."""
    script = folder / f'readme_{sample.line}.py'
    script.write_text(sample.body)
    env = {
        **os.environ,
        'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None  # stdout=PIPE
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r'(http://\S+/page\?token=\S+)', line)
        assert found, f'{sample.where}: printed {line!r}, not the page address'
        page = await browser.new_page()
        await page.goto(found[1])
        out, err = await asyncio.wait_for(process.communicate(), 60)
        await page.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f'{sample.where}: exit {process.returncode}: {err.decode()}'
    assert out.decode().strip().splitlines()[-1] == 'hi there'


# -- curl against the demo ---------------------------------------------------------------------

CURL_PRELUDE = r"""
set -e
curl() {  # each answer on its own line; a stream (-N) ends after a few seconds
  local rc=0 limit=10
  case " $* " in *" -N "*) limit=3 ;; esac
  command curl --max-time "$limit" "$@" || rc=$?
  echo
  [ "$rc" = 0 ] || [ "$rc" = 28 ]
}
"""


def matches(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` has what ``expected`` shows (objects may have more keys)."""
    if isinstance(expected, str) and expected.endswith('...'):
        return isinstance(actual, str) and actual.startswith(expected[:-3])
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return type(expected) is type(actual) and expected == actual


def json_values(text: str) -> list[Any]:
    """Every JSON object or array that starts a line of ``text`` (after ``data:``, if any)."""
    values = []
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        line = line.removeprefix('data:').strip()
        if line[:1] in '{[' and line:
            try:
                values.append(decoder.raw_decode(line)[0])
            except ValueError:
                pass
    return values


def expected_json(body: str) -> list[tuple[str, Any]]:
    """The JSON values the comments of a curl block announce, with the comment."""
    found = []
    decoder = json.JSONDecoder()
    for line in body.splitlines():
        if '#' not in line:
            continue
        comment = (
            line.split('#', 1)[1].strip()
            if not line.lstrip().startswith('#')
            else line.lstrip()[1:].strip()
        )
        prefix = JSON_COMMENT.match(comment)
        if prefix is None:
            continue
        try:
            found.append((comment, decoder.raw_decode(comment[prefix.end() :])[0]))
        except ValueError:
            pass  # prose, or JSON abridged with a bare ...
    return found


def curl_script(sample: Sample, values: dict[str, str]) -> str:
    """The block as a script; the variables that earlier blocks set come from ``state.sh``."""
    lines = []
    for line in sample.body.splitlines():
        name = line.split('=', 1)[0]
        if name in PLACEHOLDERS and '=' in line:
            continue  # the live value is in the environment
        lines.append(line)
    exports = ''.join(f'{name}={value!r}\n' for name, value in values.items())
    names = ' '.join(
        sorted(
            {
                assigned
                for block in readme_samples()
                if block.kind == 'curl'
                for assigned in re.findall(r'^([A-Z][A-Z0-9_]*)=', block.body, re.MULTILINE)
            }
        )
    )
    keep = (
        f'for name in {names}; do if [ -n "${{!name+x}}" ]; then declare -p "$name"; fi; '
        'done > state.sh\n'
    )
    return (
        CURL_PRELUDE
        + 'if [ -f state.sh ]; then source state.sh; fi\n'
        + exports
        + '\n'.join(lines)
        + '\n'
        + keep
    )


async def read_demo_line(stream: asyncio.StreamReader, pattern: str) -> re.Match:
    for _ in range(50):
        line = (await asyncio.wait_for(stream.readline(), 30)).decode()
        if not line:
            break
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f'the demo did not print {pattern!r}')


async def test_the_curl_walkthrough_runs_against_the_demo(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        '-m',
        'jchannel_http',
        'demo',
        '--port',
        '0',
        '--interval',
        '0.3',
        '--calls',
        '2',
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert demo.stdout is not None  # stdout=PIPE
    try:
        found = await read_demo_line(demo.stdout, r'(http://[^/\s]+)/page\?token=(\S+)')
        values = {'URL': found[1], 'TOKEN': found[2]}
        printed = []
        for sample in readme_samples():
            if sample.kind != 'curl':
                continue
            for option in sample.options:
                if option.startswith('sent>='):
                    await wait_until_sent(values, int(option.removeprefix('sent>=')), sample)
            done = await asyncio.create_subprocess_exec(
                'bash',
                '-c',
                curl_script(sample, values),
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(done.communicate(), 120)
            output = out.decode()
            assert done.returncode == 0, (
                f'{sample.where}: exit {done.returncode}\n{output}{err.decode()}'
            )
            printed.append(output)
            answers = json_values(output)
            for comment, expected in expected_json(sample.body):
                assert any(matches(expected, answer) for answer in answers), (
                    f'{sample.where}: nothing printed matches {comment!r}:\n{output[:3000]}'
                )
            if 'SESSION' not in values:
                sessions = [
                    answer['session']
                    for answer in answers
                    if isinstance(answer, dict) and 'session' in answer
                ]
                if sessions:
                    values['SESSION'] = sessions[0]
        everything = '\n'.join(printed)
        assert 'event: hello' in everything and '"type":"open"' in everything
        assert (tmp_path / 'part.bin').read_bytes() == b'0123456789abcdef' * 2 + b'01234567'
        assert demo.returncode is None, 'the demo ended'
        demo.terminate()
        rest = (await asyncio.wait_for(demo.stdout.read(), 30)).decode()
        # What the kernel saw: the open answered by hand, both of its calls answered.
        assert 'page: demo ready' in rest
        assert "kernel called indentLeft: '....call 1'" in rest
        assert "kernel called indentRight: 'call 2....'" in rest
    finally:
        if demo.returncode is None:
            demo.kill()
        await demo.wait()


async def wait_until_sent(values: dict[str, str], count: int, sample: Sample) -> None:
    """Wait (bounded) until the demo's kernel has sent ``count`` frames in the session."""
    for _ in range(100):
        done = await asyncio.create_subprocess_exec(
            'curl',
            '-s',
            '--max-time',
            '5',
            '-H',
            f'Authorization: Bearer {values["TOKEN"]}',
            f'{values["URL"]}/status',
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await done.communicate()
        if json.loads(out or b'{}').get('sent', 0) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f'{sample.where}: the kernel did not send frame {count} in 10 s')
