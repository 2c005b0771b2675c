"""A randomized end-to-end run: a real page in headless Chromium and a real kernel server call
each other with random values and random handler behaviour while the kernel's event loop is
paused at random, with small ``max_body`` and outbox bounds.

Every call carries a unique id. The test asserts that each call gets exactly one answer (the
expected result or an error of the expected kind), that no handler runs twice for one call, and
that the channel still works afterwards.

The seed is random and printed; ``JCHANNEL_SEED=<n>`` replays one, ``JCHANNEL_FUZZ_SECONDS=<s>``
runs longer than the default budget. Timing is not replayed, only the choices.

``PAGE_RULE_CASES`` lists the cases of the page-side value and error rules (NaN, infinities,
functions, symbols and nesting deeper than 250 levels are refused with TypeError before anything
is sent; a thrown object whose getters throw still answers the call); they are on unless
``JCHANNEL_FUZZ_PAGE_RULES=0``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page

import jchannel_http
from jchannel_http import FrontendError, MetaGenerator
from jchannel_http.values import MAX_DEPTH
from support.kernel_server import TOKEN
from support.randomized_values import (
    KERNEL_UNSENDABLE,
    chunked,
    difference,
    digest,
    from_page_text,
    nested,
    page_form,
    random_payload,
    random_string,
    same,
    stream_bytes,
    to_page_text,
    utf16_hash,
)

KiB = 1024
SEED = int(os.environ.get('JCHANNEL_SEED') or random.SystemRandom().randrange(2**32))
BUDGET = float(os.environ.get('JCHANNEL_FUZZ_SECONDS') or 20)
MAX_ROUNDS = max(10, int(BUDGET * 5))
ROUND_LIMIT = 30.0
"""Most seconds one round may take before the test fails naming the calls still unanswered."""
HEARTBEAT = 1.0
MAX_PAUSE = 0.35
"""Longest pause of the kernel's loop: well under the liveness window (2 heartbeats)."""
MAX_BODY = 64 * KiB
PAGE_FRAME_LIMIT = MAX_BODY - 1047
"""Longest frame JSON the page sends: its batches keep 1 KiB under max_body for the envelope, and
a frame's ``{"seq":N,`` head is counted at its longest (see client_js/session.js)."""
CALL_TIMEOUT = 30.0

PAGE_RULE_CASES = {
    'page result NaN': ('unsendable', 'nan'),
    'page result -Infinity': ('unsendable', 'infinity'),
    'page result function': ('unsendable', 'function'),
    'page result bare function': ('unsendable', 'bare function'),
    'page result symbol': ('unsendable', 'symbol'),
    'page result nested NaN': ('unsendable', 'nested nan'),
    'page result too deep': ('unsendable', 'deep'),
    'page arg NaN': ('unsendable arg', 'nan'),
    'page arg function': ('unsendable arg', 'function'),
    'page arg too deep': ('unsendable arg', 'deep'),
    'page throws an object whose getters throw': ('throw getters', None),
}
"""Cases of the page-side rules: a client without them sent NaN as null, dropped a function from
its object, sent a bare function result without its value, sent values nested too deep, and left
a call unanswered when the error thrown could not describe itself."""
PAGE_RULES = os.environ.get('JCHANNEL_FUZZ_PAGE_RULES', '1') not in ('', '0')
PAGE_UNSENDABLE = sorted(
    param for kind, param in PAGE_RULE_CASES.values() if kind == 'unsendable' and param is not None
)
PAGE_UNSENDABLE_ARGS = sorted(
    param
    for kind, param in PAGE_RULE_CASES.values()
    if kind == 'unsendable arg' and param is not None
)
PAGE_SENDS_TODAY = {  # what the page sends, as Python receives it
    'bigint refused': None,  # JSON.stringify throws TypeError: refused, as the rule says
    'undefined': None,
    'undefined in array': [None, 1],
    'undefined in object': {'b': 1},
    'minus zero': 0,
    'deep ok': nested(MAX_DEPTH - 1),
}

