import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Receiver } from '../../client_js/receiver.js';
import { Sender } from '../../client_js/sender.js';
import { jsonResponse } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';
import { fakeConnection, fakePath } from './module_fakes.mjs';

/** A receiver of `candidates` against `handler`, with a host that records what it is told. */
function receiverOf(handler, candidates) {
  const { conn, requests, stop } = fakeConnection(handler);
  const host = {
    live: true,
    clientState: 'connecting',
    error: null,
    states: [],
    failures: [],
    frames: [],
    active: () => host.live,
    state: () => host.clientState,
    lastError: () => host.error,
    note: (error) => {
      host.error = error;
    },
    setState: (state, error) => {
      if (error !== undefined) host.error = error;
      host.clientState = state;
      host.states.push(state);
    },
    handleFailure: (failure) => {
      host.failures.push(failure);
      if (failure.action === 'stop') host.live = false;
    },
    whileHidden: async () => {},
    onFrame: (frame) => {
      host.frames.push(frame);
      conn.inbox.receive(frame.seq, frame);
    },
    path: fakePath(conn).path,
    worked: () => {},
    forget: () => {},
  };
  host.sender = new Sender(conn, { ...host, postTimeout: 5 });
  const receiver = new Receiver(conn, host, {
    candidates, heartbeat: 5, heartbeatGrace: 2, firstEventDeadline: 1, upgradeInterval: 300,
  });
  const end = () => {
    host.live = false;
    stop.abort();
    receiver.stop(new Error('the test ended'));
  };
  return { conn, requests, host, receiver, end };
}

test('polls take the hello and the frames, and the next poll acknowledges with its cursor', async () => {
  let polls = 0;
  const { conn, requests, host, receiver, end } = receiverOf((url) => {
    polls += 1;
    if (polls === 1) return jsonResponse(200, { session: 's1', ack: 0, hold: 1, frames: [{ seq: 1, type: 'echo', call: 1, args: [] }] });
    return new Promise(() => {}); // held
  }, ['poll']);
  receiver.run();
  await waitUntil(() => requests.length === 2);
  assert.equal(conn.session, 's1');
  assert.deepEqual(host.states, ['connected']);
  assert.deepEqual(host.frames.map((frame) => frame.seq), [1]);
  assert.equal(requests[1].url.pathname, '/poll');
  assert.equal(requests[1].url.searchParams.get('cursor'), '1');
  assert.equal(requests[1].url.searchParams.get('session'), 's1');
  end();
});

test('a transport not served (404) moves on to the next one', async () => {
  const { requests, host, receiver, end } = receiverOf((url) => {
    if (url.pathname === '/events') return new Response('Not Found', { status: 404 });
    return new Promise(() => {});
  }, ['sse-get', 'poll']);
  receiver.run();
  await waitUntil(() => requests.some(({ url }) => url.pathname === '/poll'));
  assert.equal(receiver.transport, 'poll');
  assert.equal(host.error.action, 'advance');
  assert.match(host.error.message, /not served here \(404\): Not Found; trying poll/);
  end();
});

test('a refused token stops receiving; a 502 with no body is checked against /status', async () => {
  const refused = receiverOf(() => jsonResponse(401, { error: 'unauthorized', message: 'bad token' }), ['poll']);
  refused.receiver.run();
  await waitUntil(() => !refused.host.live);
  assert.equal(refused.host.failures[0].action, 'stop');
  refused.end();

  let asked = 0;
  const gateway = receiverOf((url) => {
    if (url.pathname === '/status') {
      asked += 1;
      return jsonResponse(200, { connected: false, session: null });
    }
    return new Response('', { status: 502 });
  }, ['poll']);
  gateway.receiver.run();
  await waitUntil(() => gateway.host.failures.length >= 1);
  assert.ok(asked >= 1);
  assert.match(gateway.host.failures[0].message, /the path hid the kernel server's answer while \/status answers/);
  gateway.end();
});
