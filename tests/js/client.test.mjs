import assert from 'node:assert/strict';
import { afterEach, test as nodeTest } from 'node:test';

import { Client } from '../../client_js/client.js';
import { KernelError, StateError } from '../../client_js/errors.js';
import { FakeServer, deferred, htmlResponse, jsonResponse } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';

const URL_BASE = 'http://kernel.test/user/me/proxy/8765';
const test = (name, body) => nodeTest(name, { timeout: 2000 }, body);
const clients = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.stop();
  delete globalThis.testChannels;
  delete globalThis.testHits;
});

function recordingSleep(delays) {
  return (milliseconds) => {
    delays.push(milliseconds);
    return new Promise((resolve) => setTimeout(resolve, 1));
  };
}

function makeClient(server, options = {}) {
  const client = new Client(`${URL_BASE}/`, {
    token: 'secret',
    fetch: server.fetch,
    random: () => 0.5,
    sleep: recordingSleep([]),
    ...options,
  });
  clients.push(client);
  client.start();
  return client;
}

function openCode(handlerSource = '{}') {
  return `(channel) => { (globalThis.testChannels ??= []).push(channel); channel.handler = ${handlerSource}; }`;
}

async function connectWithChannel(server, options = {}, handlerSource = '{}') {
  const client = makeClient(server, options);
  await client.ready();
  server.stream.frame({ seq: 1, type: 'open', call: 1, channel: 3, code: openCode(handlerSource) });
  await waitUntil(() => server.receivedOfType('result').length === 1);
  return { client, channel: globalThis.testChannels[0] };
}

test('a client id is 22 URL-safe characters and the URL loses its trailing slash', () => {
  const client = new Client(`${URL_BASE}/`, { fetch: () => {} });
  assert.match(client.id, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(client.id, new Client(URL_BASE).id);
  assert.equal(client.url, URL_BASE);
  assert.equal(client.state, 'connecting');
  assert.equal(client.transport, 'sse-get');
});

test('the event stream request carries the client, cursor and the exact headers', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  const { url, init } = server.requests[0];
  assert.equal(url.origin + url.pathname, `${URL_BASE}/events`);
  assert.deepEqual(Object.fromEntries(url.searchParams), { client: client.id, cursor: '0' });
  assert.deepEqual(init.headers, {
    Accept: 'text/event-stream',
    Authorization: 'Bearer secret',
    'ngrok-skip-browser-warning': '1',
  });
  assert.equal(init.cache, 'no-store');
  assert.ok(init.signal instanceof AbortSignal);
  assert.equal(client.state, 'connected');
  assert.equal(client.session, 's1');
});

test('open and call frames are dispatched and their results POSTed with the right acks', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  server.stream.frame({
    seq: 1,
    type: 'open',
    call: 1,
    channel: 3,
    code: '(channel) => { channel.handler = { add: (a, b) => a + b }; return "ready"; }',
  });
  await waitUntil(() => server.received.length === 1);
  assert.deepEqual(server.received[0], { seq: 1, type: 'result', call: 1, value: 'ready' });
  const first = server.posts[0];
  assert.deepEqual(
    { ...first.body, messages: undefined },
    { client: client.id, session: 's1', ack: 1, messages: undefined, carry: true },
  );
  assert.equal(first.init.method, 'POST');
  assert.deepEqual(first.init.headers, {
    Authorization: 'Bearer secret',
    'ngrok-skip-browser-warning': '1',
    'Content-Type': 'application/json',
  });

  server.stream.frame({ seq: 2, type: 'call', call: 2, channel: 3, name: 'add', args: [2, 3] });
  await waitUntil(() => server.received.length === 2);
  assert.deepEqual(server.received[1], { seq: 2, type: 'result', call: 2, value: 5 });
  assert.equal(
    server.posts.at(-1).init.body,
    `{"client":"${client.id}","session":"s1","ack":2,` +
      '"messages":[{"seq":2,"type":"result","call":2,"value":5}],"carry":true}',
  );
  assert.deepEqual(client.stats.outbox, { messages: 0, bytes: 0 });
});

