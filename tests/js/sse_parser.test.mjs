import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createParser } from '../../client_js/sse_parser.js';
import { parseChunks, randomInt, randomSplit, seededRandom } from './helpers.mjs';

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

test('parses the reference stream in one chunk', () => {
  assert.deepEqual(parseChunks([STREAM]), EXPECTED);
});

test('gives the same result for every split point', () => {
  for (let i = 0; i <= STREAM.length; i += 1) {
    assert.deepEqual(parseChunks([STREAM.slice(0, i), STREAM.slice(i)]), EXPECTED, `split at ${i}`);
  }
});

test('gives the same result one character at a time, with empty chunks between', () => {
  const chunks = [...STREAM].flatMap((char) => [char, '']);
  assert.deepEqual(parseChunks(chunks), EXPECTED);
});

test('a \\r ending one chunk and a \\n starting the next are one line end', () => {
  const seen = parseChunks(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
  assert.deepEqual(seen.events, [{ type: 'message', data: 'a\nb', id: '' }]);
});

test('a BOM is ignored only at the very start', () => {
  const seen = parseChunks(['\uFEFFdata: x\n\n\uFEFFdata: y\n\n']);
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
    const whole = parseChunks([text]);
    assert.deepEqual(parseChunks(randomSplit(text, random, 7)), whole);
  }
});

test('throws when the unparsed text exceeds maxBuffer', () => {
  const options = { maxBuffer: 100 };
  assert.throws(() => parseChunks(['x'.repeat(101)], options), /more than 100 characters/);
  assert.throws(() => parseChunks(['data: ' + 'x'.repeat(60) + '\n', 'data: ' + 'x'.repeat(60)], options));
  const many = `data: ${'x'.repeat(60)}\n\n`.repeat(1000);
  assert.equal(parseChunks(randomSplit(many, seededRandom(1), 50), options).events.length, 1000);
});
