import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChunkQueue } from '../../client_js/chunk_queue.js';
import { randomInt, seededRandom } from './helpers.mjs';

const bytesOf = (...values) => Uint8Array.from(values);

test('a queue cuts contiguous bytes across pieces, at most the limit at a time', () => {
  const queue = new ChunkQueue();
  queue.push(0, bytesOf(1, 2, 3));
  queue.push(3, bytesOf(4, 5));
  queue.push(5, new Uint8Array(0));
  assert.equal(queue.bytes, 5);
  const first = queue.cut(4);
  assert.deepEqual([first.offset, [...first.bytes]], [0, [1, 2, 3, 4]]);
  assert.equal(queue.bytes, 1);
  const second = queue.cut(4);
  assert.deepEqual([second.offset, [...second.bytes]], [4, [5]]);
  assert.equal(queue.bytes, 0);
});

test('a piece put back goes out again in offset order, not joined across a gap', () => {
  const queue = new ChunkQueue();
  queue.push(10, bytesOf(7, 8));
  queue.putBack({ offset: 4, bytes: bytesOf(1, 2) });
  assert.equal(queue.bytes, 4);
  const before = queue.cut(100);
  assert.deepEqual([before.offset, [...before.bytes]], [4, [1, 2]]); // 6..9 missing: not joined
  const after = queue.cut(100);
  assert.deepEqual([after.offset, [...after.bytes]], [10, [7, 8]]);
});

test('random pushes and cuts hand out every byte once, in order', () => {
  const random = seededRandom(5);
  for (let round = 0; round < 50; round += 1) {
    const queue = new ChunkQueue();
    const expected = [];
    const seen = [];
    let offset = 0;
    for (let step = 0; step < 40; step += 1) {
      if (randomInt(random, 2) === 0 || queue.bytes === 0) {
        const piece = Uint8Array.from({ length: randomInt(random, 9) }, () => randomInt(random, 256));
        queue.push(offset, piece);
        offset += piece.length;
        expected.push(...piece);
      } else {
        const { offset: at, bytes } = queue.cut(1 + randomInt(random, 12));
        assert.equal(at, seen.length);
        seen.push(...bytes);
      }
    }
    while (queue.bytes > 0) seen.push(...queue.cut(7).bytes);
    assert.deepEqual(seen, expected);
  }
});
