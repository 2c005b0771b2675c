import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createParser } from '../../client_js/sse_parser.js';
import { randomInt, seededRandom } from './helpers.mjs';

const STREAM =
  '\uFEFF: leading comment\r\n' +
  'retry: 2500\n' +
  'retry: 12x\n' +
  'event: hello\r' +
  'id: 7\r\n' +
  'data: {"session":"s"}\n' +
  '\n' +
  ':ping\n' +
  'id: 8\n' +
  'data:line one\r\n' +
  'data:  two spaces\r' +
  'data\n' +
  '\r\n' +
  'id: 9\n' +
  'event: ignored\n' +
  '\n' +
  'data: after\n' +
  'unknown: field\n' +
  'id: bad\0id\n' +
  '\r' +
  'id\n' +
  'data: last\n' +
  '\n' +
  'data: incomplete\n';

const EXPECTED = {
  events: [
    { type: 'hello', data: '{"session":"s"}', id: '7' },
    { type: 'message', data: 'line one\n two spaces\n', id: '8' },
    { type: 'message', data: 'after', id: '9' },
    { type: 'message', data: 'last', id: '' },
  ],
  comments: ['leading comment', 'ping'],
  retries: [2500],
};

function collect(chunks, options) {
  const seen = { events: [], comments: [], retries: [] };
  const parser = createParser(
    {
      onEvent: (event) => seen.events.push(event),
      onComment: (text) => seen.comments.push(text),
      onRetry: (ms) => seen.retries.push(ms),
    },
    options,
  );
  for (const chunk of chunks) parser.feed(chunk);
  return seen;
}

function randomChunks(text, random, maxChunk) {
  const chunks = [];
  for (let start = 0; start < text.length; ) {
    const size = randomInt(random, maxChunk + 1);
    chunks.push(text.slice(start, start + size));
    start += size;
  }
  return chunks;
}

test('parses the reference stream in one chunk', () => {
  assert.deepEqual(collect([STREAM]), EXPECTED);
});

test('gives the same result for every split point', () => {
  for (let i = 0; i <= STREAM.length; i += 1) {
    assert.deepEqual(collect([STREAM.slice(0, i), STREAM.slice(i)]), EXPECTED, `split at ${i}`);
  }
});

test('gives the same result one character at a time, with empty chunks between', () => {
  const chunks = [...STREAM].flatMap((char) => [char, '']);
  assert.deepEqual(collect(chunks), EXPECTED);
});

test('a \\r ending one chunk and a \\n starting the next are one line end', () => {
  const seen = collect(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
  assert.deepEqual(seen.events, [{ type: 'message', data: 'a\nb', id: '' }]);
});

test('a BOM is ignored only at the very start', () => {
  const seen = collect(['\uFEFFdata: x\n\n\uFEFFdata: y\n\n']);
  assert.deepEqual(
    seen.events.map((event) => event.data),
    ['x'],
  );
});

test('reset forgets a partial event and the last id', () => {
  const events = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  parser.feed('id: 3\ndata: partial\nda');
  parser.reset();
  parser.feed('\uFEFFdata: fresh\n\n');
  assert.deepEqual(events, [{ type: 'message', data: 'fresh', id: '' }]);
});

test('random garbage never throws and chunking never changes the result', () => {
  const random = seededRandom(42);
  const pieces = ['a', 'b', ':', ' ', '\r', '\n', '\r\n', 'data', 'event', 'id', 'retry', '\0', '\uFEFF', '7'];
  for (let round = 0; round < 200; round += 1) {
    let text = '';
    for (let i = 0; i < 300; i += 1) text += pieces[randomInt(random, pieces.length)];
    const whole = collect([text]);
    assert.deepEqual(collect(randomChunks(text, random, 7)), whole);
  }
});

test('throws when the unparsed text exceeds maxBuffer', () => {
  const options = { maxBuffer: 100 };
  assert.throws(() => collect(['x'.repeat(101)], options), /more than 100 characters/);
  assert.throws(() => collect(['data: ' + 'x'.repeat(60) + '\n', 'data: ' + 'x'.repeat(60)], options));
  const many = `data: ${'x'.repeat(60)}\n\n`.repeat(1000);
  assert.equal(collect(randomChunks(many, seededRandom(1), 50), options).events.length, 1000);
});
