import { ChunkQueue } from './chunk_queue.js';
import { StateError } from './errors.js';
import { answerRule } from './http.js';
import { ProgressReporter } from './meta_generator.js';
import { base64url } from './query_form.js';
import { STREAM_REQUEST_TIMEOUT_MS, readStreamAnswer, reportStreamError } from './stream_answer.js';
import { HEADERS } from './wire.js';

/** The smallest chunk an upload cuts down to after a 413. */
const MIN_CHUNK_BYTES = 1024;

/**
 * One page -> kernel stream: reads the producer at the kernel's pace and POSTs its bytes in
 * chunks, a few in flight, each retried until the kernel stored it.
 */
export class StreamUpload {
  #hub;
  #source;
  #signal;
  #own = new AbortController();
  #reporter;
  /** bytes read from the producer and not yet sent */
  #queue = new ChunkQueue();
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
        if (producing && next === null && this.#queue.bytes < 2 * this.#hub.chunkBytes) {
          next = iterator.next().then(
            (result) => ({ kind: 'next', result }),
            (error) => ({ kind: 'failed', error }),
          );
        }
        if (!producing && this.#queue.bytes === 0 && this.#inFlight.size === 0) break;
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
    this.#queue.push(this.#produced, bytes);
    this.#produced += bytes.length;
  }

  #launchChunks() {
    const producerDone = this.#ended || this.#failure !== null;
    while (this.#inFlight.size < this.#hub.chunksInFlight && this.#queue.bytes > 0) {
      const limit = this.#hub.pieceBytes(this.key);
      const full = this.#queue.bytes >= limit;
      if (!full && this.#inFlight.size > 0 && !producerDone) return;
      const piece = this.#queue.cut(limit);
      // the last piece ends where the producer ended: a refused (413) middle piece sent again
      // after the last one went empties the queue too, but it is not the end
      piece.last = this.#ended && this.#failure === null && this.#queue.bytes === 0 &&
        piece.offset + piece.bytes.length === this.#produced;
      if (piece.last) this.#lastSent = true;
      const posting = this.#post(piece).then((outcome) => ({ ...outcome, posting }));
      posting.catch(() => {});
      this.#inFlight.set(posting, piece);
    }
  }

  #settle({ kind, posting }) {
    const piece = this.#inFlight.get(posting);
    this.#inFlight.delete(posting);
    if (kind === 'stored') {
      this.#stored += piece.bytes.length;
      this.#reporter.advance(this.#stored);
    } else if (kind === 'split') {
      if (piece.last) this.#lastSent = false;
      this.#queue.putBack(piece);
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
      [HEADERS.streamOffset]: String(piece.offset),
    };
    if (piece.last) headers[HEADERS.streamEnd] = '1';
    if (this.#source.total !== null) headers[HEADERS.streamTotal] = String(this.#source.total);
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
      if (answerRule('stream', response.status).action === 'shrink') {
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
    const headers = { 'Content-Type': 'application/json', [HEADERS.streamOffset]: String(this.#produced) };
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
    return [{ method, headers: { [HEADERS.streamOffset]: headers[HEADERS.streamOffset] } }, { name: fit(name), message: fit(message) }];
  }

  async #postUntilAnswered(path, name, message) {
    const headers = { 'Content-Type': 'application/json', [HEADERS.streamOffset]: String(this.#produced) };
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
