import { createParser } from '../../client_js/sse_parser.js';

/**
 * A small seeded PRNG (mulberry32) so that randomized tests are reproducible.
 *
 * @param {number} seed
 * @returns {() => number} numbers in [0, 1)
 */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * @param {() => number} random
 * @param {number} below
 * @returns {number} an integer in [0, below)
 */
export function randomInt(random, below) {
  return Math.floor(random() * below);
}

/**
 * Waits until `condition()` is true, polling every few milliseconds.
 *
 * @param {() => boolean} condition
 * @param {number} [timeout] milliseconds before failing
 * @returns {Promise<void>}
 */
export async function waitUntil(condition, timeout = 1000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeout} ms: ${condition}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Feeds `chunks` to a new event-stream parser and collects what it reports.
 *
 * @param {(string | Uint8Array)[]} chunks
 * @param {object} [options] the parser's options
 * @returns {{events: object[], comments: string[], retries: number[]}}
 */
export function parseChunks(chunks, options) {
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

/**
 * Cuts `sequence` (a string or a byte array) into pieces of 0 to `maxChunk` items.
 *
 * @template {string | Uint8Array} T
 * @param {T} sequence
 * @param {() => number} random
 * @param {number} maxChunk
 * @returns {T[]}
 */
export function randomSplit(sequence, random, maxChunk) {
  const chunks = [];
  for (let start = 0; start < sequence.length; ) {
    const size = randomInt(random, maxChunk + 1);
    chunks.push(sequence.slice(start, start + size));
    start += size;
  }
  return chunks;
}
