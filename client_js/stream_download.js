import { StateError } from './errors.js';
import { MetaGenerator } from './meta_generator.js';
import { failOnStreamStatus } from './stream_answer.js';
import { HEADERS, headerNumber } from './wire.js';

const DEFAULT_STREAM_WINDOW = 8 * 1024 * 1024;
const ACKS_PER_WINDOW = 4;

/** A received stream dropped before it was read to its end is cancelled, stopping its producer. */
const unreadStreams = new FinalizationRegistry(({ hub, key }) => hub.refuse(key));

/**
 * One kernel -> page stream, read with GET requests on the consumer's demand: after a cut the
 * next request starts from the offset the page holds; acknowledgements let the kernel's producer
 * go on.
 */
export class StreamDownload {
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
    const end = headerNumber(headers, HEADERS.streamEnd);
    const total = headerNumber(headers, HEADERS.streamTotal);
    const window = headerNumber(headers, HEADERS.streamWindow);
    if (end !== null) this.#end = end;
    if (total !== null) this.#total = total;
    if (window !== null && window > 0) this.#window = window;
  }

  #acknowledge(final) {
    if (this.#acking && !final) return;
    this.#acking = true;
    const offset = this.#offset;
    const headers = { [HEADERS.streamOffset]: String(offset) };
    if (final) headers[HEADERS.streamEnd] = '1';
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
