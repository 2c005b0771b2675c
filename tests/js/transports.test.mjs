import assert from 'node:assert/strict';
import { afterEach, test as nodeTest } from 'node:test';

import { Client } from '../../client_js/client.js';
import { TRANSPORT_ORDER, transportCandidates } from '../../client_js/transports.js';
import { FakeServer, htmlResponse, jsonResponse } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';

const URL_BASE = 'http://kernel.test/user/me/proxy/8765';
const test = (name, body) => nodeTest(name, { timeout: 3000 }, body);
const clients = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.stop();
  delete globalThis.testHits;
});

function makeClient(server, options = {}) {
  const delays = [];
  const client = new Client(URL_BASE, {
    token: 'secret',
    fetch: server.fetch,
    random: () => 0.5,
    sleep: (milliseconds) => {
      delays.push(milliseconds);
      return new Promise((resolve) => setTimeout(resolve, 1));
    },
    firstEventDeadline: 0.02,
    ...options,
  });
  client.delays = delays;
  client.errors = [];
  client.onstatechange = () => client.errors.push(client.lastError?.message ?? null);
  clients.push(client);
  client.start();
  return client;
}

/** A server behind a proxy that holds every event stream of the given methods (no byte passes). */
function bufferingServer(...methods) {
  const server = new FakeServer();
  server.onEvents = (stream) => {
    if (!methods.includes(stream.init.method ?? 'GET')) return server.openStream(stream);
    server.streams.push(stream);
    return new Response(stream.body, { headers: { 'content-type': 'text/event-stream' } });
  };
  return server;
}

const HIT = `(channel) => { channel.handler = { hit: (n) => { (globalThis.testHits ??= []).push(n); return n; } }; }`;

test('the transports are tried in the order GET stream, POST stream, long-poll', () => {
  assert.deepEqual(TRANSPORT_ORDER, ['sse-get', 'sse-post', 'poll']);
  assert.deepEqual(transportCandidates(null), ['sse-get', 'sse-post', 'poll']);
  assert.deepEqual(transportCandidates('poll'), ['poll']);
  assert.throws(() => transportCandidates('websocket'), /unknown transport 'websocket': use 'sse-get', 'sse-post', 'poll'/);
  assert.throws(() => new Client(URL_BASE, { transport: 'sse' }), RangeError);
});

test('a GET stream held by a proxy is abandoned after the deadline for a POST stream', async () => {
  const server = bufferingServer('GET');
  const client = makeClient(server);
  await client.ready();
  assert.equal(client.transport, 'sse-post');
  const [held, posted] = server.streams;
  assert.ok(held.closed, 'the held GET stream is aborted');
  assert.equal(held.init.method, 'GET');
  assert.equal(posted.init.method, 'POST');
  assert.equal(posted.url.pathname, '/user/me/proxy/8765/events');
  assert.deepEqual(posted.init.headers, {
    Accept: 'text/event-stream',
    Authorization: 'Bearer secret',
    'ngrok-skip-browser-warning': '1',
  });
  assert.match(client.errors[0], /no first event over sse-get within 0.02 s: a proxy seems to buffer it; trying sse-post/);
  assert.equal(client.lastError, null);
  assert.deepEqual(client.delays, [], 'moving on to the next transport waits for nothing');
});

test('when both streams are held, long-poll carries the frames, acknowledged by the cursor', async () => {
  const server = bufferingServer('GET', 'POST');
  const client = makeClient(server);
  await client.ready();
  assert.equal(client.transport, 'poll');
  assert.equal(server.streams.length, 2);
  assert.ok(server.streams.every((stream) => stream.closed));
  const first = server.polls[0];
  assert.equal(first.session, null, 'the first poll has no session and is answered at once');
  assert.equal(first.init.headers.Accept, 'application/json');
  await waitUntil(() => server.polls.length === 2);
  const held = server.poll;
  assert.deepEqual(Object.fromEntries(held.url.searchParams), { client: client.id, cursor: '0', session: 's1' });
  held.answer([
    { seq: 1, type: 'open', call: 1, channel: 3, code: HIT },
    { seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: [7] },
  ]);
  await waitUntil(() => server.received.length === 2 && server.polls.length === 3);
  assert.equal(server.poll.cursor, 2, 'the next poll acknowledges what was processed');
  const results = server.received.map((frame) => [frame.type, frame.call, frame.value]);
  assert.deepEqual(results.sort(), [
    ['result', 1, null],
    ['result', 2, 7],
  ]);
  server.poll.answer([{ seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: [7] }]);
  await waitUntil(() => server.polls.length === 4);
  server.poll.answer();
  await waitUntil(() => server.polls.length === 5);
  assert.deepEqual(globalThis.testHits, [7], 'a frame polled twice runs once');
  assert.equal(client.state, 'connected');
  assert.equal(client.errors.at(-1), null);
});

