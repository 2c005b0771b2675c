import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Inbox, Outbox, utf8Length } from '../../client_js/session.js';
import { randomInt, seededRandom } from './helpers.mjs';

test('push numbers frames from 1, sets seq and stores the JSON text', () => {
  const outbox = new Outbox();
  const frame = { type: 'echo', call: 1, channel: 2, args: ['é'] };
  assert.equal(outbox.push(frame), 1);
  assert.equal(frame.seq, 1);
  assert.equal(outbox.push({ type: 'result', call: 5, value: null }), 2);
  const [first] = outbox.batch();
  assert.deepEqual(JSON.parse(first), frame);
  assert.equal(outbox.size, 2);
  assert.equal(outbox.lastSeq, 2);
  assert.equal(outbox.bytes, outbox.batch().reduce((sum, text) => sum + utf8Length(text), 0));
});

test('utf8Length matches TextEncoder', () => {
  const encoder = new TextEncoder();
  for (const text of ['', 'abc', 'é', '€', '😀', 'a😀b€é', '\ud800x']) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

test('push refuses frames that are not JSON objects or are too long, without using a number', () => {
  const outbox = new Outbox({ maxFrameBytes: 100 });
  assert.throws(() => outbox.push({ type: 'result', value: 10n }), TypeError);
  assert.throws(() => outbox.push({ type: 'result', value: 'x'.repeat(100) }), RangeError);
  assert.equal(outbox.push({ type: 'result', call: 1, value: 1 }), 1);
});

test('ack drops frames cumulatively, ignores old acks and rejects acks beyond the last frame', () => {
  const outbox = new Outbox();
  for (let i = 0; i < 5; i += 1) outbox.push({ type: 'echo', call: i, args: [] });
  outbox.ack(3);
  assert.equal(outbox.size, 2);
  assert.equal(outbox.acked, 3);
  assert.deepEqual(outbox.batch().map((text) => JSON.parse(text).seq), [4, 5]);
  outbox.ack(1);
  assert.equal(outbox.acked, 3);
  assert.throws(() => outbox.ack(6), RangeError);
  assert.throws(() => outbox.ack(-1), RangeError);
  outbox.ack(5);
  assert.equal(outbox.size, 0);
  assert.equal(outbox.bytes, 0);
});

test('batch takes the oldest frames that fit, at least one', () => {
  const outbox = new Outbox();
  for (let i = 0; i < 4; i += 1) outbox.push({ type: 'echo', call: i, args: ['x'.repeat(50)] });
  const size = utf8Length(outbox.batch()[0]);
  assert.equal(outbox.batch(size - 1).length, 1);
  assert.equal(outbox.batch(2 * size).length, 1);
  assert.equal(outbox.batch(2 * size + 1).length, 2);
  assert.equal(outbox.batch(4 * size + 3).length, 4);
  assert.equal(new Outbox().batch(10).length, 0);
});

test('hasRoom follows the message and byte bounds', () => {
  const byCount = new Outbox({ maxMessages: 2 });
  byCount.push({ type: 'echo', args: [] });
  assert.ok(byCount.hasRoom());
  byCount.push({ type: 'echo', args: [] });
  assert.ok(!byCount.hasRoom());
  byCount.ack(1);
  assert.ok(byCount.hasRoom());

  const byBytes = new Outbox({ maxBytes: 100 });
  byBytes.push({ type: 'echo', args: ['x'.repeat(40)] });
  assert.ok(byBytes.hasRoom());
  byBytes.push({ type: 'echo', args: ['x'.repeat(40)] });
  assert.ok(!byBytes.hasRoom());
});

test('hasRoom counts the frame to come: the held bytes plus it stay within maxBytes', () => {
  const outbox = new Outbox({ maxBytes: 100 });
  assert.ok(outbox.hasRoom(10_000)); // an empty outbox takes one frame of any size
  outbox.push({ type: 'echo', args: ['x'.repeat(40)] });
  const held = outbox.bytes;
  assert.ok(outbox.hasRoom(100 - held));
  assert.ok(!outbox.hasRoom(100 - held + 1));
});

test('enqueue waits when the frame would pass maxBytes, not only once it is passed', async () => {
  const outbox = new Outbox({ maxBytes: 100 });
  await outbox.enqueue({ type: 'echo', args: ['x'.repeat(40)] });
  const second = outbox.enqueue({ type: 'echo', args: ['x'.repeat(40)] });
  assert.equal(outbox.waiting, 1);
  assert.ok(outbox.bytes <= 100);
  outbox.ack(1);
  assert.equal(await second, 2);
  assert.equal(outbox.waiting, 0);
});

test('enqueue waits for room, first come first served, and reset rejects the waiting ones', async () => {
  const outbox = new Outbox({ maxMessages: 2 });
  const order = [];
  const enqueued = [1, 2, 3, 4].map((n) =>
    outbox.enqueue({ type: 'echo', args: [n] }).then((seq) => order.push([n, seq])),
  );
  await Promise.resolve();
  assert.deepEqual(order, [[1, 1], [2, 2]]);
  assert.equal(outbox.waiting, 2);
  outbox.ack(1);
  await Promise.resolve();
  assert.deepEqual(order, [[1, 1], [2, 2], [3, 3]]);
  outbox.ack(3);
  await Promise.all(enqueued);
  assert.deepEqual(order, [[1, 1], [2, 2], [3, 3], [4, 4]]);

  outbox.push({ type: 'echo', args: [] });
  const waiting = outbox.enqueue({ type: 'echo', args: [] });
  const reason = new Error('gone');
  outbox.reset(reason);
  await assert.rejects(waiting, reason);
  assert.equal(outbox.lastSeq, 0);
  assert.equal(outbox.enqueue({ type: 'echo', args: [] }) instanceof Promise, true);
  assert.equal(outbox.lastSeq, 1);
});

test('enqueue rejects at once a frame that cannot be serialized', async () => {
  const outbox = new Outbox();
  await assert.rejects(outbox.enqueue({ type: 'result', value: 1n }), TypeError);
  assert.equal(outbox.lastSeq, 0);
});

test('inbox hands out frames in order, exactly once, holding early ones', () => {
  const inbox = new Inbox();
  assert.deepEqual(inbox.receive(2, 'b'), []);
  assert.deepEqual(inbox.receive(3, 'c'), []);
  assert.deepEqual(inbox.receive(3, 'c again'), []);
  assert.equal(inbox.held, 2);
  assert.deepEqual(inbox.receive(1, 'a'), ['a', 'b', 'c']);
  assert.equal(inbox.cursor, 3);
  assert.deepEqual(inbox.receive(2, 'b again'), []);
  assert.deepEqual(inbox.receive(4, 'd'), ['d']);
  inbox.reset();
  assert.equal(inbox.cursor, 0);
  assert.deepEqual(inbox.receive(1, 'new'), ['new']);
});

test('inbox refuses frames too far ahead and invalid numbers', () => {
  const inbox = new Inbox({ maxAhead: 3 });
  assert.deepEqual(inbox.receive(3, 'c'), []);
  assert.deepEqual(inbox.receive(4, 'd'), []); // cursor + 1 + maxAhead: the last one held
  assert.throws(() => inbox.receive(5, 'e'), /too far ahead of cursor 0 \(limit 3 ahead\)/);
  assert.throws(() => inbox.receive(0, 'zero'), RangeError);
  assert.throws(() => inbox.receive(1.5, 'half'), RangeError);
});

function lossyNetwork(random, texts) {
  const delivered = [];
  for (const text of texts) {
    const roll = random();
    if (roll < 0.2) continue;
    delivered.push(text);
    if (roll > 0.85) delivered.push(text);
  }
  for (let i = delivered.length - 1; i > 0; i -= 1) {
    if (random() < 0.3) {
      const j = randomInt(random, i + 1);
      [delivered[i], delivered[j]] = [delivered[j], delivered[i]];
    }
  }
  return delivered;
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`outbox and inbox deliver every frame exactly once in order over a lossy link (seed ${seed})`, () => {
    const random = seededRandom(seed);
    const total = 300;
    const outbox = new Outbox({ maxMessages: 40 });
    const inbox = new Inbox({ maxAhead: 100 });
    const received = [];
    let produced = 0;
    for (let round = 0; round < 10000 && received.length < total; round += 1) {
      while (produced < total && outbox.hasRoom() && random() < 0.7) {
        produced += 1;
        outbox.push({ type: 'echo', call: produced, args: [produced] });
      }
      const texts = outbox.batch(1 + randomInt(random, 2000));
      for (const text of lossyNetwork(random, texts)) {
        const frame = JSON.parse(text);
        received.push(...inbox.receive(frame.seq, frame));
      }
      if (random() < 0.7) outbox.ack(inbox.cursor);
    }
    assert.equal(received.length, total);
    assert.deepEqual(
      received.map((frame) => frame.call),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    outbox.ack(inbox.cursor);
    assert.equal(outbox.size, 0);
  });
}