PAGE_SIDE = r"""(channel) => {
  const f = window.fuzz = { ran: [], outcomes: {}, release: [] };
  window.fuzzChannel = channel;
  const ascii = (text) => text.replace(/[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  const enc = (value) => ascii(JSON.stringify(value === undefined ? null : value));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const bytesOf = (id, n) => {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i += 1) bytes[i] = (id * 7 + i * 13) & 255;
    return bytes;
  };
  async function* chunks(bytes, size) {
    for (let i = 0; i < bytes.length; i += size) {
      yield bytes.slice(i, i + size);
      if ((i / size) % 3 === 1) await sleep(1);
    }
  }
  const hex = async (bytes) => Array.from(
    new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)),
    (x) => x.toString(16).padStart(2, '0')).join('');
  const digest = async (bytes) => [bytes.length, await hex(bytes)];
  const nest = (levels, leaf) => {
    let value = leaf;
    for (let level = 0; level < levels; level += 1) value = level % 2 ? [value] : { d: value };
    return value;
  };
  const odd = {
    'bigint refused': () => 10n,
    undefined: () => undefined,
    'undefined in array': () => [undefined, 1],
    'undefined in object': () => ({ a: undefined, b: 1 }),
    'minus zero': () => -0,
    'deep ok': () => nest(249, 0),
    nan: () => NaN,
    infinity: () => -Infinity,
    function: () => ({ f() { return 1; } }),
    'bare function': () => () => 1,
    symbol: () => [Symbol('s')],
    'nested nan': () => ({ a: [1, { b: NaN }] }),
    deep: () => nest(251, 0),
  };
  const thrown = (id, which) => [`text ${id}`, 42, null, undefined, { id }, [id]][which];
  channel.handler = {
    async run(id, behaviour, payload, param) {
      f.ran.push(id);
      switch (behaviour) {
        case 'return': return payload;
        case 'slow': await sleep(param); return payload;
        case 'raise': throw new RangeError(`failed ${id}`);
        case 'throw': throw thrown(id, param);
        case 'throw getters': throw {
          get name() { throw new Error('no name'); },
          get message() { throw new Error('no message'); },
        };
        case 'never': return new Promise((resolve) => f.release.push(() => resolve(`late ${id}`)));
        case 'stream': return chunks(bytesOf(id, param[0]), param[1]);
        case 'measure': {
          let h = 2166136261;
          for (let i = 0; i < payload.length; i += 1) {
            h = Math.imul(h ^ payload.charCodeAt(i), 16777619) >>> 0;
          }
          return [payload.length, h];
        }
        case 'odd': return odd[param]();
        case 'unsendable': return odd[param]();
        default: throw new Error(`unknown behaviour ${behaviour}`);
      }
    },
    async consume(stream, id) {
      f.ran.push(id);
      return digest(await stream.join());
    },
  };
  const settle = (id, outcome) => {
    const o = f.outcomes[id];
    o.settled += 1;
    Object.assign(o, outcome);
  };
  const failure = (error) => {
    const o = { ok: false };
    try {
      o.kernelError = error instanceof jchannel.KernelError;
      o.name = String(error && error.name);
      o.type = error && error.type !== undefined ? String(error.type) : null;
      o.detail = error && error.detail !== undefined ? String(error.detail) : null;
      o.message = String(error && error.message);
    } catch (e) {
      o.name = 'unreadable';
    }
    return o;
  };
  f.launch = (spec) => {
    const { id, kind } = spec;
    f.outcomes[id] = { settled: 0 };
    let promise;
    try {
      let payload;
      if (spec.big !== undefined) payload = 'x'.repeat(spec.big);
      else if (spec.odd !== undefined) payload = odd[spec.odd]();
      else if (spec.payload !== undefined) payload = JSON.parse(spec.payload);
      if (kind === 'call') {
        promise = channel.call('run', id, spec.behaviour, payload, spec.param);
      } else if (kind === 'echo') {
        promise = channel.echo(id, payload);
      } else if (kind === 'stream') {
        promise = channel.callWithStream('consume', chunks(bytesOf(id, spec.size), spec.chunk), id);
      } else if (kind === 'pipe') {
        promise = channel.pipe(chunks(bytesOf(id, spec.size), spec.chunk));
      } else {
        throw new Error(`unknown kind ${kind}`);
      }
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(async (value) => {
      if (value instanceof jchannel.MetaGenerator) {
        settle(id, { ok: true, stream: await digest(await value.join()) });
      } else {
        settle(id, { ok: true, value: enc(value) });
      }
    }, (error) => settle(id, failure(error))).catch((error) => settle(id, failure(error)));
  };
  f.start = (text) => { for (const spec of JSON.parse(text)) f.launch(spec); };
  f.settled = (ids) => ids.filter((id) => f.outcomes[id].settled > 0).length;
  f.take = (ids) => Object.fromEntries(ids.map((id) => [id, f.outcomes[id]]));
  f.releaseAll = () => f.release.splice(0).forEach((resolve) => resolve());
  return 'ready';
}"""


class Pauser:
    """Blocks the kernel's event loop with ``time.sleep``, never twice in a row: a pause
    within ``gap`` seconds of the end of the last one is skipped, so the page never falls
    silent for the liveness window."""

    def __init__(self, gap: float = 0.25) -> None:
        self.gap = gap
        self.last_end = 0.0
        self.paused = 0.0
        self.count = 0

    def pause(self, seconds: float) -> None:
        if time.monotonic() - self.last_end < self.gap:
            return
        seconds = min(seconds, MAX_PAUSE)
        time.sleep(seconds)
        self.last_end = time.monotonic()
        self.paused += seconds
        self.count += 1

    async def run(self, rng: random.Random, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), rng.uniform(0.05, 0.8))
            except asyncio.TimeoutError:
                self.pause(rng.uniform(0.01, MAX_PAUSE))


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError('no description')