test('frames that came by poll are acknowledged by the next poll, not by a POST of their own', async () => {
  const server = new FakeServer();
  const client = makeClient(server, { transport: 'poll' });
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  server.poll.answer([{ seq: 1, type: 'open', call: 1, channel: 3, code: HIT }]);
  await waitUntil(() => server.received.length === 1 && server.polls.length === 3);
  const posts = server.posts.length;
  const calling = client.request({ key: 3 }, 'call', { name: 'f', args: [] });
  await waitUntil(() => server.posts.length === posts + 1);
  server.poll.answer([{ seq: 2, type: 'result', call: 1, value: 'done' }]);
  assert.equal(await calling, 'done');
  await waitUntil(() => server.polls.length === 4);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(server.poll.cursor, 2);
  assert.equal(server.posts.length, posts + 1, 'no POST only to acknowledge');
});

test('POST answers carry kernel frames back (here by long-poll), and each runs once', async () => {
  const server = new FakeServer();
  const client = makeClient(server, { transport: 'poll' });
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  server.carryable = [{ seq: 1, type: 'open', call: 1, channel: 3, code: HIT }];
  const calling = client.request({ key: 3 }, 'call', { name: 'f', args: [] });
  await waitUntil(() => server.receivedOfType('result').length === 1);
  assert.equal(server.posts[0].body.carry, true);
  assert.deepEqual(server.receivedOfType('result')[0], { seq: 2, type: 'result', call: 1, value: null });
  server.carryable.push({ seq: 2, type: 'call', call: 7, channel: 3, name: 'hit', args: ['once'] });
  server.poll.answer([server.carryable[1]]); // the same frame by poll too: it runs once
  await waitUntil(() => server.receivedOfType('result').length === 2);
  server.carryable.push({ seq: 3, type: 'result', call: 1, value: 'done' });
  client.request({ key: 3 }, 'echo', { args: [] }).catch(() => {}); // its POST's answer carries the result
  assert.equal(await calling, 'done');
  await waitUntil(() => server.posts.at(-1).body.ack === 3);
  assert.deepEqual(globalThis.testHits, ['once']);
});

test('a carrying answer that is lost comes again: the POST goes again with the same ack', async () => {
  const server = new FakeServer();
  const client = makeClient(server, { transport: 'poll' });
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  server.carryable = [{ seq: 1, type: 'open', call: 1, channel: 3, code: HIT },
    { seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: ['x'] }];
  let lost = 0;
  server.onMessages = (body) => {
    const answer = server.processMessages(body);
    if (lost++ === 0) throw new TypeError('Failed to fetch'); // processed, the answer lost
    return answer;
  };
  client.request({ key: 3 }, 'echo', { args: [] }).catch(() => {});
  await waitUntil(() => server.receivedOfType('result').length === 2);
  assert.deepEqual(server.posts.slice(0, 2).map((post) => post.body.ack), [0, 0]);
  assert.deepEqual(globalThis.testHits, ['x']);
});

test('an event-stream client takes frames carried by POST answers too, each once', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  const open = { seq: 1, type: 'open', call: 1, channel: 3, code: HIT };
  const call = { seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: ['streamed or carried'] };
  server.stream.frame(open);
  await waitUntil(() => server.receivedOfType('result').length === 1);
  server.carryable = [call];
  server.stream.frame(call); // by both ways: it runs once
  client.request({ key: 3 }, 'echo', { args: [] }).catch(() => {});
  await waitUntil(() => server.receivedOfType('result').length === 2);
  assert.equal(client.transport, 'sse-get');
  assert.ok(server.posts.every((post) => post.body.carry === true));
  assert.deepEqual(globalThis.testHits, ['streamed or carried']);
});

test('the choice lasts: a failing poll is retried as a poll, never as a stream again', async () => {
  const server = bufferingServer('GET', 'POST');
  const client = makeClient(server);
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  let failures = 3;
  server.onPoll = (poll) => {
    if (failures-- > 0) return jsonResponse(503, { error: 'busy', message: 'later' });
    const held = server.holdPoll(poll);
    if (failures === -1) poll.answer();
    return held;
  };
  server.poll.answer();
  await waitUntil(() => failures < 0 && client.state === 'connected');
  assert.equal(server.streams.length, 2);
  assert.equal(client.transport, 'poll');
  assert.deepEqual(client.delays, [0, 750, 1500]);
});

