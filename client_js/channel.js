import { StateError } from './errors.js';

/**
 * @callback RequestFunction sends a call frame for `channel` and settles with the kernel's answer
 * @param {Channel} channel
 * @param {string} type
 * @param {Record<string, unknown>} fields
 * @param {AsyncIterable<Uint8Array>} [stream] a byte stream sent with the frame
 * @returns {Promise<unknown>}
 */

/**
 * @typedef {object} ChannelRequester
 * @property {RequestFunction} request
 */

/**
 * The page side of a channel opened by the kernel.
 *
 * The kernel calls methods of `handler`; the page calls the kernel's handler with `call`.
 */
export class Channel {
  /** @type {ChannelRequester} */
  #client;
  /** @type {number} */
  #key;
  /** @type {object | null} */
  #handler = null;
  #closed = false;

  /**
   * @param {ChannelRequester} client
   * @param {number} key the key the kernel chose for the channel
   */
  constructor(client, key) {
    this.#client = client;
    this.#key = key;
  }

  /** @returns {number} the key the kernel chose for the channel */
  get key() {
    return this.#key;
  }

  /** @returns {boolean} whether the kernel closed the channel */
  get closed() {
    return this.#closed;
  }

  /** @returns {object | null} the object whose methods the kernel calls */
  get handler() {
    return this.#handler;
  }

  /** @param {object | null} value */
  set handler(value) {
    this.#handler = value;
  }

  /**
   * Calls method `name` of the kernel-side handler.
   *
   * @param {string} name
   * @param {...unknown} args JSON values
   * @returns {Promise<unknown>} the method's result; rejected with a KernelError if it raised
   */
  call(name, ...args) {
    return this.#request('call', { name, args });
  }

  /**
   * Calls method `name` of the kernel-side handler with a byte stream as its first argument (the
   * Python method receives a MetaGenerator).
   *
   * @param {string} name
   * @param {AsyncIterable<Uint8Array>} stream an async iterable of Uint8Array, or a StreamSource
   * @param {...unknown} args JSON values
   * @returns {Promise<unknown>} the method's result; rejected with a KernelError if it raised
   */
  callWithStream(name, stream, ...args) {
    return this.#request('call', { name, args }, stream);
  }

  /**
   * Sends a byte stream through the kernel and back.
   *
   * @param {AsyncIterable<Uint8Array>} stream an async iterable of Uint8Array, or a StreamSource
   * @returns {Promise<MetaGenerator>} the same bytes, received
   */
  pipe(stream) {
    return /** @type {Promise<MetaGenerator>} */ (
      this.#request('pipe', {}, stream));
  }

  /**
   * Sends `args` to the kernel and back.
   *
   * @param {...unknown} args JSON values
   * @returns {Promise<unknown[]>} `args` as the kernel received them
   */
  echo(...args) {
    return /** @type {Promise<unknown[]>} */ (this.#request('echo', { args }));
  }

  /** Marks the channel closed: later calls reject with a StateError. */
  detach() {
    this.#closed = true;
  }

  #request(type, fields, stream = undefined) {
    if (this.#closed) {
      return Promise.reject(new StateError(`channel ${this.#key} is closed`));
    }
    return this.#client.request(this, type, fields, stream);
  }
}