test('requests from the kernel get results or error frames', async () => {
  const server = new FakeServer();
  const handler = `{
    slow: async (x) => { await new Promise((r) => setTimeout(r, 5)); return x * 2; },
    fail: () => { throw new TypeError('bad input'); },
    failWithString: () => { throw 'oops'; },
    nothing: () => undefined,
  }`;
  const { client } = await connectWithChannel(server, {}, handler);
  const frames = [
    { type: 'echo', call: 2, channel: 3, args: [1, 'a', { b: [null] }] },
    { type: 'call', call: 3, channel: 3, name: 'slow', args: [21] },
    { type: 'call', call: 4, channel: 3, name: 'fail', args: [] },
    { type: 'call', call: 5, channel: 3, name: 'failWithString', args: [] },
    { type: 'call', call: 6, channel: 3, name: 'missing', args: [] },
    { type: 'call', call: 7, channel: 3, name: 'toString', args: [] },
    { type: 'call', call: 8, channel: 99, name: 'slow', args: [1] },
    { type: 'call', call: 9, channel: 3, name: 'nothing', args: [] },
    { type: 'open', call: 10, channel: 4, code: '42' },
    { type: 'close', call: 11, channel: 3 },
    { type: 'call', call: 12, channel: 3, name: 'slow', args: [1] },
    { type: 'mystery', call: 13 },
  ];
  frames.forEach((frame, i) => server.stream.frame({ seq: i + 2, ...frame }));
  await waitUntil(() => server.received.length === 12);
  const answers = Object.fromEntries(
    server.received.slice(1).map(({ call, type, value, name, message }) => [
      call,
      type === 'result' ? { value } : { name, message },
    ]),
  );
  assert.deepEqual(answers, {
    2: { value: [1, 'a', { b: [null] }] },
    3: { value: 42 },
    4: { name: 'TypeError', message: 'bad input' },
    5: { name: 'string', message: 'oops' },
    6: { name: 'AttributeError', message: "handler has no method 'missing'" },
    7: { name: 'AttributeError', message: "handler has no method 'toString'" },
    8: { name: 'StateError', message: 'no channel 99 on this page' },
    9: { value: null },
    10: {
      name: 'TypeError',
      message: 'the code given to open() must evaluate to a function taking the channel, ' +
        'e.g. `(channel) => { ... }`, but it evaluated to a number (42)',
    },
    11: { value: null },
    12: { name: 'StateError', message: 'no channel 3 on this page' },
  });
  assert.equal(client.stats.received, 13);
  assert.equal(client.stats.channels, 0);
});

test('page calls are numbered, sent as frames and settled by result and error frames', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  assert.equal(channel.key, 3);
  const sum = channel.call('sum', 1, 2);
  const echo = channel.echo('x', [1]);
  await waitUntil(() => server.received.length === 3);
  assert.deepEqual(server.received.slice(1), [
    { seq: 2, type: 'call', call: 1, channel: 3, name: 'sum', args: [1, 2] },
    { seq: 3, type: 'echo', call: 2, channel: 3, args: ['x', [1]] },
  ]);
  server.stream.frame({ seq: 2, type: 'result', call: 99, value: 'nobody asked' });
  server.stream.frame({ seq: 3, type: 'error', call: 2, name: 'ValueError', message: 'no echo today' });
  server.stream.frame({ seq: 4, type: 'result', call: 1, value: 3 });
  assert.equal(await sum, 3);
  const error = await echo.then(
    () => assert.fail('the echo should fail'),
    (reason) => reason,
  );
  assert.ok(error instanceof KernelError);
  assert.equal(error.type, 'ValueError');
  assert.equal(error.detail, 'no echo today');
  assert.equal(error.message, 'ValueError: no echo today');
  const again = channel.call('sum');
  await waitUntil(() => server.received.length === 4);
  assert.equal(server.received[3].call, 3);
  server.stream.frame({ seq: 5, type: 'close', call: 2, channel: 3 });
  server.stream.frame({ seq: 6, type: 'result', call: 3, value: 'answered after close' });
  assert.equal(await again, 'answered after close');
  assert.ok(channel.closed);
  await assert.rejects(channel.call('sum'), /channel 3 is closed/);
  assert.equal(client.stats.pendingCalls, 0);
});