test('a forced transport is used alone, however long its first event takes', async () => {
  const held = bufferingServer('GET');
  const streamOnly = makeClient(held, { transport: 'sse-get' });
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(held.streams.length, 1);
  assert.ok(!held.streams[0].closed);
  assert.equal(streamOnly.transport, 'sse-get');
  assert.equal(streamOnly.state, 'connecting');

  const server = new FakeServer();
  const pollOnly = makeClient(server, { transport: 'poll' });
  await pollOnly.ready();
  assert.equal(server.streams.length, 0);
  assert.equal(server.requests[0].url.pathname, '/user/me/proxy/8765/poll');
  assert.equal(pollOnly.transport, 'poll');
});

test('heartbeats that stop after the hello while the server answers: retried once, then moved on', async () => {
  const server = new FakeServer();
  server.helloFields = { heartbeat: 0.01 };
  const client = makeClient(server);
  await client.ready();
  assert.equal(client.transport, 'sse-get');
  await waitUntil(() => client.transport === 'sse-post' && client.state === 'connected');
  assert.deepEqual(server.streams.map((stream) => stream.init.method), ['GET', 'GET', 'POST']);
  assert.ok(server.statusRequests.length >= 2, 'each silence was checked with a probe');
  assert.ok(client.errors.some((message) => /no data from the server for 0.02 s: heartbeats stopped, 2 times in a row while the server answers: a proxy seems to hold the stream; trying sse-post/.test(message)));
  assert.equal(server.streams[2].session, 's1');
});

test('heartbeats after the hello clear the count of silences: one silence now and then never moves on', async () => {
  const server = new FakeServer();
  server.helloFields = { heartbeat: 0.02 };
  const silent = new Set([0, 2, 4]); // every other stream falls silent after its hello
  server.onEvents = (stream, index) => {
    const response = server.openStream(stream);
    if (!silent.has(server.streams.length - 1)) {
      const ping = setInterval(() => (stream.closed ? clearInterval(ping) : stream.send(': ping\n\n')), 5);
      setTimeout(() => stream.end(), 80);
    }
    return response;
  };
  const client = makeClient(server);
  await client.ready();
  await waitUntil(() => server.streams.length >= 6, 2500);
  assert.ok(server.streams.every((stream) => stream.init.method === 'GET'));
  assert.equal(client.transport, 'sse-get');
});

test('a kernel too busy to answer (a long cell) never moves the client off its transport', async () => {
  const server = new FakeServer();
  server.helloFields = { heartbeat: 0.01 };
  let busy = false;
  const waiting = [];
  const hang = () => new Promise((resolve) => waiting.push(resolve));
  const openStream = server.onEvents;
  server.onEvents = (stream, index) => {
    if (!busy) return openStream(stream, index);
    server.streams.push(stream);
    return hang(); // the request is not answered at all
  };
  server.onStatus = () => (busy ? hang() : jsonResponse(200, {}));
  const client = makeClient(server);
  await client.ready();
  busy = true; // the stream falls silent, and every request waits
  await waitUntil(() => server.streams.length >= 5 && server.statusRequests.length >= 5, 2500);
  assert.ok(server.streams.every((stream) => stream.init.method === 'GET'));
  assert.equal(client.transport, 'sse-get');
  assert.ok(client.errors.some((message) => /heartbeats stopped; the server does not answer either \(busy or unreachable\): retrying sse-get/.test(message)));
  busy = false; // the cell ends
  await waitUntil(() => client.state === 'connected' && client.lastError === null, 2500);
  assert.equal(client.transport, 'sse-get');
  assert.equal(server.stream.init.method, 'GET');
  assert.equal(server.stream.session, 's1');
});

test('a first event that is late while the server does not answer a probe either is awaited', async () => {
  const server = new FakeServer({ autoHello: false });
  const statuses = [];
  server.onStatus = () => new Promise((resolve) => statuses.push(resolve));
  const client = makeClient(server, { heartbeat: 10 });
  await waitUntil(() => server.statusRequests.length >= 3, 1500); // a probe after each deadline
  assert.equal(server.streams.length, 1);
  assert.ok(!server.stream.closed);
  assert.equal(client.transport, 'sse-get');
  statuses.forEach((resolve) => resolve(jsonResponse(200, {}))); // the kernel is back: both arrive
  server.stream.hello();
  await client.ready();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(client.transport, 'sse-get');
  assert.equal(server.streams.length, 1);
  assert.equal(client.state, 'connected');
});

