import assert from 'node:assert/strict';
import { test as nodeTest } from 'node:test';

import { KernelError, StateError } from '../../client_js/errors.js';
import { MetaGenerator, ProgressFeed, StreamSource } from '../../client_js/meta_generator.js';
import { StreamHub } from '../../client_js/streams.js';
import { randomInt, seededRandom, waitUntil } from './helpers.mjs';

const test = (name, body) => nodeTest(name, { timeout: 10000 }, body);
const BASE = 'http://kernel.test';

function bytesOf(size, seed) {
  const random = seededRandom(seed);
  return Uint8Array.from({ length: size }, () => randomInt(random, 256));
}

async function* chunksOf(bytes, sizes) {
  let at = 0;
  for (let i = 0; at < bytes.length; i += 1) {
    const size = sizes[i % sizes.length];
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

function jsonAnswer(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/**
 * The kernel's stream endpoints, in memory: chunk POSTs with a body cap and lost requests or
 * answers, and GETs whose responses are cut or end early.
 */
class FakeKernel {
  constructor({ seed = 1, bodyCap = Infinity, chunkSize = 4096, lossRate = 0, cutFirst = 0 } = {}) {
    this.random = seededRandom(seed);
    this.bodyCap = bodyCap;
    this.chunkSize = chunkSize;
    this.lossRate = lossRate;
    this.cutFirst = cutFirst;
    /** @type {Map<number, {bytes: Map<number, number>, end: number | null, error: object | null}>} */
    this.uploads = new Map();
    this.downloads = new Map();
    this.refused = 0;
    this.posts = 0;
    this.gets = 0;
    this.acks = [];
    this.cancelled = [];
  }

  link() {
    return {
      fetch: (resource, init) => this.fetch(new URL(resource), init),
      url: BASE,
      headers: (extra) => ({ Authorization: 'Bearer t', ...extra }),
      session: () => 's1',
      sleep: () => new Promise((resolve) => setTimeout(resolve, 1)),
      random: () => 0.5,
    };
  }

  upload(key) {
    if (!this.uploads.has(key)) this.uploads.set(key, { bytes: new Map(), end: null, error: null });
    return this.uploads.get(key);
  }

  assembled(key) {
    const { bytes, end } = this.upload(key);
    return Uint8Array.from({ length: end }, (_, i) => bytes.get(i));
  }

  async fetch(url, init) {
    assert.equal(url.searchParams.get('session'), 's1');
    const parts = url.pathname.split('/');
    const key = Number(parts[3]);
    if (parts[2] === 'up' && parts.length === 4) return this.#chunk(key, init);
    if (parts[2] === 'up') {
      this.upload(key).error = JSON.parse(init.body);
      return jsonAnswer(200, { state: 'open' });
    }
    if (parts[4] === 'ack') {
      this.acks.push([key, Number(init.headers['Stream-Offset']), init.headers['Stream-End']]);
      return jsonAnswer(200, {});
    }
    if (parts[4] === 'cancel') {
      this.cancelled.push(key);
      return jsonAnswer(200, { cancelled: true });
    }
    return this.#download(key, Number(url.searchParams.get('offset')), init);
  }

  #chunk(key, init) {
    this.posts += 1;
    const body = init.body;
    if (body.length > this.bodyCap) {
      this.refused += 1;
      return new Response('<html>413 Request Entity Too Large</html>', {
        status: 413, headers: { 'content-type': 'text/html' },
      });
    }
    if (this.random() < this.lossRate) throw new TypeError('Failed to fetch (request lost)');
    const stream = this.upload(key);
    const offset = Number(init.headers['Stream-Offset']);
    for (let i = 0; i < body.length; i += 1) {
      const previous = stream.bytes.get(offset + i);
      if (previous !== undefined) assert.equal(previous, body[i], 'a byte changed when sent again');
      stream.bytes.set(offset + i, body[i]);
    }
    if (stream.end !== null) {
      assert.ok(offset + body.length <= stream.end, 'bytes were sent after the end of the stream');
    }
    if (init.headers['Stream-End'] === '1') {
      const end = offset + body.length;
      assert.ok(stream.end === null || stream.end === end, `the end moved from ${stream.end} to ${end}`);
      stream.end = end;
    }
    if (this.random() < this.lossRate) throw new TypeError('Failed to fetch (answer lost)');
    return jsonAnswer(200, {
      stored: true, received: stream.bytes.size, state: 'open',
      chunk_size: this.chunkSize, in_flight: 3,
    });
  }

  serve(key, bytes, error = null) {
    this.downloads.set(key, { bytes, error });
  }

  #download(key, offset, init) {
    this.gets += 1;
    const stream = this.downloads.get(key);
    if (stream === undefined) return jsonAnswer(404, { error: 'not_found', message: 'no such stream' });
    const { bytes, error } = stream;
    if (error !== null && offset === bytes.length) return jsonAnswer(422, error);
    // the first `cutFirst` responses fail in turn by a network error and by an early clean end
    const cut = this.gets <= this.cutFirst && this.gets % 2 === 1;
    const early = this.gets <= this.cutFirst && this.gets % 2 === 0;
    const stop = cut || early ? offset + randomInt(this.random, bytes.length - offset + 1) : bytes.length;
    const headers = { 'content-type': 'application/octet-stream', 'Stream-Window': '4096' };
    if (!cut && !early && error === null) headers['Stream-End'] = String(bytes.length);
    let at = offset;
    const body = new ReadableStream({
      pull: (controller) => {
        if (init.signal?.aborted) return;
        if (at >= stop) {
          if (cut) controller.error(new TypeError('network error'));
          else controller.close();
          return;
        }
        const size = Math.min(1 + randomInt(this.random, 3000), stop - at);
        controller.enqueue(bytes.slice(at, at + size));
        at += size;
      },
    });
    return new Response(body, { status: 200, headers });
  }
}

test('an upload arrives whole through lost requests, lost answers and a body cap (413)', async () => {
  const kernel = new FakeKernel({ seed: 3, bodyCap: 3000, chunkSize: 8192, lossRate: 0.2 });
  const hub = new StreamHub(kernel.link(), { chunkBytes: 8192, chunksInFlight: 2 });
  const data = bytesOf(100000, 5);
  const seen = [];
  const source = new StreamSource(chunksOf(data, [1, 7000, 333, 20000]), {
    total: data.length, progress: (p) => seen.push(p),
  });
  const key = hub.send(source);
  assert.equal(key, 1);
  await waitUntil(() => seen.at(-1)?.finished === true, 8000);
  assert.deepEqual(kernel.assembled(1), data);
  assert.ok(kernel.refused >= 1, 'the cap refused the first big chunks');
  assert.ok(hub.chunkBytes <= 3000, `chunks were halved below the cap (now ${hub.chunkBytes})`);
  assert.equal(seen.at(-1).done, data.length);
  assert.equal(seen.at(-1).total, data.length);
  assert.equal(seen.reduce((sum, p) => sum + p.delta, 0), data.length);
});

test('a chunk refused (413) and sent again after the last chunk went is not taken for the end', async () => {
  const kernel = new FakeKernel({ bodyCap: 3000, chunkSize: 8192 });
  const hub = new StreamHub(kernel.link(), { chunkBytes: 8192, chunksInFlight: 2 });
  const data = bytesOf(8192 + 1000, 9);
  const seen = [];
  hub.send(new StreamSource(chunksOf(data, [data.length]), { progress: (p) => seen.push(p) }));
  await waitUntil(() => seen.at(-1)?.finished === true, 8000);
  assert.ok(kernel.refused >= 1, 'the first chunk was refused by the cap');
  assert.equal(kernel.upload(1).end, data.length);
  assert.deepEqual(kernel.assembled(1), data);
});

test('the page adopts the chunk size the server names until a 413 says otherwise', async () => {
  const kernel = new FakeKernel({ chunkSize: 5000 });
  const hub = new StreamHub(kernel.link(), { chunkBytes: 1000 });
  hub.send(chunksOf(bytesOf(20000, 1), [20000]));
  await waitUntil(() => kernel.upload(1).end !== null);
  assert.equal(hub.chunkBytes, 5000);
  hub.refuse413(2500);
  hub.adapt({ chunk_size: 5000 });
  assert.equal(hub.chunkBytes, 2500);
});

test("a producer's error reaches the kernel after the bytes made before it", async () => {
  const kernel = new FakeKernel();
  const hub = new StreamHub(kernel.link());
  hub.send((async function* () {
    yield new Uint8Array([1, 2, 3]);
    throw new RangeError('broken producer');
  })());
  await waitUntil(() => kernel.upload(1).error !== null);
  assert.deepEqual(kernel.upload(1).error, { name: 'RangeError', message: 'broken producer' });
  assert.deepEqual([...kernel.upload(1).bytes.values()], [1, 2, 3]);
});

test('a download resumes after cuts and early ends, every byte once, and is acknowledged', async () => {
  const kernel = new FakeKernel({ seed: 11, cutFirst: 6 });
  const data = bytesOf(60000, 9);
  kernel.serve(4, data);
  const hub = new StreamHub(kernel.link());
  const stream = hub.receive(4);
  assert.ok(stream instanceof MetaGenerator);
  assert.deepEqual(await stream.join(), data);
  assert.ok(kernel.gets > 6, 'the stream was resumed after each cut');
  await waitUntil(() => kernel.acks.some(([, offset, end]) => offset === data.length && end === '1'));
  assert.ok(kernel.acks.length > 2, 'acknowledged every quarter of the window');
});

test('a failed producer on the kernel rejects the page consumer with KernelError', async () => {
  const kernel = new FakeKernel();
  kernel.serve(1, new Uint8Array(10), { error: 'stream_error', name: 'ValueError', message: 'bad' });
  const stream = new StreamHub(kernel.link()).receive(1);
  const chunks = [];
  await assert.rejects(async () => {
    for await (const chunk of stream) chunks.push(chunk);
  }, (error) => error instanceof KernelError && error.type === 'ValueError' && error.detail === 'bad');
  assert.equal(chunks.reduce((sum, c) => sum + c.length, 0), 10);
});

test('leaving a download early cancels it; a reset fails the rest with StateError', async () => {
  const kernel = new FakeKernel();
  kernel.serve(1, bytesOf(50000, 2));
  kernel.serve(2, bytesOf(50000, 3));
  const hub = new StreamHub(kernel.link());
  for await (const chunk of hub.receive(1)) {
    assert.ok(chunk.length > 0);
    break;
  }
  await waitUntil(() => kernel.cancelled.includes(1));
  const second = hub.receive(2);
  await second.next();
  hub.reset(new StateError('the session ended'));
  await assert.rejects(second.join(), StateError);
  assert.equal(hub.send(chunksOf(new Uint8Array(1), [1])), 1, 'numbering starts over');
});

async function collect(generator) {
  const out = [];
  for await (const piece of generator) out.push(new TextDecoder().decode(piece));
  return out;
}

function metaOf(...texts) {
  const encoder = new TextEncoder();
  const stream = new ReadableStream({
    start(controller) {
      for (const text of texts) controller.enqueue(encoder.encode(text));
      controller.close();
    },
  });
  return new MetaGenerator(stream, () => 42);
}

test('byLimit and bySeparator at chunk boundaries, and their validation errors', async () => {
  assert.deepEqual(await collect(metaOf('a', '', 'bcd', '', 'efghijk').byLimit(4)),
    ['abcd', 'efgh', 'ijk']);
  assert.deepEqual(await collect(metaOf('abc', '', 'defgh', '', 'ijklmnopq').byLimit(4)),
    ['abcd', 'efgh', 'ijkl', 'mnop', 'q']);
  assert.deepEqual(await collect(metaOf(' abcdef ', '', ' ghijk  lmno ', '', ' pqr  st  u ').bySeparator('  ')),
    [' abcdef  ', 'ghijk  ', 'lmno  ', 'pqr  ', 'st  ', 'u ']);
  assert.deepEqual(await collect(metaOf('a\r', '\nb', '\r\n').bySeparator(new Uint8Array([13, 10]))),
    ['a\r\n', 'b\r\n']);
  await assert.rejects(metaOf('x').byLimit(1.5).next(), TypeError);
  await assert.rejects(metaOf('x').byLimit(0).next(), /Limit must be positive/);
  await assert.rejects(metaOf('x').bySeparator('').next(), /Separator cannot be empty/);
  await assert.rejects(metaOf('x').bySeparator(7).next(), TypeError);
});

test('every splitting of a text gives the same byLimit and bySeparator pieces', async () => {
  const text = 'ab\ncd\n\nefg\nh';
  for (let cut1 = 0; cut1 <= text.length; cut1 += 1) {
    for (let cut2 = cut1; cut2 <= text.length; cut2 += 1) {
      const parts = [text.slice(0, cut1), text.slice(cut1, cut2), text.slice(cut2)];
      assert.deepEqual(await collect(metaOf(...parts).bySeparator('\n')),
        ['ab\n', 'cd\n', '\n', 'efg\n', 'h']);
      assert.deepEqual(await collect(metaOf(...parts).byLimit(3)),
        ['ab\n', 'cd\n', '\nef', 'g\nh']);
    }
  }
});

test('join, received, total and progress as a callback and as an async iterable', async () => {
  const stream = metaOf('abc', 'de');
  const feed = new ProgressFeed();
  stream.onprogress = feed.callback;
  const snapshots = (async () => {
    const seen = [];
    for await (const progress of feed) seen.push(progress);
    return seen;
  })();
  assert.equal(new TextDecoder().decode(await stream.join()), 'abcde');
  assert.equal(stream.received, 5);
  assert.equal(stream.total, 42);
  const seen = await snapshots;
  assert.equal(seen.at(-1).finished, true);
  assert.equal(seen.reduce((sum, p) => sum + p.delta, 0), 5);
});
