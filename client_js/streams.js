import { backoffDelay } from './backoff.js';
import { KernelError, StateError } from './errors.js';
import { MetaGenerator, ProgressReporter, toStreamSource } from './meta_generator.js';
import { REFUSAL_STATUSES, base64url, bytesFitting } from './query_form.js';

const DEFAULT_CHUNK_BYTES = 512 * 1024;
const DEFAULT_CHUNKS_IN_FLIGHT = 4;
const MIN_CHUNK_BYTES = 1024;
const DEFAULT_STREAM_WINDOW = 8 * 1024 * 1024;
const ACKS_PER_WINDOW = 4;
const STREAM_REQUEST_TIMEOUT_MS = 120 * 1000;

/** A received stream dropped before it was read to its end is cancelled, stopping its producer. */
const unreadStreams = new FinalizationRegistry(({ hub, key }) => hub.refuse(key));

/**
 * @typedef {object} StreamLink what the hub needs from the client
 * @property {(resource: string, init: RequestInit) => Promise<Response>} fetch
 * @property {string} url the server's base URL
 * @property {(extra?: Record<string, string>) => Record<string, string>} headers the headers
 *   every request carries (the token among them), plus `extra`
 * @property {() => string | null} session the current session id
 * @property {(milliseconds: number, signal: AbortSignal) => Promise<void>} sleep
 * @property {() => number} random
 * @property {() => 'post' | 'get'} method how requests that carry data go now
 * @property {(url: string) => number} room characters a URL may still grow by under maxUrl
 * @property {(error: Error & {status: number | null}) => Promise<boolean>} refused checks
 *   whether an odd answer to a POST means that the path refuses POST; resolves to whether
 *   requests now go over GET
 */

const MIN_ERROR_TEXT = 64;

/**
 * @typedef {object} StreamOptions
 * @property {number} [chunkBytes] the largest chunk of a page -> kernel stream sent in one POST
 *   until the server's first answer names its chunk_size (halved after each 413)
 * @property {number} [chunksInFlight] chunk POSTs of one stream in flight at once at first (the
 *   server's chunks_in_flight replaces it after the first answer)
 */

/**
 * The page's byte streams of the current session, both directions: page -> kernel streams
 * (`send`) are numbered here, 1, 2, 3, ...; kernel -> page streams (`receive`) are numbered by
 * the kernel. `reset` ends them all when the session ends.
 */
export class StreamHub {
  /** @type {StreamLink} */
  #link;
  #nextUpload = 0;
  #controller = new AbortController();
  #refused = false;

  /**
   * @param {StreamLink} link
   * @param {StreamOptions} [options]
   */
  constructor(link, { chunkBytes = DEFAULT_CHUNK_BYTES, chunksInFlight = DEFAULT_CHUNKS_IN_FLIGHT } = {}) {
    this.#link = link;
    /** @type {number} the chunk size of the next chunks sent */
    this.chunkBytes = chunkBytes;
    /** @type {number} */
    this.chunksInFlight = chunksInFlight;
  }

  /** @returns {StreamLink} */
  get link() {
    return this.#link;
  }