test('a first event that comes just after the answer to the probe keeps the transport', async () => {
  const server = new FakeServer({ autoHello: false });
  server.onStatus = () => {
    setTimeout(() => server.stream.hello(), 5); // sent before the answer, delivered after it
    return jsonResponse(200, {});
  };
  const client = makeClient(server, { firstEventDeadline: 0.05 });
  await client.ready();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(client.transport, 'sse-get');
  assert.equal(server.streams.length, 1);
});

test('a client moved down tries the better transport after upgradeInterval and moves back up', async () => {
  const buffered = new Set(['GET']);
  const server = new FakeServer();
  server.onEvents = (stream) => {
    if (!buffered.has(stream.init.method ?? 'GET')) return server.openStream(stream);
    server.streams.push(stream);
    return new Response(stream.body, { headers: { 'content-type': 'text/event-stream' } });
  };
  const client = makeClient(server, { upgradeInterval: 0.15 });
  const states = [];
  await client.ready();
  client.onstatechange = () => states.push(`${client.state} ${client.transport}`);
  assert.equal(client.transport, 'sse-post');
  server.stream.frame({ seq: 1, type: 'open', call: 1, channel: 3, code: HIT });
  server.stream.frame({ seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: ['before'] });
  await waitUntil(() => server.receivedOfType('result').length === 2);
  // still buffering at the first upgrade: back to sse-post, tried again later
  await waitUntil(() => server.streams.filter((stream) => stream.init.method === 'GET').length === 2, 2000);
  await waitUntil(() => client.transport === 'sse-post' && client.state === 'connected');
  const posted = server.stream;
  assert.equal(posted.cursor, 2, 'resumed from the cursor');
  buffered.clear(); // the path stops buffering
  await waitUntil(() => client.transport === 'sse-get' && server.stream.init.method === 'GET' && server.stream.cursor === 2, 2000);
  await waitUntil(() => client.state === 'connected');
  server.stream.frame({ seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: ['before'] }); // a replay
  server.stream.frame({ seq: 3, type: 'call', call: 3, channel: 3, name: 'hit', args: ['after'] });
  await waitUntil(() => server.receivedOfType('result').length === 3);
  assert.deepEqual(globalThis.testHits, ['before', 'after']);
  assert.equal(states.at(-1), 'connected sse-get');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(client.transport, 'sse-get', 'at the best transport, no more upgrades');
  assert.equal(server.stream.init.method, 'GET');
  assert.ok(!server.stream.closed);
});

test('a client moved down to long-poll moves back up too, and a forced transport never does', async () => {
  const buffered = new Set(['GET', 'POST']);
  const server = new FakeServer();
  server.onEvents = (stream) => {
    if (!buffered.has(stream.init.method ?? 'GET')) return server.openStream(stream);
    server.streams.push(stream);
    return new Response(stream.body, { headers: { 'content-type': 'text/event-stream' } });
  };
  const client = makeClient(server, { upgradeInterval: 0.1 });
  await client.ready();
  assert.equal(client.transport, 'poll');
  buffered.delete('POST');
  await waitUntil(() => client.transport === 'sse-post' && client.state === 'connected', 2000);
  buffered.clear();
  await waitUntil(() => client.transport === 'sse-get' && client.state === 'connected', 2000);

  const forcedServer = new FakeServer();
  const forced = makeClient(forcedServer, { transport: 'poll', upgradeInterval: 0.05 });
  await forced.ready();
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(forcedServer.streams.length, 0);
  assert.equal(forced.transport, 'poll');
});

test('a stream that ends after a retry: hint is resumed at once, without a state change', async () => {
  const server = new FakeServer();
  const client = makeClient(server);
  await client.ready();
  const states = [];
  client.onstatechange = () => states.push(client.state);
  server.stream.frame({ seq: 1, type: 'open', call: 1, channel: 3, code: HIT });
  await waitUntil(() => server.received.length === 1);
  server.stream.send('retry: 0\n\n');
  server.stream.end();
  await waitUntil(() => server.streams.length === 2);
  const resumed = server.stream;
  assert.equal(resumed.cursor, 1);
  assert.equal(resumed.session, 's1');
  resumed.frame({ seq: 2, type: 'call', call: 2, channel: 3, name: 'hit', args: [2] });
  await waitUntil(() => server.received.length === 2);
  assert.deepEqual(states, []);
  assert.deepEqual(client.delays, []);
  assert.equal(client.transport, 'sse-get');
});