test('calls made while a POST is in flight are coalesced into the next POST', async () => {
  const server = new FakeServer();
  const { channel } = await connectWithChannel(server);
  const gate = deferred();
  server.onMessages = async (body) => {
    await gate.promise;
    return server.processMessages(body);
  };
  const calls = [channel.call('f', 0)];
  await waitUntil(() => server.posts.length === 2);
  for (let i = 1; i <= 5; i += 1) {
    calls.push(channel.call('f', i));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.equal(server.posts.length, 2);
  gate.resolve();
  await waitUntil(() => server.received.length === 7);
  assert.equal(server.posts.length, 3);
  assert.deepEqual(
    server.posts[2].body.messages.map((frame) => [frame.seq, frame.args[0]]),
    [[3, 1], [4, 2], [5, 3], [6, 4], [7, 5]],
  );
  assert.equal(server.maxPostsInFlight, 1);
  calls.forEach((call, i) => server.stream.frame({ seq: i + 2, type: 'result', call: i + 1, value: i }));
  assert.deepEqual(await Promise.all(calls), [0, 1, 2, 3, 4, 5]);
});

test('a failed POST is retried with the same frames and numbers, after backoff delays', async () => {
  const server = new FakeServer();
  const delays = [];
  const { client, channel } = await connectWithChannel(server, { sleep: recordingSleep(delays) });
  const failures = [
    () => jsonResponse(503, { error: 'busy', message: 'try later' }),
    () => Promise.reject(new TypeError('network down')),
  ];
  server.onMessages = (body) => (failures.length > 0 ? failures.shift()() : server.processMessages(body));
  const states = [];
  client.onstatechange = () => states.push(client.lastError?.message);
  const call = channel.call('f', 'x');
  await waitUntil(() => server.received.length === 2);
  const attempts = server.posts.slice(1).map((post) => post.body.messages);
  assert.equal(attempts.length, 3);
  assert.deepEqual(attempts[1], attempts[0]);
  assert.deepEqual(attempts[2], attempts[0]);
  assert.deepEqual(attempts[0], [{ seq: 2, type: 'call', call: 1, channel: 3, name: 'f', args: ['x'] }]);
  assert.deepEqual(delays, [0, 750]);
  assert.deepEqual(states, ['the server answered 503: try later', 'TypeError: network down']);
  assert.equal(client.state, 'connected');
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'ok' });
  assert.equal(await call, 'ok');
});

test('after the stream is cut the client resumes from its cursor and drops replayed frames', async () => {
  const server = new FakeServer();
  const delays = [];
  const hits = [];
  globalThis.testHits = hits;
  const { client } = await connectWithChannel(
    server,
    { sleep: recordingSleep(delays) },
    '{ hit: (n) => { globalThis.testHits.push(n); return n; } }',
  );
  const states = [];
  client.onstatechange = () => states.push(client.state);
  server.stream.frame({ seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: [2] });
  server.stream.frame({ seq: 3, type: 'call', call: 3, channel: 3, name: 'hit', args: [3] });
  await waitUntil(() => server.received.length === 3);
  server.stream.end();
  await waitUntil(() => server.streams.length === 2 && client.state === 'connected');
  const resumed = server.stream;
  assert.equal(resumed.cursor, 3);
  assert.equal(resumed.session, 's1');
  resumed.frame({ seq: 3, type: 'call', call: 3, channel: 3, name: 'hit', args: [3] });
  resumed.frame({ seq: 4, type: 'call', call: 4, channel: 3, name: 'hit', args: [4] });
  await waitUntil(() => server.received.length === 4);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(hits, [2, 3, 4]);
  assert.deepEqual(
    server.receivedOfType('result').map((frame) => frame.call),
    [1, 2, 3, 4],
  );
  assert.equal(server.posts.at(-1).body.ack, 4);
  assert.deepEqual(states, ['reconnecting', 'connected']);
  assert.deepEqual(delays, [0]);
});

test('frames arriving out of order are held until the gap is filled', async () => {
  const server = new FakeServer();
  const { channel } = await connectWithChannel(server);
  const first = channel.call('a');
  const second = channel.call('b');
  await waitUntil(() => server.received.length === 3);
  const order = [];
  first.then(() => order.push('first'));
  second.then(() => order.push('second'));
  server.stream.frame({ seq: 3, type: 'result', call: 2, value: 'b' });
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(order, []);
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'a' });
  assert.deepEqual(await Promise.all([first, second]), ['a', 'b']);
  assert.deepEqual(order, ['first', 'second']);
});

test('a 401 fails the client for good', async () => {
  const server = new FakeServer();
  server.onEvents = () => jsonResponse(401, { error: 'unauthorized', message: 'wrong token' });
  const client = makeClient(server);
  await assert.rejects(client.ready(), /refused the token \(401\).*wrong token/);
  assert.equal(client.state, 'failed');
  assert.equal(client.lastError.status, 401);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(server.requests.length, 1);
  assert.equal(server.releases.length, 0);
});