  /**
   * Starts sending a page -> kernel stream.
   *
   * @param {AsyncIterable<Uint8Array> | StreamSource} stream
   * @returns {number} its stream id
   */
  send(stream) {
    const source = toStreamSource(stream);
    this.#nextUpload += 1;
    const upload = new StreamUpload(this, this.#nextUpload, source, this.#controller.signal);
    upload.run();
    return upload.key;
  }

  /**
   * @param {number} key a kernel -> page stream id
   * @returns {MetaGenerator} the stream, read on demand
   */
  receive(key) {
    return new StreamDownload(this, key, this.#controller.signal).meta;
  }

  /**
   * Nobody will read kernel -> page stream `key`: stop its producer.
   *
   * @param {number} key
   */
  refuse(key) {
    this.request(`/streams/down/${key}/cancel`, { method: this.method }, this.#controller.signal)
      .then((response) => response.body?.cancel())
      .catch(() => {});
  }

  /**
   * Ends every stream of the session with `error` and starts the numbering over.
   *
   * @param {Error} error
   */
  reset(error) {
    this.#controller.abort(error);
    this.#controller = new AbortController();
    this.#nextUpload = 0;
  }

  /** @returns {'POST' | 'GET'} the method of requests that send something to the kernel */
  get method() {
    return this.#link.method?.() === 'get' ? 'GET' : 'POST';
  }

  /**
   * @param {number} key an upload's stream id
   * @returns {number} the most bytes of its next chunk: chunkBytes, or over GET what fits in
   *   the query of one URL
   */
  pieceBytes(key) {
    if (this.#link.method?.() !== 'get') return this.chunkBytes;
    const session = this.#link.session() ?? '';
    const head = `${this.#link.url}/streams/up/${key}?${new URLSearchParams({ session })}&data=`;
    return Math.max(1, Math.min(this.chunkBytes, bytesFitting(this.#link.room(head))));
  }

  /**
   * @param {number} key
   * @param {string} text
   * @returns {string} `text` cut to what fits with the other parameters of an error request
   */
  fitErrorText(key, text) {
    const session = this.#link.session() ?? '';
    const head = `${this.#link.url}/streams/up/${key}/error?${new URLSearchParams({ session })}&name=&message=`;
    const room = Math.max(MIN_ERROR_TEXT, Math.floor(this.#link.room(head) / 3 / 2));
    return text.length <= room ? text : text.slice(0, room);
  }

  /**
   * @param {Response} response a failed answer to a POST
   * @returns {Promise<boolean>} whether the path refuses POST (requests now go over GET)
   */
  async postRefused(response) {
    if (!REFUSAL_STATUSES.has(response.status)) return false;
    const text = await response.clone().text().catch(() => '');
    try {
      if (typeof JSON.parse(text)?.error === 'string') return false; // the kernel server's own
    } catch {
      // not JSON: the path's answer
    }
    const error = Object.assign(new Error(`a chunk POST was answered ${response.status}: ${text.slice(0, 100) || 'an empty answer'}`),
      { status: response.status, foreign: true, action: 'retry', cutAt: null });
    return this.#link.refused?.(error) ?? false;
  }

  /**
   * Adopts the bounds the server announced in a chunk answer.
   *
   * @param {{chunk_size?: number, in_flight?: number}} answer
   */
  adapt(answer) {
    if (Number.isSafeInteger(answer.chunk_size) && answer.chunk_size > 0) {
      const allowed = answer.chunk_size;
      this.chunkBytes = this.#refused ? Math.min(this.chunkBytes, allowed) : allowed;
    }
    if (Number.isSafeInteger(answer.in_flight) && answer.in_flight > 0) {
      this.chunksInFlight = answer.in_flight;
    }
  }

  /**
   * A chunk was refused as too large (413, from the server or a proxy): send at most `bytes`
   * from now on, whatever the server says it accepts.
   *
   * @param {number} bytes
   */
  refuse413(bytes) {
    this.#refused = true;
    this.chunkBytes = Math.min(this.chunkBytes, bytes);
  }

  /**
   * One request of a stream, in the current session.
   *
   * @param {string} path
   * @param {RequestInit & {headers?: Record<string, string>}} init
   * @param {AbortSignal} signal
   * @param {Record<string, string>} [query]
   * @returns {Promise<Response>}
   */
  async request(path, init, signal, query = {}) {
    const session = this.#link.session();
    if (session === null) throw new StateError('no session yet');
    const params = new URLSearchParams({ session, ...query });
    const timeout = AbortSignal.timeout(STREAM_REQUEST_TIMEOUT_MS);
    return this.#link.fetch(`${this.#link.url}${path}?${params}`, {
      ...init,
      headers: this.#link.headers(init.headers),
      signal: AbortSignal.any([signal, timeout]),
    });
  }

  /**
   * Waits before retry number `attempt`; rejects at once when `signal` aborts.
   *
   * @param {number} attempt
   * @param {AbortSignal} signal
   * @returns {Promise<void>}
   */
  async pause(attempt, signal) {
    await this.#link.sleep(backoffDelay(attempt, this.#link.random), signal);
    signal.throwIfAborted();
  }
}

/**
 * @typedef {object} Piece bytes of an outgoing stream at an offset
 * @property {number} offset
 * @property {Uint8Array} bytes
 * @property {boolean} [last] whether the stream ends with this chunk
 */

/**
 * One page -> kernel stream: reads the producer at the kernel's pace and POSTs its bytes in
 * chunks, a few in flight, each retried until the kernel stored it.
 */
class StreamUpload {
  #hub;
  #source;
  #signal;
  #own = new AbortController();
  #reporter;
  /** @type {Piece[]} bytes read from the producer and not yet sent */
  #queue = [];
  #queued = 0;
  #produced = 0;
  #stored = 0;
  #ended = false;
  /** @type {unknown} */
  #failure = null;
  #lastSent = false;
  #cancelled = false;
  /** @type {Map<Promise<object>, Piece>} */
  #inFlight = new Map();

  /**
   * @param {StreamHub} hub
   * @param {number} key
   * @param {StreamSource} source
   * @param {AbortSignal} signal aborted when the session ends
   */
  constructor(hub, key, source, signal) {
    this.#hub = hub;
    /** @type {number} */
    this.key = key;
    this.#source = source;
    this.#signal = AbortSignal.any([signal, this.#own.signal]);
    this.#reporter = new ProgressReporter(source.progress, source.total);
  }

  async run() {
    const iterator = this.#source.stream[Symbol.asyncIterator]();
    const aborted = new Promise((resolve) => {
      if (this.#signal.aborted) resolve({ kind: 'aborted' });
      this.#signal.addEventListener('abort', () => resolve({ kind: 'aborted' }), { once: true });
    });
    /** @type {Promise<object> | null} */
    let next = null;
    try {
      for (;;) {
        this.#launchChunks();
        const producing = !this.#ended && this.#failure === null;
        if (producing && next === null && this.#queued < 2 * this.#hub.chunkBytes) {
          next = iterator.next().then(
            (result) => ({ kind: 'next', result }),
            (error) => ({ kind: 'failed', error }),
          );
        }
        if (!producing && this.#queued === 0 && this.#inFlight.size === 0) break;
        const waits = [aborted, ...this.#inFlight.keys()];
        if (next !== null) waits.push(next);
        const event = await Promise.race(waits);
        if (event.kind === 'aborted') throw this.#signal.reason;
        if (event.kind === 'next' || event.kind === 'failed') {
          next = null;
          this.#take(event);
        } else {
          this.#settle(event);
        }
        if (this.#cancelled) {
          this.#own.abort(new StateError('the kernel cancelled the stream'));
          iterator.return?.()?.catch?.(() => {});
          return;
        }
      }
      await this.#finish();
    } catch (error) {
      const sessionAlive = !this.#signal.aborted;
      this.#own.abort(error);
      iterator.return?.()?.catch?.(() => {});
      if (sessionAlive) this.#tellFailure(error);
    } finally {
      this.#reporter.advance(this.#stored, true);
    }
  }

  #take(event) {
    if (event.kind === 'failed') {
      this.#failure = event.error;
      return;
    }
    const { done, value } = event.result;
    if (done) {
      this.#ended = true;
      return;
    }
    let bytes;
    if (value instanceof Uint8Array) {
      bytes = value;
    } else if (ArrayBuffer.isView(value)) {
      bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    } else if (value instanceof ArrayBuffer) {
      bytes = new Uint8Array(value);
    } else {
      this.#failure = new TypeError(`a stream must yield Uint8Array chunks, not ${typeof value}`);
      return;
    }
    if (bytes.length === 0) return;
    this.#queue.push({ offset: this.#produced, bytes });
    this.#queued += bytes.length;
    this.#produced += bytes.length;
  }

  #launchChunks() {
    const producerDone = this.#ended || this.#failure !== null;
    while (this.#inFlight.size < this.#hub.chunksInFlight && this.#queued > 0) {
      const limit = this.#hub.pieceBytes(this.key);
      const full = this.#queued >= limit;
      if (!full && this.#inFlight.size > 0 && !producerDone) return;
      const piece = this.#cut(limit);
      // the last piece ends where the producer ended: a refused (413) middle piece sent again
      // after the last one went empties the queue too, but it is not the end
      piece.last = this.#ended && this.#failure === null && this.#queued === 0 &&
        piece.offset + piece.bytes.length === this.#produced;
      if (piece.last) this.#lastSent = true;
      const posting = this.#post(piece).then((outcome) => ({ ...outcome, posting }));
      posting.catch(() => {});
      this.#inFlight.set(posting, piece);
    }
  }

  /**
   * @param {number} limit
   * @returns {Piece} the next contiguous bytes of the queue, at most `limit` of them
   */
  #cut(limit) {
    const first = this.#queue[0];
    if (first.bytes.length >= limit || this.#queue.length === 1 ||
        this.#queue[1].offset !== first.offset + first.bytes.length) {
      const bytes = first.bytes.subarray(0, limit);
      if (bytes.length === first.bytes.length) {
        this.#queue.shift();
      } else {
        this.#queue[0] = { offset: first.offset + bytes.length, bytes: first.bytes.subarray(bytes.length) };
      }
      this.#queued -= bytes.length;
      return { offset: first.offset, bytes };
    }
    const parts = [];
    let size = 0;
    while (this.#queue.length > 0 && size < limit) {
      const head = this.#queue[0];
      if (head.offset !== first.offset + size) break;
      const part = head.bytes.subarray(0, limit - size);
      parts.push(part);
      size += part.length;
      if (part.length === head.bytes.length) {
        this.#queue.shift();
      } else {
        this.#queue[0] = { offset: head.offset + part.length, bytes: head.bytes.subarray(part.length) };
      }
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    this.#queued -= size;
    return { offset: first.offset, bytes };
  }

  #settle({ kind, posting }) {
    const piece = this.#inFlight.get(posting);
    this.#inFlight.delete(posting);
    if (kind === 'stored') {
      this.#stored += piece.bytes.length;
      this.#reporter.advance(this.#stored);
    } else if (kind === 'split') {
      if (piece.last) this.#lastSent = false;
      this.#queue.unshift({ offset: piece.offset, bytes: piece.bytes });
      this.#queue.sort((a, b) => a.offset - b.offset);
      this.#queued += piece.bytes.length;
    } else if (kind === 'cancelled') {
      this.#cancelled = true;
    }
  }

  /**
   * POSTs one chunk until the kernel stored it.
   *
   * @param {Piece} piece
   * @returns {Promise<{kind: 'stored' | 'split' | 'cancelled'}>}
   */
  async #post(piece) {
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Stream-Offset': String(piece.offset),
    };
    if (piece.last) headers['Stream-End'] = '1';
    if (this.#source.total !== null) headers['Stream-Total'] = String(this.#source.total);
    let attempt = 0;
    for (;;) {
      this.#signal.throwIfAborted();
      const method = this.#hub.method;
      if (method === 'GET' && piece.bytes.length > this.#hub.pieceBytes(this.key)) {
        return { kind: 'split' }; // cut for a POST: cut again to fit in a URL
      }
      let response;
      try {
        const init = method === 'GET' ? { method, headers } : { method, headers, body: piece.bytes };
        const query = method === 'GET' ? { data: base64url(piece.bytes) } : {};
        response = await this.#hub.request(`/streams/up/${this.key}`, init, this.#signal, query);
      } catch (error) {
        this.#signal.throwIfAborted();
        await this.#hub.pause(attempt++, this.#signal);
        continue;
      }
      if (method === 'POST' && !response.ok && (await this.#hub.postRefused(response))) {
        await response.body?.cancel().catch(() => {});
        return { kind: 'split' }; // the path refuses POST: send it again over GET
      }
      if (response.status === 413) {
        const answer = await response.json().catch(() => ({}));
        return this.#shrink(piece, answer);
      }
      const answer = await readStreamAnswer(response, this.key);
      if (answer === null) {
        await this.#hub.pause(attempt++, this.#signal);
        continue;
      }
      this.#hub.adapt(answer);
      if (answer.state === 'cancelled') return { kind: 'cancelled' };
      if (answer.stored || answer.state === 'done') return { kind: 'stored' };
      attempt = 0; // the kernel held the chunk while its buffer was full: offer it again
    }
  }

  #shrink(piece, answer) {
    if (piece.bytes.length <= MIN_CHUNK_BYTES) {
      throw new StateError(`a chunk of ${piece.bytes.length} bytes was refused as too large (413)`);
    }
    const half = Math.max(MIN_CHUNK_BYTES, Math.floor(piece.bytes.length / 2));
    this.#hub.refuse413(half);
    this.#hub.adapt(answer);
    return { kind: 'split' };
  }

  async #finish() {
    if (this.#failure !== null) {
      const error = this.#failure;
      const name = String(error?.name ?? typeof error);
      const message = String(error?.message ?? error);
      await this.#postUntilAnswered(`/streams/up/${this.key}/error`, name, message);
      return;
    }
    if (!this.#lastSent) {
      const piece = { offset: this.#produced, bytes: new Uint8Array(0), last: true };
      while ((await this.#post(piece)).kind === 'split'); // POST refused: again over GET
    }
  }

  /**
   * The upload itself failed (not its producer): the kernel's consumer gets the error, once.
   *
   * @param {unknown} error
   */
  #tellFailure(error) {
    reportStreamError(error);
    const headers = { 'Content-Type': 'application/json', 'Stream-Offset': String(this.#produced) };
    const signal = AbortSignal.timeout(STREAM_REQUEST_TIMEOUT_MS);
    const [init, query] = this.#errorRequest('StreamError', String(error?.message ?? error), headers);
    this.#hub.request(`/streams/up/${this.key}/error`, init, signal, query)
      .then((response) => response.body?.cancel())
      .catch(() => {});
  }

  /**
   * @returns {[RequestInit, Record<string, string>]} the request telling the kernel that the
   *   upload failed: a JSON body, or over GET the query
   */
  #errorRequest(name, message, headers) {
    const method = this.#hub.method;
    if (method === 'POST') return [{ method, headers, body: JSON.stringify({ name, message }) }, {}];
    const fit = (text) => this.#hub.fitErrorText(this.key, text);
    return [{ method, headers: { 'Stream-Offset': headers['Stream-Offset'] } }, { name: fit(name), message: fit(message) }];
  }

  async #postUntilAnswered(path, name, message) {
    const headers = { 'Content-Type': 'application/json', 'Stream-Offset': String(this.#produced) };
    for (let attempt = 0; ; ) {
      try {
        const [init, query] = this.#errorRequest(name, message, headers);
        const response = await this.#hub.request(path, init, this.#signal, query);
        if ((await readStreamAnswer(response, this.key)) !== null) return;
      } catch (error) {
        this.#signal.throwIfAborted();
        if (error instanceof StateError) throw error;
      }
      await this.#hub.pause(attempt++, this.#signal);
    }
  }
}

/**
 * One kernel -> page stream, read with GET requests on the consumer's demand: after a cut the
 * next request starts from the offset the page holds; acknowledgements let the kernel's producer
 * go on.
 */
class StreamDownload {
  #hub;
  #key;
  #signal;
  #own = new AbortController();
  #offset = 0;
  /** @type {number | null} */
  #end = null;
  /** @type {number | null} */
  #total = null;
  #window = DEFAULT_STREAM_WINDOW;
  #ackSent = 0;
  #acking = false;
  #attempt = 0;
  /** @type {ReadableStreamDefaultReader<Uint8Array> | null} */
  #reader = null;

  /**
   * @param {StreamHub} hub
   * @param {number} key
   * @param {AbortSignal} signal aborted when the session ends
   */
  constructor(hub, key, signal) {
    this.#hub = hub;
    this.#key = key;
    this.#signal = AbortSignal.any([signal, this.#own.signal]);
    const bytes = new ReadableStream(
      { pull: (controller) => this.#pull(controller), cancel: () => this.#cancel() },
      { highWaterMark: 0 },
    );
    /** @type {MetaGenerator} */
    this.meta = new MetaGenerator(bytes, () => this.#total);
    unreadStreams.register(this.meta, { hub, key }, this);
  }

  async #pull(controller) {
    for (;;) {
      this.#signal.throwIfAborted();
      if (this.#reader === null) {
        if (this.#end !== null && this.#offset >= this.#end) {
          unreadStreams.unregister(this);
          controller.close();
          this.#acknowledge(true);
          return;
        }
        await this.#open();
        continue;
      }
      let result;
      try {
        result = await this.#reader.read();
      } catch (error) {
        this.#reader = null;
        await this.#hub.pause(this.#attempt++, this.#signal);
        continue;
      }
      if (result.done) {
        this.#reader = null;
        continue;
      }
      this.#attempt = 0;
      this.#offset += result.value.length;
      if (this.#offset - this.#ackSent >= this.#window / ACKS_PER_WINDOW) this.#acknowledge(false);
      controller.enqueue(result.value);
      return;
    }
  }

  async #open() {
    for (;;) {
      this.#signal.throwIfAborted();
      let response;
      try {
        response = await this.#hub.request(`/streams/down/${this.#key}`,
          { cache: 'no-store' }, this.#signal, { offset: String(this.#offset) });
      } catch (error) {
        this.#signal.throwIfAborted();
        if (error instanceof StateError) throw error;
        await this.#hub.pause(this.#attempt++, this.#signal);
        continue;
      }
      if (response.ok && response.body !== null) {
        this.#readHeaders(response.headers);
        this.#ackSent = Math.max(this.#ackSent, this.#offset);
        this.#reader = response.body.getReader();
        return;
      }
      await failOnStreamStatus(response, this.#key);
      await this.#hub.pause(this.#attempt++, this.#signal);
    }
  }

  #readHeaders(headers) {
    const end = headerNumber(headers, 'Stream-End');
    const total = headerNumber(headers, 'Stream-Total');
    const window = headerNumber(headers, 'Stream-Window');
    if (end !== null) this.#end = end;
    if (total !== null) this.#total = total;
    if (window !== null && window > 0) this.#window = window;
  }

  #acknowledge(final) {
    if (this.#acking && !final) return;
    this.#acking = true;
    const offset = this.#offset;
    const headers = { 'Stream-Offset': String(offset) };
    if (final) headers['Stream-End'] = '1';
    this.#hub.request(`/streams/down/${this.#key}/ack`, { method: this.#hub.method, headers }, this.#signal)
      .then((response) => {
        if (response.ok) this.#ackSent = Math.max(this.#ackSent, offset);
        return response.body?.cancel();
      })
      .catch(() => {})
      .finally(() => {
        this.#acking = false;
      });
  }

  #cancel() {
    this.#own.abort(new StateError('the stream was cancelled by its consumer'));
    this.#reader?.cancel().catch(() => {});
    this.#hub.refuse(this.#key);
  }
}

/**
 * @param {Response} response
 * @param {number} key
 * @returns {Promise<object | null>} the JSON answer of a success; null for a failure worth a retry
 * @throws {StateError} for a failure that no retry can fix
 */
async function readStreamAnswer(response, key) {
  if (response.ok) return response.json().catch(() => null);
  await failOnStreamStatus(response, key);
  return null;
}

/**
 * Throws the error a stream request's failure stands for, unless a retry may fix it.
 *
 * @param {Response} response a failed response
 * @param {number} key
 * @returns {Promise<void>} resolved when the request should be retried
 */
async function failOnStreamStatus(response, key) {
  const text = await response.text().catch(() => '');
  let detail = {};
  try {
    detail = JSON.parse(text) ?? {};
  } catch {
    detail = { message: text.slice(0, 200) };
  }
  const message = typeof detail.message === 'string' ? detail.message : `status ${response.status}`;
  if (response.status === 422 && detail.error === 'stream_error') {
    throw new KernelError(String(detail.name), message);
  }
  if ([400, 401, 403, 404, 410].includes(response.status)) {
    throw new StateError(`stream ${key}: ${message} (${response.status})`);
  }
}

/**
 * @param {Headers} headers
 * @param {string} name
 * @returns {number | null}
 */
function headerNumber(headers, name) {
  const value = headers.get(name);
  if (value === null || !/^[0-9]{1,16}$/.test(value)) return null;
  return Number(value);
}

function reportStreamError(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}
