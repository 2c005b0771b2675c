import assert from 'node:assert/strict';
import { afterEach, test as nodeTest } from 'node:test';

import { Client } from '../../client_js/client.js';
import { DEFAULT_REMEMBER_SECONDS, TransportMemory, memoryKey } from '../../client_js/transport_memory.js';
import { FakeServer } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';

const URL_BASE = 'http://kernel.test/user/me/proxy/8765';
const test = (name, body) => nodeTest(name, { timeout: 3000 }, body);
const clients = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.stop();
});

/** A Storage kept in a Map, like the tab's sessionStorage. */
class MapStorage {
  items = new Map();

  getItem(key) {
    return this.items.get(key) ?? null;
  }

  setItem(key, value) {
    this.items.set(key, String(value));
  }

  removeItem(key) {
    this.items.delete(key);
  }
}

function memoryOf(storage, clock, seconds = DEFAULT_REMEMBER_SECONDS, url = URL_BASE) {
  return new TransportMemory({ storage, url, now: () => clock.now, seconds });
}

test('a memory is kept by origin and path, and given back until its lifetime has passed', () => {
  assert.equal(DEFAULT_REMEMBER_SECONDS, 600);
  const storage = new MapStorage();
  const clock = { now: 1_000_000 };
  const memory = memoryOf(storage, clock);
  assert.equal(memory.recall(), null);
  memory.remember('poll', 'get');
  assert.deepEqual(memory.recall(), { transport: 'poll', sendMethod: 'get', at: 1_000_000 });
  assert.deepEqual(memoryOf(storage, clock, 600, `${URL_BASE}/`).recall()?.transport, 'poll');
  assert.equal(memoryOf(storage, clock, 600, 'http://kernel.test/user/other/proxy/8765').recall(), null);
  assert.equal(memoryKey(`${URL_BASE}/`), URL_BASE);
  clock.now += 599_999;
  assert.equal(memory.recall()?.transport, 'poll');
  clock.now += 1;
  assert.equal(memory.recall(), null, 'past its lifetime the page probes again');
  assert.equal(storage.items.size, 0, 'and the stale memory is dropped');
});

test('remembering the same again keeps its time; something else starts a new one', () => {
  const storage = new MapStorage();
  const clock = { now: 5000 };
  const memory = memoryOf(storage, clock);
  memory.remember('sse-post', 'post');
  clock.now = 9000;
  memory.remember('sse-post', 'post');
  assert.equal(memory.recall().at, 5000);
  memory.remember('poll', 'post');
  assert.deepEqual(memory.recall(), { transport: 'poll', sendMethod: 'post', at: 9000 });
  memory.forget();
  assert.equal(memory.recall(), null);
});

test('unreadable memories, refusing storage and a lifetime of 0 keep nothing and throw nothing', () => {
  const storage = new MapStorage();
  const clock = { now: 0 };
  const memory = memoryOf(storage, clock);
  memory.remember('poll', 'post');
  const [key] = storage.items.keys();
  for (const junk of ['{', '{"transport":"poll","sendMethod":"put","at":0}', 'null', '{"transport":"poll","sendMethod":"get","at":10}']) {
    storage.items.set(key, junk);
    assert.equal(memory.recall(), null, junk);
  }
  const refusing = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('full'); }, removeItem: () => { throw new Error('denied'); } };
  const quiet = memoryOf(refusing, clock);
  quiet.remember('poll', 'get');
  assert.equal(quiet.recall(), null);
  quiet.forget();
  const off = memoryOf(storage, clock, 0);
  off.remember('poll', 'get');
  assert.equal(off.recall(), null);
  assert.throws(() => memoryOf(storage, clock, -1), /rememberTransport must be a number of seconds >= 0/);
});

function makeClient(server, storage, options = {}) {
  const client = new Client(URL_BASE, {
    token: 'secret',
    fetch: server.fetch,
    random: () => 0.5,
    sleep: () => new Promise((resolve) => setTimeout(resolve, 1)),
    firstEventDeadline: 0.02,
    storage,
    ...options,
  });
  clients.push(client);
  client.start();
  return client;
}

/** A server behind a path that holds every event stream (no byte passes). */
function bufferingServer() {
  const server = new FakeServer();
  server.onEvents = (stream) => {
    server.streams.push(stream);
    return new Response(stream.body, { headers: { 'content-type': 'text/event-stream' } });
  };
  return server;
}

test('a client that probed down to poll remembers it; the next one polls at once', async () => {
  const storage = new MapStorage();
  const first = bufferingServer();
  const probing = makeClient(first, storage);
  await waitUntil(() => probing.transport === 'poll' && probing.state === 'connected', 2000);
  assert.equal(first.streams.length >= 2, true, 'the first client probed both event streams');
  probing.stop();
  const saved = JSON.parse([...storage.items.values()][0]);
  assert.deepEqual([saved.transport, saved.sendMethod], ['poll', 'post']);

  const second = bufferingServer();
  const reloaded = makeClient(second, storage);
  await reloaded.ready();
  assert.equal(reloaded.transport, 'poll');
  assert.equal(second.streams.length, 0, 'no event stream was tried');
  assert.equal(second.requests.filter((r) => r.url.pathname === '/status').length, 0, 'no probe of /status');
});

test('a remembered GET send method is used from the start; a given sendMethod wins over it', async () => {
  const storage = new MapStorage();
  memoryOf(storage, { now: Date.now() }).remember('poll', 'get');
  const server = new FakeServer();
  const client = makeClient(server, storage);
  await client.ready();
  assert.equal(client.sendMethod, 'get');
  assert.equal(client.transport, 'poll');
  const forced = makeClient(new FakeServer(), storage, { sendMethod: 'post' });
  await forced.ready();
  assert.equal(forced.sendMethod, 'post');
  assert.equal(forced.transport, 'poll');
});

test('a remembered transport that fails is forgotten and the probe starts from the best one', async () => {
  const storage = new MapStorage();
  memoryOf(storage, { now: Date.now() }).remember('sse-post', 'post');
  const server = new FakeServer();
  server.onEvents = (stream) => {
    if (stream.init.method === 'POST') return new Response('Method Not Allowed', { status: 405 });
    return server.openStream(stream);
  };
  const client = makeClient(server, storage);
  await waitUntil(() => client.state === 'connected', 2000);
  assert.equal(client.transport, 'sse-get');
  const methods = server.streams.map((stream) => stream.init.method);
  assert.deepEqual(methods, ['GET']);
  const saved = JSON.parse([...storage.items.values()][0]);
  assert.equal(saved.transport, 'sse-get', 'what works now is remembered instead');
});

test('an old memory is not used, and a forced transport neither reads nor writes it', async () => {
  const storage = new MapStorage();
  memoryOf(storage, { now: Date.now() - 601_000 }).remember('poll', 'post');
  const server = new FakeServer();
  const client = makeClient(server, storage);
  await client.ready();
  assert.equal(client.transport, 'sse-get');
  assert.equal(JSON.parse([...storage.items.values()][0]).transport, 'sse-get');
  const other = new MapStorage();
  memoryOf(other, { now: Date.now() }).remember('sse-post', 'post');
  const forced = makeClient(new FakeServer(), other, { transport: 'sse-get' });
  await forced.ready();
  assert.equal(forced.transport, 'sse-get');
  assert.equal(JSON.parse([...other.items.values()][0]).transport, 'sse-post');
  const off = makeClient(new FakeServer(), new MapStorage(), { rememberTransport: 0 });
  await off.ready();
  assert.equal(off.transport, 'sse-get');
});