test('a 401 on a POST fails the client too', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  server.onMessages = () => jsonResponse(401, { error: 'unauthorized', message: 'token revoked' });
  await assert.rejects(channel.call('f'), StateError);
  assert.equal(client.state, 'failed');
  assert.match(client.lastError.message, /token revoked/);
});

test('a 410 on the stream fails pending calls and starts a new session', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  const pending = channel.call('slow');
  await waitUntil(() => server.received.length === 2);
  server.onEvents = () => {
    server.onEvents = (next) => server.openStream(next);
    server.session = 's2';
    server.kernelInbox.reset();
    return jsonResponse(410, { error: 'resync', message: 'unknown session' });
  };
  server.stream.end();
  await assert.rejects(pending, (error) => error instanceof StateError && /resync/.test(error.message));
  await waitUntil(() => client.session === 's2');
  const fresh = server.stream;
  assert.equal(fresh.session, null);
  assert.equal(fresh.cursor, 0);
  assert.deepEqual(client.stats.outbox, { messages: 0, bytes: 0 });
  assert.equal(client.stats.received, 0);
  const next = channel.call('after');
  await waitUntil(() => server.received.length === 3);
  assert.deepEqual(server.received[2], { seq: 1, type: 'call', call: 2, channel: 3, name: 'after', args: [] });
  fresh.frame({ seq: 1, type: 'result', call: 2, value: 'fine' });
  assert.equal(await next, 'fine');
});

test('a 410 on a POST fails pending calls and reconnects without a session', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  server.onMessages = () => {
    server.onMessages = (next) => server.processMessages(next);
    server.session = 's2';
    server.kernelInbox.reset();
    return jsonResponse(410, { error: 'resync', message: 'unknown session' });
  };
  await assert.rejects(channel.call('f'), /resync/);
  await waitUntil(() => client.session === 's2' && client.state === 'connected');
  assert.equal(server.stream.session, null);
  assert.equal(server.stream.cursor, 0);
});

test('reconnect delays follow the backoff schedule and reset after a hello', async () => {
  const server = new FakeServer();
  const delays = [];
  let failures = 4;
  server.onEvents = (stream) =>
    failures-- > 0 ? jsonResponse(503, { error: 'busy', message: 'later' }) : server.openStream(stream);
  const client = makeClient(server, { sleep: recordingSleep(delays) });
  await client.ready();
  assert.deepEqual(delays, [0, 750, 1500, 3000]);
  server.stream.end();
  await waitUntil(() => server.streams.length === 2 && client.state === 'connected');
  assert.deepEqual(delays, [0, 750, 1500, 3000, 0]);
});

test('a 409 keeps retrying and says another page is connected', async () => {
  const server = new FakeServer();
  let conflicts = 3;
  server.onEvents = (stream) =>
    conflicts-- > 0
      ? jsonResponse(409, { error: 'client_conflict', message: 'another client is live' })
      : server.openStream(stream);
  const errors = [];
  const client = makeClient(server, { onstatechange: (c) => errors.push(c.lastError?.message) });
  await client.ready();
  assert.equal(errors.length, 4);
  assert.match(errors[0], /another page is connected/);
  assert.equal(errors[3], undefined);
  assert.equal(client.lastError, null);
});

test('an HTML page instead of the stream names the URL to open once', async () => {
  const server = new FakeServer();
  let interstitials = 1;
  server.onEvents = (stream) => (interstitials-- > 0 ? htmlResponse(200) : server.openStream(stream));
  const errors = [];
  const client = makeClient(server, { onstatechange: (c) => errors.push(c.lastError?.message) });
  await client.ready();
  assert.match(errors[0], /HTML page/);
  assert.ok(errors[0].includes(`${URL_BASE}/openapi.json`));
});

