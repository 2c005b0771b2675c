/**
 * How a received byte stream is read (the API of jupyter-jchannel's MetaGenerator), progress
 * snapshots, and `StreamSource`, which gives an outgoing stream a declared size and a progress
 * callback.
 */

import { joinBytes } from './bytes.js';

/**
 * @typedef {object} Progress
 * @property {number} done bytes through so far
 * @property {number | null} total the declared size, or null when unknown
 * @property {number} delta bytes since the previous snapshot
 * @property {boolean} finished true in the last snapshot, whether the transfer completed or failed
 */

/**
 * @callback ProgressCallback
 * @param {Progress} progress
 * @returns {void}
 */

/**
 * Turns byte counts into Progress snapshots for one callback; a throwing callback is reported
 * once and then dropped, so that a progress bar never breaks a transfer.
 */
export class ProgressReporter {
  /**
   * @param {ProgressCallback | null} callback
   * @param {number | null} [total]
   */
  constructor(callback, total = null) {
    /** @type {ProgressCallback | null} */
    this.callback = callback;
    /** @type {number | null} */
    this.total = total;
    this.done = 0;
    this.finished = false;
  }

  /**
   * @param {number} done bytes through so far
   * @param {boolean} [finished] whether nothing follows
   */
  advance(done, finished = false) {
    if (this.finished || (done <= this.done && !finished)) return;
    const delta = Math.max(done - this.done, 0);
    this.done = Math.max(done, this.done);
    this.finished = finished;
    if (typeof this.callback !== 'function') return;
    try {
      this.callback({ done: this.done, total: this.total, delta, finished });
    } catch (error) {
      this.callback = null;
      if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
    }
  }
}

/**
 * A progress callback that can also be iterated with `for await`: iteration yields the latest
 * snapshot whenever it changed (merging the deltas of snapshots that arrived meanwhile) and ends
 * after the finished one. Use `feed.callback` wherever a progress callback is accepted.
 */
export class ProgressFeed {
  /** @type {Progress | null} */
  #latest = null;
  #delta = 0;
  #changed = false;
  /** @type {(() => void) | null} */
  #wake = null;

  constructor() {
    /** @type {ProgressCallback} */
    this.callback = (progress) => {
      this.#latest = progress;
      this.#delta += progress.delta;
      this.#changed = true;
      const wake = this.#wake;
      this.#wake = null;
      wake?.();
    };
  }

  /** @returns {AsyncGenerator<Progress>} */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      while (!this.#changed) {
        await new Promise((resolve) => {
          this.#wake = resolve;
        });
      }
      this.#changed = false;
      const snapshot = { ...this.#latest, delta: this.#delta };
      this.#delta = 0;
      yield snapshot;
      if (snapshot.finished) return;
    }
  }
}

/**
 * An outgoing byte stream with its declared size and a progress callback. Wherever a stream is
 * sent (`callWithStream`, `pipe`, a handler's return value), a StreamSource may stand for it.
 */
export class StreamSource {
  /**
   * @param {AsyncIterable<Uint8Array>} stream
   * @param {{total?: number | null, progress?: ProgressCallback | null}} [options] `total` is
   *   sent to the receiver; `progress` gets snapshots as the kernel confirms bytes
   */
  constructor(stream, { total = null, progress = null } = {}) {
    if (!isAsyncIterable(stream)) {
      throw new TypeError('a stream must be an async iterable of Uint8Array');
    }
    if (total !== null && !(Number.isSafeInteger(total) && total >= 0)) {
      throw new RangeError('total must be null or the non-negative size of the stream');
    }
    if (progress !== null && typeof progress !== 'function') {
      throw new TypeError('progress must be a function taking a Progress');
    }
    /** @type {AsyncIterable<Uint8Array>} */
    this.stream = stream;
    /** @type {number | null} */
    this.total = total;
    /** @type {ProgressCallback | null} */
    this.progress = progress;
  }

  /** @returns {AsyncIterator<Uint8Array>} */
  [Symbol.asyncIterator]() {
    return this.stream[Symbol.asyncIterator]();
  }
}

/**
 * @param {unknown} value
 * @returns {boolean} whether `value` is sent as a stream (an async iterable that is not a string)
 */
export function isAsyncIterable(value) {
  return value !== null && typeof value === 'object' &&
    typeof value[Symbol.asyncIterator] === 'function';
}

/**
 * @param {unknown} stream
 * @returns {StreamSource}
 */
export function toStreamSource(stream) {
  return stream instanceof StreamSource ? stream : new StreamSource(stream);
}

/**
 * A received byte stream, read once: `for await (const chunk of stream)`, `join()`,
 * `byLimit(limit)`, `bySeparator(separator)`. `received` counts the bytes handed out, `total` is
 * the size the sender declared (or null), and `onprogress` may be set to a ProgressCallback.
 * Leaving a `for await` loop early (or calling `return()`) cancels the stream, which stops the
 * producer in the kernel.
 */
