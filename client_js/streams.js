import { backoffDelay } from './backoff.js';
import { StateError } from './errors.js';
import { answerDetail, answerRule } from './http.js';
import { toStreamSource } from './meta_generator.js';
import { bytesFitting } from './query_form.js';
import { STREAM_REQUEST_TIMEOUT_MS } from './stream_answer.js';
import { StreamDownload } from './stream_download.js';
import { StreamUpload } from './stream_upload.js';

const DEFAULT_CHUNK_BYTES = 512 * 1024;
const DEFAULT_CHUNKS_IN_FLIGHT = 4;

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
    const text = await response.clone().text().catch(() => '');
    const { code } = answerDetail(text);
    if (answerRule('stream', response.status, code).action !== 'check') return false;
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