test('a silent stream is dropped after two heartbeats and reopened', async () => {
  const server = new FakeServer({ autoHello: false });
  const errors = [];
  const client = makeClient(server, {
    heartbeat: 0.01,
    onstatechange: (c) => errors.push(c.lastError?.message ?? null),
  });
  await waitUntil(() => server.streams.length >= 2);
  assert.equal(client.state, 'connecting');
  assert.match(errors[0], /no data from the server for 0.02 s/);
  server.helloFields = { heartbeat: 0.02 };
  server.autoHello = true;
  await client.ready();
  const opened = server.streams.length;
  await waitUntil(() => server.streams.length > opened);
  assert.ok(errors.some((message) => /no data from the server for 0.04 s/.test(message)));
  assert.ok(server.streams.slice(0, -1).every((stream) => stream.closed));
});

test('stop rejects pending calls, closes the stream and releases the server', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  const pending = channel.call('never');
  const states = [];
  client.onstatechange = () => states.push(client.state);
  client.stop();
  await assert.rejects(pending, StateError);
  await assert.rejects(channel.call('later'), StateError);
  await assert.rejects(client.ready(), StateError);
  assert.deepEqual(states, ['stopped']);
  assert.equal(server.releases.length, 1);
  const release = server.releases[0];
  assert.equal(release.url.href, `${URL_BASE}/release?client=${client.id}`);
  assert.deepEqual(release.init, {
    method: 'POST',
    keepalive: true,
    headers: { Authorization: 'Bearer secret', 'ngrok-skip-browser-warning': '1' },
  });
  await waitUntil(() => server.stream.closed);
  const count = server.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(server.requests.length, count);
  client.stop();
  assert.equal(server.releases.length, 1);
});

test('a full outbox makes new frames wait for acknowledgements', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server, { maxMessages: 1 });
  const gate = deferred();
  server.onMessages = async (body) => {
    await gate.promise;
    return server.processMessages(body);
  };
  const calls = [1, 2, 3].map((n) => channel.call('f', n));
  await waitUntil(() => server.posts.length === 2);
  assert.equal(client.stats.outbox.messages, 1);
  gate.resolve();
  await waitUntil(() => server.received.length === 4);
  assert.deepEqual(
    server.received.slice(1).map((frame) => [frame.seq, frame.args[0]]),
    [[2, 1], [3, 2], [4, 3]],
  );
  calls.forEach((call, i) => server.stream.frame({ seq: i + 2, type: 'result', call: i + 1, value: i }));
  assert.deepEqual(await Promise.all(calls), [0, 1, 2]);
});

test('a result larger than max_body is answered with an error frame', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  server.stream.hello({ max_body: 4096 });
  server.stream.frame({ seq: 1, type: 'open', call: 1, channel: 1, code: '() => "x".repeat(5000)' });
  await waitUntil(() => server.received.length === 1);
  assert.equal(server.received[0].type, 'error');
  assert.equal(server.received[0].name, 'RangeError');
});

test('a POST left unanswered is abandoned after postTimeout and sent again', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server, { postTimeout: 0.02 });
  server.onMessages = () => {
    server.onMessages = (next) => server.processMessages(next);
    return new Promise(() => {});
  };
  const call = channel.call('f');
  await waitUntil(() => server.received.length === 2);
  assert.deepEqual(server.posts[2].body.messages, server.posts[1].body.messages);
  assert.match(client.lastError.message, /no answer to a POST within 0.02 s/);
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'late but fine' });
  assert.equal(await call, 'late but fine');
});

test('in a browser, pagehide releases the server', async () => {
  globalThis.window = new EventTarget();
  try {
    const server = new FakeServer();
    const client = makeClient(server);
    await client.ready();
    globalThis.window.dispatchEvent(new Event('pagehide'));
    assert.equal(server.releases.length, 1);
    assert.equal(server.releases[0].url.searchParams.get('client'), client.id);
    client.stop();
    assert.equal(server.releases.length, 2);
    globalThis.window.dispatchEvent(new Event('pagehide'));
    assert.equal(server.releases.length, 2);
  } finally {
    delete globalThis.window;
  }
});

test('a hidden page sends nothing after its release until it is shown again', async () => {
  globalThis.window = new EventTarget();
  try {
    const server = new FakeServer();
    const client = makeClient(server);
    await client.ready();
    globalThis.window.dispatchEvent(new Event('pagehide'));
    const before = server.requests.length;
    server.stream.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.requests.length, before, 'no request may take the server back');
    globalThis.window.dispatchEvent(new Event('pageshow'));
    await waitUntil(() => server.streams.length === 2);
    client.stop();
  } finally {
    delete globalThis.window;
  }
});

