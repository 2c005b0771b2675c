import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Sender } from '../../client_js/sender.js';
import { jsonResponse } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';
import { fakeConnection, fakePath } from './module_fakes.mjs';

function fakeHost(conn) {
  const host = {
    live: true,
    failures: [],
    frames: [],
    active: () => host.live,
    state: () => 'connected',
    handleFailure: (failure) => host.failures.push(failure),
    onFrame: (frame) => host.frames.push(frame),
    path: fakePath(conn).path,
    postTimeout: 5,
  };
  return host;
}

/** Acknowledges every frame of a POST body, carrying `frames` back. */
function acknowledging(conn, frames = []) {
  return (url, init) => {
    const body = JSON.parse(init.body);
    return jsonResponse(200, { ack: conn.outbox.acked + body.messages.length, frames });
  };
}

test('the outbox goes in one POST with the cursor, and the answer acks and carries frames', async () => {
  let handler = null;
  const { conn, requests } = fakeConnection((url, init) => handler(url, init));
  handler = acknowledging(conn, [{ seq: 1, type: 'echo', call: 9, args: [] }]);
  conn.session = 's1';
  const host = fakeHost(conn);
  const sender = new Sender(conn, host);
  await sender.send({ type: 'call', call: 1, channel: 1, name: 'a', args: [] }, conn.epoch);
  await sender.send({ type: 'call', call: 2, channel: 1, name: 'b', args: [] }, conn.epoch);
  await waitUntil(() => conn.outbox.acked === 2);
  assert.equal(requests.length, 1);
  const body = JSON.parse(requests[0].init.body);
  assert.deepEqual([body.client, body.session, body.ack, body.carry], [conn.id, 's1', 0, true]);
  assert.deepEqual(body.messages.map((frame) => frame.seq), [1, 2]);
  assert.equal(requests[0].init.headers.Authorization, 'Bearer secret');
  assert.deepEqual(host.frames.map((frame) => frame.call), [9]);
  await sender.send({ type: 'call', call: 3 }, conn.epoch - 1); // of an older session: dropped
  assert.equal(conn.outbox.size, 0);
});

test('a POST refused for its size goes again in smaller bodies; a single frame that large resyncs', async () => {
  let handler = null;
  const { conn, requests } = fakeConnection((url, init) => handler(url, init));
  conn.session = 's1';
  conn.maxBody = 1 << 20;
  let refusals = 1;
  handler = (url, init) => {
    if (refusals-- > 0) return new Response('<html>413 Request Entity Too Large</html>', { status: 413, headers: { 'content-type': 'text/html' } });
    return acknowledging(conn)(url, init);
  };
  const host = fakeHost(conn);
  const sender = new Sender(conn, host);
  for (let call = 1; call <= 3; call += 1) await sender.send({ type: 'echo', call, args: ['x'.repeat(3000)] }, conn.epoch);
  await waitUntil(() => conn.outbox.acked === 3);
  const first = requests[0].init.body.length;
  assert.ok(conn.maxBody <= first / 2, `${conn.maxBody} after a ${first}-byte refusal`);
  assert.ok(requests.slice(1).every(({ init }) => init.body.length <= conn.maxBody));
  assert.equal(host.failures[0].action, 'retry');
  assert.equal(host.failures[0].status, 413);

  refusals = 1;
  conn.pathBodyCap = Infinity;
  conn.maxBody = 1 << 20;
  conn.outbox.maxFrameBytes = Infinity;
  host.handleFailure = (failure) => {
    host.failures.push(failure);
    host.live = false;
  };
  await sender.send({ type: 'echo', call: 4, args: ['y'.repeat(6000)] }, conn.epoch);
  await waitUntil(() => !host.live);
  assert.equal(host.failures.at(-1).action, 'resync');
  assert.match(host.failures.at(-1).message, /larger than the path to the kernel lets through/);
});

test('over GET, a batch too long for one URL goes in parts that each fit', async () => {
  let handler = null;
  const { conn, requests } = fakeConnection((url, init) => handler(url, init), { maxUrl: 1024 });
  conn.session = 's1';
  conn.sendMethod = 'get';
  const received = [];
  handler = (url) => {
    const part = url.searchParams.get('part');
    if (part === null) return jsonResponse(200, { ack: 1, frames: [] });
    received.push(part);
    const have = Number(url.searchParams.get('offset')) + part.length;
    if (have < Number(url.searchParams.get('total'))) return jsonResponse(200, { ack: 0, have });
    return jsonResponse(200, { ack: 1, frames: [] });
  };
  const host = fakeHost(conn);
  const sender = new Sender(conn, host);
  await sender.send({ type: 'echo', call: 1, args: ['z'.repeat(3000)] }, conn.epoch);
  await waitUntil(() => conn.outbox.acked === 1);
  assert.ok(requests.length >= 3, `${requests.length} requests`);
  assert.ok(requests.every(({ url }) => url.href.length <= 1024));
  const text = Buffer.from(received.join(''), 'base64url').toString('utf8');
  assert.deepEqual(JSON.parse(text)[0].args, ['z'.repeat(3000)]);
  assert.equal(new Set(requests.map(({ url }) => url.searchParams.get('batch'))).size, 1);
});

test('an ack beyond what was sent starts a new session; a bad one is retried', () => {
  const { conn } = fakeConnection(() => jsonResponse(200, {}));
  const sender = new Sender(conn, fakeHost(conn));
  assert.throws(() => sender.checkAck(5), (error) => error.action === 'resync');
  assert.throws(() => sender.checkAck(-1), (error) => error.action === 'retry');
  assert.doesNotThrow(() => sender.checkAck(0));
});