class KernelSide:
    def __init__(self, pauser: Pauser) -> None:
        self.pauser = pauser
        self.ran: list[int] = []
        self.held: dict[int, asyncio.Future] = {}

    async def run(self, call_id: int, behaviour: str, payload: Any, param: Any) -> Any:
        self.ran.append(call_id)
        if behaviour == 'return':
            return payload
        if behaviour == 'slow':
            await asyncio.sleep(param)
            return payload
        if behaviour == 'block':
            self.pauser.pause(param)
            return payload
        if behaviour == 'raise':
            raise ValueError(f'failed {call_id}')
        if behaviour == 'unprintable':
            raise Unprintable()
        if behaviour == 'interrupt':
            raise KeyboardInterrupt()
        if behaviour == 'exit':
            raise SystemExit(3)
        if behaviour == 'never':
            future = asyncio.get_running_loop().create_future()
            self.held[call_id] = future
            return await future
        if behaviour == 'stream':
            return chunked(stream_bytes(call_id, param[0]), param[1])
        if behaviour == 'big':
            return 'y' * param
        if behaviour == 'deep':
            return nested(param)
        if behaviour == 'unsendable':
            return KERNEL_UNSENDABLE[param]()
        raise AssertionError(f'unknown behaviour {behaviour}')

    async def consume(self, stream: MetaGenerator, call_id: int) -> list:
        self.ran.append(call_id)
        return digest(await stream.join())

    def release(self) -> list[int]:
        held = sorted(self.held)
        for call_id, future in self.held.items():
            if not future.done():
                future.set_result(f'late {call_id}')
        self.held.clear()
        return held


@dataclasses.dataclass
class Expect:
    """What one call must end with."""

    call_id: int
    way: str  # 'kernel' (the kernel calls the page) or 'page'
    what: str  # a short description, for failure messages
    value: Any = None  # the result, when ok
    ok: bool = True
    error: str | None = None  # the exception's class on the caller's side, when not ok
    type: str | None = None  # its .type (FrontendError / KernelError)
    detail: Callable[[str], bool] | None = None
    runs: bool | None = True  # whether the handler must have run (None: it may or not)
    held: bool = False  # the handler never answers until the round releases it
    stream: bool = False  # the result is a stream, compared by its digest


def stream_spec(rng: random.Random) -> tuple[int, int]:
    size = rng.choice([0, 1, rng.randrange(2, 4 * KiB), rng.randrange(4 * KiB, 160 * KiB)])
    return size, rng.choice([1 * KiB, 7 * KiB, 16 * KiB, 64 * KiB, 100 * KiB])