test('a result JSON cannot carry is answered with a TypeError error frame naming it', async () => {
  const server = new FakeServer();
  const handler = `{
    fn: () => () => 1,
    nan: () => ({ items: [0, 1, 2, NaN] }),
    sym: () => Symbol('s'),
    big: () => [1n],
    fine: () => [undefined, { gone: undefined, kept: '\\ud800' }],
  }`;
  const { client } = await connectWithChannel(server, {}, handler);
  const names = ['fn', 'nan', 'sym', 'big', 'fine'];
  names.forEach((name, i) => server.stream.frame({ seq: i + 2, type: 'call', call: i + 2, channel: 3, name, args: [] }));
  await waitUntil(() => server.received.length === 6);
  const answers = Object.fromEntries(server.received.slice(1).map(({ call, type, name, message, value }) =>
    [call, type === 'error' ? `${name}: ${message}` : value]));
  assert.deepEqual(answers, {
    2: 'TypeError: cannot send result: a function',
    3: 'TypeError: cannot send result.items[3]: NaN',
    4: 'TypeError: cannot send result: a symbol',
    5: 'TypeError: cannot send result[0]: a BigInt',
    6: [null, { kept: '\ud800' }],
  });
  assert.ok(server.posts.every((post) => !post.init.body.includes('"value":{}')));
  assert.equal(client.state, 'connected');
});

test('a page call with an argument JSON cannot carry is rejected at once, nothing sent', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  const posts = server.posts.length;
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(channel.call('f', 1, 2, { x: () => 1 }), { name: 'TypeError', message: 'cannot send args[2].x: a function' });
  await assert.rejects(channel.echo([NaN]), { name: 'TypeError', message: 'cannot send args[0][0]: NaN' });
  await assert.rejects(channel.call('f', cyclic), /cannot send args\[0\]\.self: a cycle/);
  await assert.rejects(channel.callWithStream('f', (async function* () {})(), Infinity), /cannot send args\[0\]: Infinity/);
  assert.equal(client.stats.sent, 1, 'nothing was enqueued');
  assert.equal(client.stats.pendingCalls, 0);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(server.posts.length, posts);
  const fine = channel.call('g', [undefined], { a: undefined });
  await waitUntil(() => server.received.length === 2);
  assert.deepEqual(server.received[1], { seq: 2, type: 'call', call: 1, channel: 3, name: 'g', args: [[null], {}] });
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'ok' });
  assert.equal(await fine, 'ok');
});

test('handlers and open code throwing values that cannot describe themselves still get one answer', async () => {
  const server = new FakeServer();
  const handler = `{
    proxy: () => { throw new Proxy({}, { get() { throw new Error('trap'); } }); },
    name: () => { throw { get name() { throw new Error('no name'); } }; },
    text: () => { throw { toString() { throw new Error('no text'); } }; },
    nothing: () => { throw null; },
    undef: () => { throw undefined; },
    number: () => { throw 7; },
    huge: () => { throw new Error('x'.repeat(2000000)); },
    hostileResult: () => new Proxy({}, { get() { throw new Proxy({}, { get() { throw 1; } }); } }),
  }`;
  const { client } = await connectWithChannel(server, {}, handler);
  const names = ['proxy', 'name', 'text', 'nothing', 'undef', 'number', 'huge', 'hostileResult'];
  names.forEach((name, i) => server.stream.frame({ seq: i + 2, type: 'call', call: i + 2, channel: 3, name, args: [] }));
  const openCode = '() => { throw new Proxy({}, { get() { throw new Error("open trap"); } }); }';
  server.stream.frame({ seq: 10, type: 'open', call: 10, channel: 4, code: openCode });
  await waitUntil(() => server.received.length === 10);
  const answers = server.received.slice(1).map(({ call, type, name, message }) => [call, type, name, message.slice(0, 120)]);
  const undescribed = '<the thrown value could not be described: ';
  assert.deepEqual(answers, [
    [2, 'error', 'Error', `${undescribed}reading it threw Error: trap>`],
    [3, 'error', 'Error', `${undescribed}reading it threw Error: no name>`],
    [4, 'error', 'Error', `${undescribed}it has no message and no working toString>`],
    [5, 'error', 'null', 'null'],
    [6, 'error', 'undefined', 'undefined'],
    [7, 'error', 'number', '7'],
    [8, 'error', 'Error', 'x'.repeat(120)],
    [9, 'error', 'Error', `${undescribed}reading it threw 1>`],
    [10, 'error', 'Error', `${undescribed}reading it threw Error: open trap>`],
  ]);
  assert.match(server.received[7].message, /\.\.\. \(\d+ more characters\)$/);
  assert.equal(client.stats.outbox.messages, 0);
});

