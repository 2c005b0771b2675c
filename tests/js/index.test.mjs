import assert from 'node:assert/strict';
import { test as nodeTest } from 'node:test';

import { Channel } from '../../client_js/channel.js';
import { Client } from '../../client_js/client.js';
import { KernelError, StateError } from '../../client_js/errors.js';
import { jchannel, splitToken, start, stop } from '../../client_js/index.js';
import { FakeServer, jsonResponse } from './fake_server.mjs';

const test = (name, body) => nodeTest(name, { timeout: 2000 }, body);

test('the module installs the global jchannel API', () => {
  assert.equal(globalThis.jchannel, jchannel);
  assert.deepEqual(Object.keys(jchannel).sort(), [
    'Channel',
    'Client',
    'KernelError',
    'MetaGenerator',
    'ProgressFeed',
    'StateError',
    'StreamSource',
    'start',
    'stop',
  ]);
  assert.equal(jchannel.Channel, Channel);
  assert.equal(jchannel.KernelError, KernelError);
  assert.equal(jchannel.StateError, StateError);
});

test('start connects one client per URL and stop forgets it', async () => {
  const server = new FakeServer();
  const url = 'http://one.test/kernel';
  const client = await start(`${url}/`, { token: 't', fetch: server.fetch });
  assert.ok(client instanceof Client);
  assert.equal(client.state, 'connected');
  assert.equal(await start(url, { token: 'ignored', fetch: server.fetch }), client);
  assert.equal(server.streams.length, 1);
  stop(`${url}/`);
  assert.equal(client.state, 'stopped');
  assert.equal(server.releases.length, 1);
  const fresh = await start(url, { token: 't', fetch: server.fetch });
  assert.notEqual(fresh, client);
  stop(url);
  stop(url);
});

test('start rejects when the client fails and a later start tries again', async () => {
  const server = new FakeServer();
  server.onEvents = () => jsonResponse(401, { error: 'unauthorized', message: 'bad token' });
  const url = 'http://two.test';
  await assert.rejects(start(url, { token: 'wrong', fetch: server.fetch }), /401/);
  server.onEvents = (stream) => server.openStream(stream);
  const client = await start(url, { token: 'right', fetch: server.fetch });
  assert.equal(client.state, 'connected');
  stop(url);
});

test('errors carry their names and fields', () => {
  const error = new KernelError('ValueError', 'bad value');
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'KernelError');
  assert.equal(error.message, 'ValueError: bad value');
  assert.deepEqual([error.type, error.detail], ['ValueError', 'bad value']);
  const state = new StateError('closed');
  assert.ok(state instanceof Error);
  assert.equal(state.name, 'StateError');
  assert.equal(state.message, 'closed');
});

test("jupyter-jchannel's forms: start(url?token=T, maxMsgSize) and an awaitable stop", async () => {
  const server = new FakeServer();
  const realFetch = globalThis.fetch;
  globalThis.fetch = server.fetch; // the predecessor's form passes no options at all
  try {
    const client = await start('http://three.test/kernel/page?token=from-url', 4194304);
    assert.equal(client.url, 'http://three.test/kernel');
    assert.equal(client.state, 'connected');
    assert.equal(server.streams[0].init.headers.Authorization, 'Bearer from-url');
    assert.equal(await start('http://three.test/kernel?token=from-url', 4194304), client);
    const stopping = stop('http://three.test/kernel?token=from-url');
    assert.ok(stopping instanceof Promise);
    assert.equal(await stopping, undefined);
    assert.equal(client.state, 'stopped');
    assert.ok((await stop('http://never.test')) === undefined);
  } finally {
    globalThis.fetch = realFetch;
  }
});

test('splitToken takes the token out of a URL and keeps the rest', () => {
  assert.deepEqual(splitToken('http://h:1/p/'), { base: 'http://h:1/p', token: undefined });
  assert.deepEqual(splitToken('http://h:1/p/page?token=abc'), { base: 'http://h:1/p', token: 'abc' });
  assert.deepEqual(splitToken('/proxy/8765?x=1&token=abc'), { base: '/proxy/8765?x=1', token: 'abc' });
  assert.deepEqual(splitToken('http://h:1/page?x=1'), { base: 'http://h:1/page?x=1', token: undefined });
});