class Run:
    """One seeded run: the calls of each round and what each must end with."""

    def __init__(
        self,
        seed: int,
        server: jchannel_http.Server,
        channel: jchannel_http.Channel,
        page: Page,
        kernel: KernelSide,
        pauser: Pauser,
    ) -> None:
        self.server = server
        self.records: list[logging.LogRecord] = []
        self.seed = seed
        self.rng = random.Random(seed)
        self.channel = channel
        self.page = page
        self.kernel = kernel
        self.pauser = pauser
        self.next_id = 1
        self.expected: dict[int, Expect] = {}
        self.counts: collections.Counter = collections.Counter()
        self.kernel_failures = 0  # page calls whose kernel handler raised
        self.kernel_unsendable = 0  # page calls whose kernel handler returned an unsendable value

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def fail(self, message: str) -> None:
        pytest.fail(f'seed {self.seed}: {message}', pytrace=False)

    # -- the kernel calls the page ----------------------------------------------------------

    def kernel_call(self) -> tuple[Expect, Callable[[], Any]]:
        rng, channel = self.rng, self.channel
        call_id = self.new_id()
        payload = random_payload(rng, MAX_DEPTH - 1)
        pick = rng.random()

        def call(behaviour: str, value: Any, param: Any = None, deadline: float | None = None):
            """``timeout`` bounds the wait for the page; ``deadline`` the whole call."""
            return lambda: channel.call(
                'run', call_id, behaviour, value, param, timeout=CALL_TIMEOUT, deadline=deadline
            )

        if pick < 0.25:
            return Expect(call_id, 'kernel', 'return', page_form(payload)), call('return', payload)
        if pick < 0.32:
            delay = rng.randrange(0, 300)
            return (
                Expect(call_id, 'kernel', f'slow {delay} ms', page_form(payload)),
                call('slow', payload, delay),
            )
        if pick < 0.38:
            return (
                Expect(
                    call_id,
                    'kernel',
                    'raise',
                    ok=False,
                    error='FrontendError',
                    type='RangeError',
                    detail=lambda d: d == f'failed {call_id}',
                ),
                call('raise', payload),
            )
        if pick < 0.43:
            thrown = rng.randrange(6)
            return (
                Expect(
                    call_id, 'kernel', f'throw non-Error {thrown}', ok=False, error='FrontendError'
                ),
                call('throw', None, thrown),
            )
        if pick < 0.48:
            # A page that never answers is waited for as long as it stays connected, unless the
            # call has a deadline. It may pass while the frame waits for room in the outbox.
            deadline = rng.uniform(0.3, 1.5)
            return (
                Expect(
                    call_id,
                    'kernel',
                    f'never, deadline {deadline:.2f} s',
                    ok=False,
                    error='TimeoutError',
                    runs=None,
                ),
                call('never', None, None, deadline),
            )
        if pick < 0.55:
            size, chunk = stream_spec(rng)
            return (
                Expect(
                    call_id,
                    'kernel',
                    f'page returns a stream of {size}',
                    stream=True,
                    value=digest(stream_bytes(call_id, size)),
                ),
                call('stream', None, [size, chunk]),
            )
        if pick < 0.61:
            size, chunk = stream_spec(rng)
            data = stream_bytes(call_id, size)
            return (
                Expect(call_id, 'kernel', f'call_with_stream of {size}', digest(data)),
                lambda: channel.call_with_stream(
                    'consume', chunked(data, chunk), call_id, timeout=CALL_TIMEOUT
                ),
            )
        if pick < 0.64:
            size, chunk = stream_spec(rng)
            data = stream_bytes(call_id, size)
            return (
                Expect(call_id, 'kernel', f'pipe of {size}', digest(data), stream=True, runs=False),
                lambda: channel.pipe(chunked(data, chunk), timeout=CALL_TIMEOUT),
            )
        if pick < 0.68:
            return (
                Expect(call_id, 'kernel', 'echo', [call_id, page_form(payload)], runs=False),
                lambda: channel.echo(call_id, payload, timeout=CALL_TIMEOUT),
            )
        if pick < 0.76:
            # The page returns a string whose result frame is just under or just over its limit.
            delta = rng.choice([rng.randint(-600, -24), rng.randint(1, 600)])
            overhead = len('{"type":"result","call":,"value":""}')
            size = PAGE_FRAME_LIMIT - overhead + delta
            what = f'page returns {size} bytes ({delta:+d} around its frame limit)'
            big = 'x' * size
            if delta < 0:  # up to 6 digits of call number fit in the margin
                return Expect(call_id, 'kernel', what, big), call('return', big)
            return (
                Expect(call_id, 'kernel', what, ok=False, error='FrontendError', type='RangeError'),
                call('return', big),
            )
        if pick < 0.80:
            size = rng.choice(
                [rng.randrange(MAX_BODY - 512, MAX_BODY + 512), rng.randrange(100 * KiB, 300 * KiB)]
            )
            big = random_string(rng, 3) + 'z' * size  # beyond the page's frames, not the kernel's
            return (
                Expect(call_id, 'kernel', f'kernel sends {size} bytes', utf16_hash(big)),
                call('measure', big),
            )
        if pick < 0.86:
            which = rng.choice([*sorted(KERNEL_UNSENDABLE), 'deep arg 250'])
            value = nested(MAX_DEPTH) if which == 'deep arg 250' else KERNEL_UNSENDABLE[which]()
            return (
                Expect(
                    call_id,
                    'kernel',
                    f'kernel arg {which}',
                    ok=False,
                    error='TypeError',
                    detail=lambda d: d.startswith('cannot send args[2][1]'),
                    runs=False,
                ),
                call('return', [1, value]),
            )
        if pick < 0.90:
            level = rng.randint(MAX_DEPTH - 3, MAX_DEPTH - 1)
            value = nested(level, random_string(rng, 2))
            return (
                Expect(call_id, 'kernel', f'kernel arg nested {level}', page_form(value)),
                call('return', value),
            )
        if pick < 0.95:
            which = rng.choice(sorted(PAGE_SENDS_TODAY))
            if which == 'bigint refused':
                return (
                    Expect(
                        call_id,
                        'kernel',
                        'page result 10n',
                        ok=False,
                        error='FrontendError',
                        type='TypeError',
                    ),
                    call('odd', None, which),
                )
            return (
                Expect(call_id, 'kernel', f'page result {which}', PAGE_SENDS_TODAY[which]),
                call('odd', None, which),
            )
        if PAGE_RULES and pick < 0.98:
            which = self.rng.choice(PAGE_UNSENDABLE)
            return (
                Expect(
                    call_id,
                    'kernel',
                    f'page result {which} (page rule)',
                    ok=False,
                    error='FrontendError',
                    type='TypeError',
                ),
                call('unsendable', None, which),
            )
        if PAGE_RULES:
            return (
                Expect(
                    call_id, 'kernel', 'throw getters (page rule)', ok=False, error='FrontendError'
                ),
                call('throw getters', None),
            )
        return Expect(call_id, 'kernel', 'return', page_form(payload)), call('return', payload)

    # -- the page calls the kernel ----------------------------------------------------------

    def page_call(self) -> tuple[Expect, dict]:
        rng = self.rng
        call_id = self.new_id()
        payload = random_payload(rng, MAX_DEPTH - 1)
        text = to_page_text(payload)
        spec: dict = {'id': call_id, 'kind': 'call', 'payload': text, 'param': None}
        pick = rng.random()

        def call(behaviour: str, param: Any = None, **more: Any) -> dict:
            return {**spec, 'behaviour': behaviour, 'param': param, **more}

        def kernel_error(what: str, type_: str, detail: Callable[[str], bool] | None = None):
            self.kernel_failures += 1
            return Expect(
                call_id, 'page', what, ok=False, error='KernelError', type=type_, detail=detail
            )

        if pick < 0.22:
            return Expect(call_id, 'page', 'return', page_form(payload)), call('return')
        if pick < 0.28:
            delay = rng.uniform(0, 0.3)
            return Expect(call_id, 'page', 'slow', page_form(payload)), call('slow', delay)
        if pick < 0.34:
            pause = rng.uniform(0.01, MAX_PAUSE)
            return (
                Expect(call_id, 'page', f'block the loop {pause:.2f} s', page_form(payload)),
                call('block', pause),
            )
        if pick < 0.38:
            return (
                kernel_error('raise', 'ValueError', lambda d: d == f'failed {call_id}'),
                call('raise'),
            )
        if pick < 0.41:
            return (
                kernel_error(
                    'unprintable', 'Unprintable', lambda d: 'could not describe itself' in d
                ),
                call('unprintable'),
            )
        if pick < 0.43:
            return kernel_error('KeyboardInterrupt', 'KeyboardInterrupt'), call('interrupt')
        if pick < 0.45:
            return kernel_error('SystemExit', 'SystemExit'), call('exit')
        if pick < 0.49:
            return (
                Expect(
                    call_id,
                    'page',
                    'never (released after the round)',
                    f'late {call_id}',
                    held=True,
                ),
                call('never'),
            )
        if pick < 0.56:
            size, chunk = stream_spec(rng)
            return (
                Expect(
                    call_id,
                    'page',
                    f'kernel returns a stream of {size}',
                    stream=True,
                    value=digest(stream_bytes(call_id, size)),
                ),
                call('stream', [size, chunk]),
            )
        if pick < 0.62:
            size, chunk = stream_spec(rng)
            return (
                Expect(
                    call_id,
                    'page',
                    f'callWithStream of {size}',
                    digest(stream_bytes(call_id, size)),
                ),
                {'id': call_id, 'kind': 'stream', 'size': size, 'chunk': chunk},
            )
        if pick < 0.65:
            size, chunk = stream_spec(rng)
            return (
                Expect(
                    call_id,
                    'page',
                    f'pipe of {size}',
                    digest(stream_bytes(call_id, size)),
                    stream=True,
                    runs=False,
                ),
                {'id': call_id, 'kind': 'pipe', 'size': size, 'chunk': chunk},
            )
        if pick < 0.69:
            return (
                Expect(call_id, 'page', 'echo', [call_id, page_form(payload)], runs=False),
                {**spec, 'kind': 'echo'},
            )
        if pick < 0.77:
            # The page sends a string whose call frame is just under or just over its limit.
            delta = rng.choice([rng.randint(-600, -40), rng.randint(1, 600)])
            overhead = len(
                '{"type":"call","call":,"channel":,"name":"run","args":[,"return","",null]}'
            )
            size = PAGE_FRAME_LIMIT - overhead + delta
            what = f'page sends {size} bytes ({delta:+d} around its frame limit)'
            more: dict[str, Any] = {'payload': None, 'big': size}
            if delta < 0:  # up to 6 digits of call number and 10 of id and channel fit in it
                return Expect(call_id, 'page', what, 'x' * size), call('return', **more)
            return (
                Expect(call_id, 'page', what, ok=False, error='RangeError', runs=False),
                call('return', **more),
            )
        if pick < 0.81:
            size = rng.choice(
                [rng.randrange(MAX_BODY - 512, MAX_BODY + 512), rng.randrange(100 * KiB, 300 * KiB)]
            )
            return Expect(call_id, 'page', f'kernel returns {size} bytes', 'y' * size), call(
                'big', size
            )
        if pick < 0.86:
            which = rng.choice(sorted(KERNEL_UNSENDABLE))
            self.kernel_unsendable += 1
            return (
                Expect(
                    call_id,
                    'page',
                    f'kernel result {which}',
                    ok=False,
                    error='KernelError',
                    type='TypeError',
                    detail=lambda d: d.startswith('cannot send result'),
                ),
                call('unsendable', which),
            )
        if pick < 0.90:
            level = rng.randint(MAX_DEPTH - 2, MAX_DEPTH + 2)
            if level <= MAX_DEPTH:
                return (
                    Expect(call_id, 'page', f'kernel result nested {level}', nested(level)),
                    call('deep', level),
                )
            self.kernel_unsendable += 1
            return (
                Expect(
                    call_id,
                    'page',
                    f'kernel result nested {level}',
                    ok=False,
                    error='KernelError',
                    type='TypeError',
                    detail=lambda d: d.startswith('cannot send result'),
                ),
                call('deep', level),
            )
        if pick < 0.95:
            which = rng.choice(sorted(PAGE_SENDS_TODAY))
            more = {'payload': None, 'odd': which}
            if which == 'bigint refused':
                return (
                    Expect(
                        call_id, 'page', 'page arg 10n', ok=False, error='TypeError', runs=False
                    ),
                    call('return', **more),
                )
            return (
                Expect(call_id, 'page', f'page arg {which}', PAGE_SENDS_TODAY[which]),
                call('return', **more),
            )
        if PAGE_RULES:
            which = rng.choice(PAGE_UNSENDABLE_ARGS)
            return (
                Expect(
                    call_id,
                    'page',
                    f'page arg {which} (page rule)',
                    ok=False,
                    error='TypeError',
                    runs=False,
                ),
                call('return', payload=None, odd=which),
            )
        return Expect(call_id, 'page', 'return', page_form(payload)), call('return')

    # -- one round --------------------------------------------------------------------------

    async def round(self, number: int) -> None:
        rng = self.rng
        kernel_calls = [self.kernel_call() for _ in range(rng.randint(0, 14))]
        page_calls = [self.page_call() for _ in range(rng.randint(0, 14))]
        for expect, _ in kernel_calls + page_calls:
            self.expected[expect.call_id] = expect
            self.counts[f'{expect.way}: {re.sub(r"[-+]?[0-9][0-9.]*", "N", expect.what)}'] += 1
        page_ids = [expect.call_id for expect, _ in page_calls]
        outcomes: dict[int, list] = {}

        async def settle(expect: Expect, start: Callable[[], Any]) -> None:
            try:
                value = await start()
                if isinstance(value, MetaGenerator):
                    value = ('stream', digest(await value.join()))
                outcomes.setdefault(expect.call_id, []).append(('ok', value))
            except Exception as error:  # noqa: BLE001 (every failure is an answer to check)
                outcomes.setdefault(expect.call_id, []).append(('error', error))

        order = rng.random()
        if order < 0.5:
            await self.page.evaluate(
                '(text) => fuzz.start(text)', to_page_text([spec for _, spec in page_calls])
            )
        tasks = [asyncio.create_task(settle(expect, start)) for expect, start in kernel_calls]
        if order >= 0.5:
            await asyncio.sleep(rng.uniform(0, 0.05))
            await self.page.evaluate(
                '(text) => fuzz.start(text)', to_page_text([spec for _, spec in page_calls])
            )
        deadline = time.monotonic() + ROUND_LIMIT
        if tasks:
            _, waiting = await asyncio.wait(tasks, timeout=ROUND_LIMIT)
            if waiting:
                stuck = [
                    e.call_id for (e, _), t in zip(kernel_calls, tasks, strict=True) if t in waiting
                ]
                self.fail(
                    f'round {number}: kernel calls without an answer after '
                    f'{ROUND_LIMIT} s: {self.describe(stuck)}; {await self.state()}'
                )
        answered = [e.call_id for e, _ in page_calls if not e.held]
        await self.wait_page(answered, deadline, number)
        held = [e.call_id for e, _ in page_calls if e.held]
        if held:
            early = await self.page.evaluate('(ids) => fuzz.settled(ids)', held)
            if early:
                self.fail(
                    f'round {number}: a page call whose kernel handler never answered '
                    f'was answered: {self.describe(held)}'
                )
            while not set(held) <= set(self.kernel.held):  # their frames may still be on the way
                if time.monotonic() > deadline:
                    self.fail(
                        f'round {number}: calls never reached the kernel: '
                        f'{self.describe(sorted(set(held) - set(self.kernel.held)))}'
                    )
                await asyncio.sleep(0.02)
            released = self.kernel.release()
            if released != sorted(held):
                self.fail(f'round {number}: held kernel handlers {released}, expected {held}')
            await self.wait_page(held, time.monotonic() + ROUND_LIMIT, number)
        await self.page.evaluate('fuzz.releaseAll()')
        page_outcomes = await self.page.evaluate('(ids) => fuzz.take(ids)', page_ids)
        for expect, _ in kernel_calls:
            self.check_kernel(expect, outcomes.get(expect.call_id, []))
        for expect, _ in page_calls:
            self.check_page(expect, page_outcomes[str(expect.call_id)])

    async def wait_page(self, ids: list[int], deadline: float, number: int) -> None:
        while ids:
            if await self.page.evaluate('(ids) => fuzz.settled(ids)', ids) == len(ids):
                return
            if time.monotonic() > deadline:
                outcomes = await self.page.evaluate('(ids) => fuzz.take(ids)', ids)
                stuck = [i for i in ids if outcomes[str(i)]['settled'] == 0]
                ran = [i for i in stuck if i in self.kernel.ran]
                self.fail(
                    f'(the kernel handler ran for {ran}) '
                    f'round {number}: page calls without an answer after {ROUND_LIMIT} s: '
                    f'{self.describe(stuck)}; {await self.state()}'
                )
            await asyncio.sleep(0.02)

    async def state(self) -> str:
        client = await self.page.evaluate("""() => { const c = window.jchannelClient;
            return [c.state, c.transport, String(c.lastError)]; }""")
        unusual = [
            f'{r.name} {r.levelname} {r.getMessage()[:300]}'
            for r in self.records
            if r.levelno >= logging.ERROR
            or 'dropping' in r.getMessage()
            or 'nobody waits' in r.getMessage()
            or (
                r.levelno == logging.WARNING
                and ' raised ' not in r.getMessage()
                and 'cannot be sent' not in r.getMessage()
            )
        ]
        tasks = [
            repr(task.get_coro())[:60]
            + ' at '
            + ' > '.join(
                f'{frame.f_code.co_name}:{frame.f_lineno}' for frame in task.get_stack(limit=8)
            )
            for task in list(self.server.rpc._tasks)
        ]
        return (
            f'server {self.server.status()}, page client {client}, kernel tasks {tasks}, '
            f'log {unusual[-20:]}'
        )

    def describe(self, ids: list[int]) -> str:
        return ', '.join(f'{i} ({self.expected[i].way}: {self.expected[i].what})' for i in ids)

    def check_kernel(self, expect: Expect, answers: list) -> None:
        where = f'kernel call {expect.call_id} ({expect.what})'
        if len(answers) != 1:
            self.fail(f'{where} settled {len(answers)} times: {answers!r:.300}')
        status, value = answers[0]
        if expect.ok:
            if status != 'ok':
                self.fail(f'{where} failed: {type(value).__name__}: {value!s:.300}')
            if expect.stream:
                if not (isinstance(value, tuple) and value[1] == expect.value):
                    self.fail(f'{where}: expected a stream {expect.value}, got {value!r:.300}')
            elif not same(value, expect.value):
                self.fail(f'{where}: {difference(expect.value, value)}')
            return
        if status != 'error' or type(value).__name__ != expect.error:
            self.fail(f'{where}: expected {expect.error}, got {status} {value!r:.300}')
        if isinstance(value, FrontendError):
            if not (isinstance(value.type, str) and isinstance(value.detail, str)):
                self.fail(f'{where}: an unclear error {value!r:.300}')
            if expect.type is not None and value.type != expect.type:
                self.fail(f'{where}: expected a {expect.type}, got {value!r:.300}')
        if expect.detail is not None:
            detail = value.detail if isinstance(value, FrontendError) else str(value)
            if not expect.detail(detail):
                self.fail(f'{where}: unexpected message {detail!r:.300}')

    def check_page(self, expect: Expect, outcome: dict) -> None:
        where = f'page call {expect.call_id} ({expect.what})'
        if outcome['settled'] != 1:
            self.fail(f'{where} settled {outcome["settled"]} times: {outcome!r:.300}')
        if expect.ok:
            if not outcome['ok']:
                self.fail(f'{where} failed: {outcome!r:.300}')
            if expect.stream:
                if outcome.get('stream') != expect.value:
                    self.fail(f'{where}: expected a stream {expect.value}, got {outcome!r:.300}')
                return
            value = from_page_text(outcome['value']) if 'value' in outcome else outcome
            if not same(value, expect.value):
                self.fail(f'{where}: {difference(expect.value, value)}')
            return
        if outcome['ok']:
            self.fail(f'{where}: expected {expect.error}, got {outcome!r:.300}')
        if expect.error == 'KernelError':
            if not outcome['kernelError'] or outcome['type'] != expect.type:
                self.fail(f'{where}: expected a KernelError {expect.type}, got {outcome!r:.300}')
            if expect.detail is not None and not expect.detail(outcome['detail']):
                self.fail(f'{where}: unexpected message {outcome!r:.300}')
        elif outcome['name'] != expect.error:
            self.fail(f'{where}: expected a {expect.error}, got {outcome!r:.300}')

    # -- afterwards -------------------------------------------------------------------------

    async def check_ran(self) -> None:
        page_ran = await self.page.evaluate('fuzz.ran')
        for way, ran in (('kernel', page_ran), ('page', self.kernel.ran)):
            side = 'page' if way == 'kernel' else 'kernel'
            twice = [i for i, n in collections.Counter(ran).items() if n > 1]
            if twice:
                self.fail(f'{side} handlers ran more than once for {self.describe(twice)}')
            foreign = [i for i in ran if i not in self.expected or self.expected[i].way != way]
            if foreign:
                self.fail(f'{side} handlers ran for calls not made to them: {foreign}')
            ran_set = set(ran)
            for expect in self.expected.values():
                if expect.way != way or expect.runs is None:
                    continue
                if expect.runs != (expect.call_id in ran_set):
                    verb = 'did not run' if expect.runs else 'ran'
                    self.fail(f'{side} handler {verb} for {self.describe([expect.call_id])}')