export class MetaGenerator {
  /** @type {ReadableStreamDefaultReader<Uint8Array>} */
  #reader;
  #reporter = new ProgressReporter(null);
  #totalOf;

  /**
   * @param {ReadableStream<Uint8Array>} stream
   * @param {() => number | null} [totalOf] the declared size, once known
   */
  constructor(stream, totalOf = () => null) {
    this.#reader = stream.getReader();
    this.#totalOf = totalOf;
  }

  /** @returns {number | null} the size the sender declared, or null */
  get total() {
    return this.#totalOf();
  }

  /** @returns {number} bytes handed to the consumer so far */
  get received() {
    return this.#reporter.done;
  }

  /** @returns {ProgressCallback | null} */
  get onprogress() {
    return this.#reporter.callback;
  }

  /** @param {ProgressCallback | null} callback called after each chunk and at the end */
  set onprogress(callback) {
    this.#reporter.callback = callback;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** @returns {Promise<IteratorResult<Uint8Array>>} */
  async next() {
    try {
      const result = await this.#reader.read();
      this.#reporter.total = this.total;
      this.#reporter.advance(this.#reporter.done + (result.done ? 0 : result.value.length),
        result.done);
      return result.done ? { done: true, value: undefined } : result;
    } catch (error) {
      this.#reporter.advance(this.#reporter.done, true);
      throw error;
    }
  }

  /**
   * Stops reading: the producer is stopped and what is held is dropped.
   *
   * @returns {Promise<IteratorResult<Uint8Array>>}
   */
  async return() {
    await this.#reader.cancel().catch(() => {});
    this.#reporter.advance(this.#reporter.done, true);
    return { done: true, value: undefined };
  }

  /**
   * @returns {Promise<Uint8Array>} every byte of the stream, joined
   */
  async join() {
    const chunks = [];
    for await (const chunk of this) chunks.push(chunk);
    return joinBytes(chunks);
  }

  /**
   * Chunks of exactly `limit` bytes, the last one possibly shorter.
   *
   * @param {number} [limit]
   * @yields {Uint8Array}
   */
  async *byLimit(limit = 8192) {
    if (!Number.isInteger(limit)) throw new TypeError('Limit must be an integer');
    if (limit <= 0) throw new Error('Limit must be positive');
    const pending = new Uint8Array(limit);
    let size = 0;
    for await (const chunk of this) {
      let start = 0;
      if (size > 0) {
        start = Math.min(limit - size, chunk.length);
        pending.set(chunk.subarray(0, start), size);
        size += start;
        if (size < limit) continue;
        yield pending.slice();
        size = 0;
      }
      while (chunk.length - start >= limit) {
        yield chunk.slice(start, start + limit);
        start += limit;
      }
      pending.set(chunk.subarray(start), 0);
      size = chunk.length - start;
    }
    if (size > 0) yield pending.slice(0, size);
  }

  /**
   * Pieces that end with `separator` (a string is encoded as UTF-8); the last may not.
   *
   * @param {string | Uint8Array} [separator]
   * @yields {Uint8Array}
   */
  async *bySeparator(separator = '\n') {
    let needle;
    if (typeof separator === 'string') {
      needle = new TextEncoder().encode(separator);
    } else if (separator instanceof Uint8Array) {
      needle = separator;
    } else {
      throw new TypeError('Separator must be a string or an Uint8Array');
    }
    if (needle.length === 0) throw new Error('Separator cannot be empty');
    let buffer = new Uint8Array(0);
    for await (const chunk of this) {
      let searchFrom = Math.max(buffer.length - needle.length + 1, 0);
      buffer = concatBytes(buffer, chunk);
      let start = 0;
      for (;;) {
        const found = indexOfBytes(buffer, needle, Math.max(searchFrom, start));
        if (found < 0) break;
        const end = found + needle.length;
        yield buffer.slice(start, end);
        start = end;
        searchFrom = end;
      }
      if (start > 0) buffer = buffer.slice(start);
    }
    if (buffer.length > 0) yield buffer;
  }
}

/**
 * @param {Uint8Array} first
 * @param {Uint8Array} second
 * @returns {Uint8Array} a new array holding both
 */
export function concatBytes(first, second) {
  return joinBytes([first, second]);
}

/**
 * @param {Uint8Array} haystack
 * @param {Uint8Array} needle
 * @param {number} from
 * @returns {number} where `needle` first occurs at or after `from`, or -1
 */
function indexOfBytes(haystack, needle, from) {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j += 1;
    if (j === needle.length) return i;
  }
  return -1;
}
