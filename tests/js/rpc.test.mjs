import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Channel } from '../../client_js/channel.js';
import { KernelError, StateError } from '../../client_js/errors.js';
import { Rpc, errorFrame, evaluateFunction } from '../../client_js/rpc.js';
import { waitUntil } from './helpers.mjs';

/** A host that records what the calls send. */
function fakeHost() {
  const host = {
    client: { request: () => Promise.resolve(null) },
    sent: [],
    epochNow: 0,
    stopped: 0,
    refused: [],
    send: async (frame, epoch) => {
      if (epoch === host.epochNow) host.sent.push(frame);
    },
    epoch: () => host.epochNow,
    streams: {
      send: () => 41,
      receive: (key) => ({ stream: key }),
      refuse: (key) => host.refused.push(key),
    },
    stopSoon: () => {
      host.stopped += 1;
    },
  };
  return host;
}

test('a page call is numbered, sent, and settled by the kernel reply', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  const channel = new Channel(host.client, 3);
  const first = rpc.request(channel, 'call', { name: 'add', args: [1, 2] });
  const second = rpc.request(channel, 'call', { name: 'boom', args: [] });
  await waitUntil(() => host.sent.length === 2);
  assert.deepEqual(host.sent[0], { type: 'call', call: 1, channel: 3, name: 'add', args: [1, 2] });
  assert.equal(host.sent[1].call, 2);
  assert.equal(rpc.pendingCalls, 2);
  rpc.dispatch({ type: 'result', call: 1, value: 3 });
  rpc.dispatch({ type: 'error', call: 2, name: 'ValueError', message: 'no' });
  assert.equal(await first, 3);
  await assert.rejects(second, (error) => error instanceof KernelError && error.message.includes('no'));
  assert.equal(rpc.pendingCalls, 0);
});

test('bad arguments are refused before anything is sent', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  const channel = new Channel(host.client, 1);
  await assert.rejects(rpc.request(channel, 'call', { name: 5, args: [] }), TypeError);
  await assert.rejects(rpc.request(channel, 'call', { name: 'f', args: [() => 1] }), TypeError);
  assert.deepEqual(host.sent, []);
});

test('the kernel opens a channel, calls its handler, and gets an error for a missing one', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  rpc.dispatch({ type: 'open', call: 1, channel: 7, code: '(channel) => { channel.handler = { twice: (x) => 2 * x }; return "ready"; }' });
  await waitUntil(() => host.sent.length === 1);
  assert.deepEqual(host.sent[0], { type: 'result', call: 1, value: 'ready' });
  assert.equal(rpc.channels, 1);
  rpc.dispatch({ type: 'call', call: 2, channel: 7, name: 'twice', args: [21] });
  rpc.dispatch({ type: 'call', call: 3, channel: 8, name: 'twice', args: [1] });
  rpc.dispatch({ type: 'call', call: 4, channel: 7, name: 'toString', args: [] });
  await waitUntil(() => host.sent.length === 4);
  const byCall = new Map(host.sent.map((frame) => [frame.call, frame]));
  assert.deepEqual(byCall.get(2), { type: 'result', call: 2, value: 42 });
  assert.equal(byCall.get(3).type, 'error');
  assert.match(byCall.get(3).message, /no channel 8/);
  assert.deepEqual(byCall.get(4), {
    type: 'error', call: 4, name: 'AttributeError', message: "handler has no method 'toString'",
  });
  rpc.dispatch({ type: 'close', call: 5, channel: 7 });
  await waitUntil(() => host.sent.length === 5);
  assert.equal(rpc.channels, 0);
});

test('a reply nobody waits for has its stream refused; stop asks the client to stop', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  rpc.dispatch({ type: 'result', call: 99, value: null, stream: 5 });
  assert.deepEqual(host.refused, [5]);
  rpc.dispatch({ type: 'stop', call: 1 });
  await waitUntil(() => host.sent.length === 1);
  assert.equal(host.stopped, 1);
});

test('a reply of an older session is dropped; rejectPending fails every waiting call', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  let release;
  const slow = new Promise((resolve) => {
    release = resolve;
  });
  globalThis.slowForRpcTest = () => slow;
  rpc.dispatch({ type: 'open', call: 1, channel: 1, code: '() => globalThis.slowForRpcTest()' });
  host.epochNow = 1; // the session changed while the handler ran
  release('late');
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(host.sent, []);
  delete globalThis.slowForRpcTest;
  const waiting = rpc.request(new Channel(host.client, 1), 'echo', { args: [1] });
  rpc.rejectPending(new StateError('over'));
  await assert.rejects(waiting, StateError);
});

test('an error frame is clipped so that it always fits', () => {
  const frame = errorFrame(1, new Error('x'.repeat(40000)));
  assert.ok(frame.message.length < 17000);
  assert.match(frame.message, /more characters\)$/);
});

test('a missing page method is an AttributeError in the words the kernel uses', async () => {
  const host = fakeHost();
  const rpc = new Rpc(host);
  rpc.dispatch({ type: 'open', call: 1, channel: 2, code: '(channel) => null' });
  await waitUntil(() => host.sent.length === 1);
  rpc.dispatch({ type: 'call', call: 2, channel: 2, name: 'absent', args: [] });
  rpc.dispatch({ type: 'open', call: 3, channel: 4, code: '(channel) => { channel.handler = {}; }' });
  await waitUntil(() => host.sent.length === 3);
  rpc.dispatch({ type: 'call', call: 4, channel: 4, name: 'absent', args: [] });
  await waitUntil(() => host.sent.length === 4);
  const byCall = new Map(host.sent.map((frame) => [frame.call, frame]));
  assert.deepEqual(byCall.get(2), {
    type: 'error', call: 2, name: 'AttributeError',
    message: "the channel has no handler, so it has no method 'absent'",
  });
  assert.deepEqual(byCall.get(4), {
    type: 'error', call: 4, name: 'AttributeError', message: "handler has no method 'absent'",
  });
});

test('open code that is not a function is refused naming what it evaluated to', () => {
  const expected = {
    '42': 'a number (42)',
    '"text"': 'a string ("text")',
    'null': 'null',
    'void 0': 'undefined (the code has no value)',
    '[1]': 'an array',
    '({})': 'an object',
    'true': 'a boolean (true)',
  };
  for (const [code, what] of Object.entries(expected)) {
    assert.throws(() => evaluateFunction(code), (error) => error instanceof TypeError &&
      error.message === 'the code given to open() must evaluate to a function taking the ' +
        `channel, e.g. \`(channel) => { ... }\`, but it evaluated to ${what}`, code);
  }
  assert.equal(typeof evaluateFunction('(channel) => 1'), 'function');
});
