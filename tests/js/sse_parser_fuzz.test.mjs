import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createParser } from '../../client_js/sse_parser.js';
import { parseChunks, randomInt, randomSplit, seededRandom } from './helpers.mjs';

/**
 * A whole-text parser written straight from the WHATWG event-stream rules, as the oracle:
 * it sees the complete text at once, so chunking cannot matter to it.
 */
function referenceParse(text) {
  const seen = { events: [], comments: [], retries: [] };
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = body.split(/\r\n|\r|\n/);
  lines.pop(); // the text after the last line end is not a complete line
  let type = '';
  let data = [];
  let id = '';
  for (const line of lines) {
    if (line === '') {
      if (data.length > 0) seen.events.push({ type: type || 'message', data: data.join('\n'), id });
      type = '';
      data = [];
      continue;
    }
    if (line.startsWith(':')) {
      seen.comments.push(line.slice(1).replace(/^ /, ''));
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) seen.retries.push(Number(value));
  }
  return seen;
}

const PIECES = [
  'data', 'data:', 'data: ', 'event:', 'event: hello', 'id:', 'id: 7', 'retry:', 'retry: 99',
  ':', ': ping', ' ', '\r', '\n', '\r\n', '\n\n', '\0', '\uFEFF', 'x', '{"seq":1}', 'é', '😀',
  '\u2028', '\t', 'retry: 1e3', 'dat', 'a:', '::',
];

function randomCodePoint(random) {
  const kind = randomInt(random, 5);
  if (kind === 0) return String.fromCharCode(randomInt(random, 32)); // controls, NUL, CR, LF
  if (kind === 1) return String.fromCharCode(0xd800 + randomInt(random, 0x800)); // lone surrogates
  if (kind === 2) return String.fromCodePoint(randomInt(random, 0x110000 - 0xe000) + 0xe000);
  return String.fromCharCode(32 + randomInt(random, 96));
}

function randomGarbage(random, length) {
  let text = '';
  while (text.length < length) {
    text += randomInt(random, 2) === 0 ? PIECES[randomInt(random, PIECES.length)] : randomCodePoint(random);
  }
  return text;
}

test('random garbage split at random points parses as the reference parser reads it whole', () => {
  const random = seededRandom(7);
  for (let round = 0; round < 400; round += 1) {
    const text = randomGarbage(random, 1 + randomInt(random, 1500));
    const expected = referenceParse(text);
    assert.deepEqual(parseChunks([text]), expected, `round ${round}, whole`);
    assert.deepEqual(parseChunks(randomSplit(text, random, 1 + randomInt(random, 40))), expected,
      `round ${round}, split`);
  }
});

test('random garbage split at every point of a short text parses the same', () => {
  const random = seededRandom(11);
  for (let round = 0; round < 60; round += 1) {
    const text = randomGarbage(random, 60);
    const expected = referenceParse(text);
    for (let i = 0; i <= text.length; i += 1) {
      for (const j of [i, Math.min(text.length, i + 1), Math.min(text.length, i + 2)]) {
        const chunks = [text.slice(0, i), text.slice(i, j), text.slice(j)];
        assert.deepEqual(parseChunks(chunks), expected, `round ${round}, splits ${i} and ${j}`);
      }
    }
  }
});

function serverStream(random, frames) {
  const hello = JSON.stringify({ session: 's', cursor: 0, ack: 0, heartbeat: 15, max_body: 1 << 20 });
  let text = `event: hello\nid: 0\ndata: ${hello}\n\n:${' '.repeat(2048)}\n\n`;
  frames.forEach((frame, index) => {
    text += `id: ${index + 1}\ndata: ${JSON.stringify(frame)}\n\n`;
    if (randomInt(random, 4) === 0) text += ': ping\n\n';
  });
  return text;
}

function randomValue(random, depth = 0) {
  const kind = randomInt(random, depth > 2 ? 4 : 6);
  if (kind === 0) return randomInt(random, 2 ** 31) - 2 ** 30;
  if (kind === 1) return randomGarbage(random, randomInt(random, 30));
  if (kind === 2) return [null, true, false][randomInt(random, 3)];
  if (kind === 3) return random() * 1e6;
  if (kind === 4) return Array.from({ length: randomInt(random, 4) }, () => randomValue(random, depth + 1));
  return Object.fromEntries(
    Array.from({ length: randomInt(random, 4) }, (_, i) => [`k${i}\n`, randomValue(random, depth + 1)]),
  );
}

test('a server stream cut into random byte chunks decodes to the frames that were sent', () => {
  const random = seededRandom(3);
  for (let round = 0; round < 100; round += 1) {
    const frames = Array.from({ length: 1 + randomInt(random, 30) }, (_, i) => ({
      seq: i + 1, type: 'result', call: i + 1, value: randomValue(random),
    }));
    const bytes = new TextEncoder().encode(serverStream(random, frames));
    const decoder = new TextDecoder();
    const chunks = randomSplit(bytes, random, 1 + randomInt(random, 64)).map((chunk) =>
      decoder.decode(chunk, { stream: true }),
    );
    const seen = parseChunks(chunks);
    assert.equal(seen.events[0].type, 'hello');
    const got = seen.events.slice(1);
    assert.deepEqual(got.map((event) => event.id), frames.map((_, i) => String(i + 1)));
    assert.deepEqual(got.map((event) => JSON.parse(event.data)), frames);
    assert.ok(seen.comments.every((comment) => comment.trim() === '' || comment === 'ping'));
  }
});

test('garbage past maxBuffer throws, and the parser works again after reset', () => {
  const random = seededRandom(5);
  for (let round = 0; round < 50; round += 1) {
    const maxBuffer = 50 + randomInt(random, 500);
    const events = [];
    const parser = createParser({ onEvent: (event) => events.push(event) }, { maxBuffer });
    const line = 'data: ' + 'z'.repeat(maxBuffer);
    assert.throws(() => {
      for (const chunk of randomSplit(line, random, 1 + randomInt(random, 100))) parser.feed(chunk);
    }, new RegExp(`more than ${maxBuffer} characters`));
    parser.reset();
    parser.feed('data: {"seq":1}\n\n');
    assert.deepEqual(events, [{ type: 'message', data: '{"seq":1}', id: '' }]);
  }
});

test('events and lines under maxBuffer never throw, however long the stream', () => {
  const random = seededRandom(9);
  const maxBuffer = 200;
  const text = Array.from({ length: 3000 }, (_, i) => {
    const data = randomGarbage(random, randomInt(random, 60)).replace(/[\r\n]/g, '');
    return `id: ${i}\ndata: ${data}\n\n`;
  }).join('');
  const seen = parseChunks(randomSplit(text, random, 97), { maxBuffer });
  assert.deepEqual(seen, referenceParse(text));
});