test('a POST answered 400 is not sent again: the session starts over and the page hears why', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  let refused = 0;
  server.onMessages = (body) => {
    if (body.messages.some((frame) => frame.name === 'poison')) {
      refused += 1;
      server.session = 's2';
      server.kernelInbox.reset();
      return jsonResponse(400, { error: 'bad_request', message: "frame 2: field 'args' must be a JSON array" });
    }
    return server.processMessages(body);
  };
  const error = await channel.call('poison').then(() => assert.fail('it should be refused'), (reason) => reason);
  assert.ok(error instanceof StateError);
  assert.match(error.message, /resync.*400 bad_request.*field 'args' must be a JSON array/);
  await waitUntil(() => client.session === 's2' && client.state === 'connected');
  assert.equal(refused, 1, 'the refused batch went once');
  assert.equal(server.stream.session, null);
  const next = channel.call('after');
  await waitUntil(() => server.received.some((frame) => frame.name === 'after'));
  server.stream.frame({ seq: 1, type: 'result', call: 2, value: 'recovered' });
  assert.equal(await next, 'recovered');
});

test('a POST the kernel server fails on (500 internal_error) starts a new session; a proxy 500 is retried', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  let failures = 0;
  server.onMessages = (body) => {
    if (body.messages.some((frame) => frame.name === 'proxy') && failures++ < 2) {
      return new Response('upstream hiccup', { status: 500, headers: { 'content-type': 'text/plain' } });
    }
    if (body.messages.some((frame) => frame.name === 'bug')) {
      server.session = 's2';
      server.kernelInbox.reset();
      return jsonResponse(500, { error: 'internal_error', message: 'unexpected KeyError; see the kernel log' });
    }
    return server.processMessages(body);
  };
  const throughProxy = channel.call('proxy');
  await waitUntil(() => server.received.some((frame) => frame.name === 'proxy'));
  assert.equal(failures, 3, 'retried with the same frames until it passed');
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'passed' });
  assert.equal(await throughProxy, 'passed');
  await assert.rejects(channel.call('bug'), (error) => error instanceof StateError && /500 internal_error.*KeyError/.test(error.message));
  await waitUntil(() => client.session === 's2' && client.state === 'connected');
  await assert.rejects(channel.call(42), { name: 'TypeError', message: 'a method name must be a string, not number' });
});

test('open code runs as a script when it is not one expression, and an open channel keeps its first result', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  globalThis.openRuns = 0;
  const codes = [
    '(channel) => { globalThis.openRuns += 1; channel.handler = { one: () => 1 }; return "a"; };',
    'const two = 2;\n(channel) => { channel.handler = { two: () => two }; return "b"; }',
    '(channel) => {',
    'const notAFunction = 3; notAFunction;',
    '(channel) => { globalThis.openRuns += 1; return "c"; }',
  ];
  codes.forEach((code, i) =>
    server.stream.frame({ seq: i + 1, type: 'open', call: i + 1, channel: i + 1, code }),
  );
  await waitUntil(() => server.received.length === 5);
  const answer = (call) => server.received.find((frame) => frame.call === call);
  assert.equal(answer(1).value, 'a');
  assert.equal(answer(2).value, 'b');
  assert.equal(answer(3).name, 'SyntaxError');
  assert.equal(answer(4).name, 'TypeError');
  assert.match(answer(4).message, /^the code given to open\(\) must evaluate to a function taking the channel, .* but it evaluated to a number \(3\)$/);
  // Opening channel 1 again (and channel 5 twice at once): the code does not run again.
  server.stream.frame({ seq: 6, type: 'open', call: 6, channel: 1, code: codes[0] });
  server.stream.frame({ seq: 7, type: 'open', call: 7, channel: 5, code: codes[4] });
  server.stream.frame({ seq: 8, type: 'call', call: 8, channel: 2, name: 'two', args: [] });
  await waitUntil(() => server.received.length === 8);
  assert.deepEqual([answer(6).value, answer(7).value, answer(8).value], ['a', 'c', 2]);
  assert.equal(globalThis.openRuns, 2);
  // Closed, it opens anew.
  server.stream.frame({ seq: 9, type: 'close', call: 9, channel: 1 });
  server.stream.frame({ seq: 10, type: 'open', call: 10, channel: 1, code: codes[0] });
  await waitUntil(() => server.received.length === 10);
  assert.equal(globalThis.openRuns, 3);
});