for (const status of [404, 405, 501]) {
  test(`a ${status} answer to a stream request moves on to the next transport`, async () => {
    const server = new FakeServer();
    server.onEvents = (stream) =>
      stream.init.method === 'POST' ? server.openStream(stream) : jsonResponse(status, { message: 'no' });
    const client = makeClient(server);
    await client.ready();
    assert.equal(client.transport, 'sse-post');
    assert.match(client.errors[0], new RegExp(`\\(${status}\\).*trying sse-post`));
  });
}

test('a poll cut short by a proxy asks for shorter holds and is sent again at once', async () => {
  const server = new FakeServer();
  let clock = 0;
  const client = makeClient(server, { transport: 'poll', now: () => clock });
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  assert.equal(server.poll.hold, null);
  clock += 20000;
  server.poll.reply.resolve(htmlResponse(504));
  await waitUntil(() => server.polls.length === 3);
  assert.equal(server.poll.hold, '15');
  assert.match(client.lastError.message, /a proxy answered 504 with an HTML error page instead of application\/json/);
  assert.match(client.lastError.message, /polls now ask to be held at most 15 s/);
  assert.equal(client.state, 'connected');
  assert.deepEqual(client.delays, []);
  server.poll.answer();
  await waitUntil(() => server.polls.length === 4);
  assert.equal(client.lastError, null);
  assert.equal(server.poll.hold, '15');
  server.poll.reply.resolve(jsonResponse(503, { message: 'quick failure' }));
  await waitUntil(() => server.polls.length === 5);
  assert.equal(server.poll.hold, '15', 'a failure right away says nothing about the hold');
  assert.deepEqual(client.delays, [0]);
});

test('an HTML error page from a proxy is not mistaken for a login page', async () => {
  const server = new FakeServer();
  let failures = 1;
  server.onEvents = (stream) => (failures-- > 0 ? htmlResponse(502) : server.openStream(stream));
  const client = makeClient(server, { transport: 'sse-get' });
  await client.ready();
  assert.match(client.errors[0], /a proxy answered 502 with an HTML error page/);
  assert.doesNotMatch(client.errors[0], /login page/);
});

test('a page of the server origin sends its _xsrf cookie as X-XSRFToken, other origins do not', async () => {
  globalThis.location = new URL('http://kernel.test/lab');
  globalThis.document = { cookie: 'other=1; _xsrf=2|abc|def|123; last=x' };
  try {
    const server = new FakeServer();
    const client = makeClient(server);
    await client.ready();
    assert.equal(server.requests[0].init.headers['X-XSRFToken'], '2|abc|def|123');
    const elsewhere = new FakeServer();
    const other = new Client('http://127.0.0.1:8765', { fetch: elsewhere.fetch, token: 't' });
    clients.push(other);
    other.start();
    await other.ready();
    assert.equal(elsewhere.requests[0].init.headers['X-XSRFToken'], undefined);
  } finally {
    delete globalThis.location;
    delete globalThis.document;
  }
});

test('a whole answer whose Content-Length counts compressed bytes (a compressing proxy) is no cut', async () => {
  const server = new FakeServer();
  const client = makeClient(server, { transport: 'poll' });
  await client.ready();
  await waitUntil(() => server.polls.length === 2);
  server.onMessages = async (body) => {
    const text = await server.processMessages(body).text();
    // gzip makes a small JSON answer longer: the proxy's Content-Length exceeds the decoded bytes
    return new Response(text, { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(text.length + 20) } });
  };
  server.carryable = [{ seq: 1, type: 'open', call: 1, channel: 3, code: HIT }];
  const calling = client.request({ key: 3 }, 'call', { name: 'f', args: [] });
  await waitUntil(() => server.receivedOfType('result').length === 1);
  server.carryable.push({ seq: 2, type: 'result', call: 1, value: 'done' });
  client.request({ key: 3 }, 'echo', { args: [] }).catch(() => {}); // its POST's answer carries the result
  assert.equal(await calling, 'done');
  assert.ok(server.posts.every((post) => !post.url?.searchParams.has('bytes')));
  assert.doesNotMatch(client.lastError?.message ?? '', /cut/);
});