def fuzz_timeout() -> int:
    return int(BUDGET + 100)


@pytest.mark.timeout(fuzz_timeout())
async def test_random_calls_both_ways_get_one_answer_each(page: Page, caplog) -> None:
    print(f'\nJCHANNEL_SEED={SEED} (budget {BUDGET} s, page rules {"on" if PAGE_RULES else "off"})')
    started = time.monotonic()
    rng = random.Random(SEED)
    options: dict[str, Any] = {
        'transport': rng.choice([None, 'sse-post', 'poll']),
        'outbox_messages': rng.choice([2, 8, 32]),
        'outbox_bytes': rng.choice([8 * KiB, 48 * KiB, 200 * KiB]),
        'chunk_size': rng.choice([8 * KiB, 48 * KiB, 512 * KiB]),
        'poll_bytes': rng.choice([16 * KiB, 1024 * KiB]),
    }
    print(f'options: {options}')
    caplog.set_level(logging.DEBUG, logger='jchannel_http')
    pauser = Pauser()
    stop = asyncio.Event()
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=HEARTBEAT, max_body=MAX_BODY, **options
    ) as server:
        await page.goto(server.page_url)
        channel = await server.open(PAGE_SIDE, timeout=15)
        kernel = KernelSide(pauser)
        channel.handler = kernel
        session = server.status()['session']
        run = Run(SEED, server, channel, page, kernel, pauser)
        run.records = caplog.records
        pausing = asyncio.create_task(pauser.run(random.Random(SEED + 1), stop))
        rounds = 0
        try:
            while rounds < MAX_ROUNDS and time.monotonic() - started < BUDGET:
                rounds += 1
                await run.round(rounds)
                assert server.status()['pending_calls'] == 0, f'seed {SEED}: calls left waiting'
        finally:
            stop.set()
            await pausing
        await run.check_ran()
        # The channel still works, both ways.
        assert await channel.echo('after', '\ud800', timeout=10) == ['after', '\ud800']
        assert await channel.call('run', 0, 'return', 'fresh', None, timeout=10) == 'fresh'
        assert await page.evaluate("window.fuzzChannel.echo('after', 2)") == ['after', 2]
        assert (
            await page.evaluate("window.fuzzChannel.call('run', 1, 'return', 'fresh', null)")
            == 'fresh'
        )
        assert await page.evaluate('window.jchannelClient.state') == 'connected'
        assert server.status()['session'] == session, f'seed {SEED}: the page was replaced'
    logged = [
        record.getMessage()
        for record in caplog.records
        if record.name == 'jchannel_http' and record.levelno == logging.WARNING
    ]
    raised = [line for line in logged if ' raised ' in line]
    unsendable = [line for line in logged if 'cannot be sent' in line]
    assert len(raised) == run.kernel_failures, (
        f'seed {SEED}: {len(raised)} WARNINGs for {run.kernel_failures} kernel handler failures'
    )
    assert len(unsendable) == run.kernel_unsendable, (
        f'seed {SEED}: {len(unsendable)} WARNINGs for {run.kernel_unsendable} unsendable results'
    )
    errors = page.errors  # type: ignore[attr-defined]  # new_page() gives a Page this list
    assert errors == [], f'seed {SEED}: page errors {errors}'
    print(
        f'seed {SEED}: {rounds} rounds, {len(run.expected)} calls in '
        f'{time.monotonic() - started:.1f} s; kernel loop paused {pauser.count} times '
        f'({pauser.paused:.1f} s); {dict(sorted(run.counts.items()))}'
    )