test('a POST a proxy refuses for its size (413) goes again in smaller batches, never the same body', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  const cap = 3000;
  const refusedSizes = [];
  server.onMessages = (body, index) => {
    const size = new TextEncoder().encode(server.posts[index].init.body).length;
    if (size > cap) {
      refusedSizes.push(size);
      return new Response('<html><body>413 Request Entity Too Large</body></html>', {
        status: 413, headers: { 'content-type': 'text/html' },
      });
    }
    return server.processMessages(body);
  };
  const calls = [1, 2, 3, 4].map((n) => channel.call('big', String(n).repeat(900)));
  await waitUntil(() => server.received.filter((frame) => frame.name === 'big').length === 4);
  assert.ok(refusedSizes.length >= 1 && refusedSizes.length <= 2, `refused ${refusedSizes}`);
  assert.equal(new Set(refusedSizes).size, refusedSizes.length, 'no refused body was sent again');
  assert.equal(client.session, 's1');
  server.received.filter((frame) => frame.name === 'big').forEach((frame, index) => {
    server.stream.frame({ seq: index + 2, type: 'result', call: frame.call, value: index });
  });
  assert.deepEqual((await Promise.all(calls)).sort(), [0, 1, 2, 3]);
});

test('a single frame larger than the path lets through starts a new session, once; later ones are refused at once', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  let refused = 0;
  server.onMessages = (body, index) => {
    if (new TextEncoder().encode(server.posts[index].init.body).length > 3000) {
      refused += 1;
      server.session = 's2';
      server.kernelInbox.reset();
      return new Response('<html>413</html>', { status: 413, headers: { 'content-type': 'text/html' } });
    }
    return server.processMessages(body);
  };
  const error = await channel.call('huge', 'x'.repeat(5000)).then(() => assert.fail('refused'), (reason) => reason);
  assert.ok(error instanceof StateError);
  assert.match(error.message, /larger than the path to the kernel lets through \(413\)/);
  assert.equal(refused, 1, 'the refused body went once');
  await waitUntil(() => client.session === 's2' && client.state === 'connected');
  await assert.rejects(channel.call('huge', 'x'.repeat(5000)), RangeError);
  assert.equal(refused, 1);
});

test('a POST whose answer was lost is sent again, even with nothing left to send: the answer may have carried kernel frames', async () => {
  const server = new FakeServer();
  const { client, channel } = await connectWithChannel(server);
  server.onMessages = async (body) => {
    server.processMessages(body); // the kernel takes the call and carries its result back...
    server.onMessages = (later) => server.processMessages(later);
    server.stream.hello({ session: 's1', ack: server.kernelInbox.cursor }); // ...acked meanwhile
    await waitUntil(() => client.stats.outbox.messages === 0);
    throw new TypeError('the connection was reset'); // ...but the answer is lost
  };
  server.carryable.push({ seq: 2, type: 'result', call: 1, value: 'ok' });
  const call = channel.call('f');
  assert.equal(await call, 'ok');
  const last = server.posts[server.posts.length - 1].body;
  assert.deepEqual(last.messages, []);
  assert.equal(last.ack, 1);
});

test('an answer with Age above 0 (a cache on the way) is never taken, and lastError says what to change', async () => {
  const server = new FakeServer();
  server.onEvents = () => new Response('event: hello\ndata: {}\n\n', {
    headers: { 'content-type': 'text/event-stream', age: '37' },
  });
  const client = makeClient(server);
  await waitUntil(() => /a cache on the way/.test(client.lastError?.message ?? ''));
  assert.match(client.lastError.message, /Age: 37.*make it pass every request to http:\/\/kernel\.test/);
  assert.notEqual(client.state, 'connected');
  assert.equal(client.session, null);
});

test('an answer with Age: 0 (a cache that passed it on) is taken', async () => {
  const server = new FakeServer();
  server.onEvents = (stream) => {
    const response = server.openStream(stream);
    response.headers.set('age', '0');
    return response;
  };
  const client = makeClient(server);
  await client.ready();
  assert.equal(client.state, 'connected');
});
