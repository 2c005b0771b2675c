import { Channel } from './channel.js';
import { KernelError, MissingMethod, StateError, describeThrown } from './errors.js';
import { isAsyncIterable } from './meta_generator.js';
import { checkSendable } from './sendable.js';
import { MAX_ERROR_TEXT } from './wire.js';

/**
 * @typedef {object} RpcHost what the calls need from the client
 * @property {object} client the Client, which the channels the kernel opens belong to
 * @property {(frame: Record<string, unknown>, epoch: number) => Promise<void>} send enqueues a
 *   frame of session `epoch` (nothing when the session changed since)
 * @property {() => number} epoch the current session's epoch
 * @property {StreamHub} streams
 * @property {() => void} stopSoon the kernel server is stopping: stop the client soon
 */

/**
 * @typedef {object} Pending
 * @property {(value: unknown) => void} resolve
 * @property {(error: Error) => void} reject
 */

/**
 * Calls in both directions: the page's calls waiting for the kernel's answer, the channels
 * the kernel opened on this page, and the dispatch of each kernel frame to what it asks for.
 */
export class Rpc {
  static #requestHandlers = {
    open: (rpc, frame) => rpc.#openChannel(frame),
    close: (rpc, frame) => rpc.#closeChannel(frame),
    echo: (rpc, frame) => frame.args,
    call: (rpc, frame) => rpc.#invokeHandler(frame),
    pipe: (rpc, frame) => rpc.#host.streams.receive(frame.stream),
    stop: (rpc) => rpc.#stopSoon(),
  };

  static #replyHandlers = {
    result: (pending, frame, rpc) =>
      pending.resolve(frame.stream === undefined ? frame.value : rpc.#host.streams.receive(frame.stream)),
    error: (pending, frame) => pending.reject(new KernelError(frame.name, frame.message)),
  };

  /** @type {RpcHost} */
  #host;
  /** @type {Map<number, Channel>} */
  #channels = new Map();
  /** @type {WeakMap<Channel, Promise<unknown>>} what each channel's open code returned */
  #openings = new WeakMap();
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  #nextCall = 1;

  /** @param {RpcHost} host */
  constructor(host) {
    this.#host = host;
  }

  /** @returns {number} page calls waiting for the kernel's answer */
  get pendingCalls() {
    return this.#pending.size;
  }

  /** @returns {number} open channels */
  get channels() {
    return this.#channels.size;
  }

  /**
   * Sends a call frame of `channel` to the kernel.
   *
   * @param {Channel} channel
   * @param {string} type 'call' or 'echo'
   * @param {Record<string, unknown>} fields the frame's other fields (`name`, `args`)
   * @param {AsyncIterable<Uint8Array> | undefined} stream a byte stream sent with the frame
   * @returns {Promise<unknown>} the kernel's result; rejected with a KernelError if it raised
   */
  request(channel, type, fields, stream) {
    try {
      if (fields.name !== undefined && typeof fields.name !== 'string') {
        throw new TypeError(`a method name must be a string, not ${typeof fields.name}`);
      }
      if (fields.args !== undefined) checkSendable(fields.args, 'args');
    } catch (error) {
      return Promise.reject(error); // refused before anything is enqueued
    }
    const call = this.#nextCall++;
    const frame = { type, call, channel: channel.key, ...fields };
    try {
      if (stream !== undefined) frame.stream = this.#host.streams.send(stream);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(call, { resolve, reject });
      this.#host.send(frame, this.#host.epoch()).catch((error) => this.#takePending(call)?.reject(error));
    });
  }

  /**
   * Fails every call waiting for the kernel's answer.
   *
   * @param {Error} error
   */
  rejectPending(error) {
    const pending = this.#pending;
    this.#pending = new Map();
    for (const { reject } of pending.values()) reject(error);
  }

  /**
   * Hands a kernel frame, in order, to what it asks for: a request is answered, a reply
   * settles the page's call.
   *
   * @param {Record<string, any>} frame
   */
  dispatch(frame) {
    const { type } = frame;
    if (Object.hasOwn(Rpc.#requestHandlers, type)) {
      this.#answer(frame, Rpc.#requestHandlers[type]);
    } else if (Object.hasOwn(Rpc.#replyHandlers, type)) {
      const pending = this.#takePending(frame.call);
      if (pending !== undefined) {
        Rpc.#replyHandlers[type](pending, frame, this);
      } else if (frame.stream !== undefined) {
        this.#host.streams.refuse(frame.stream); // nobody reads it: stop its producer
      }
    }
  }

  #takePending(call) {
    const pending = this.#pending.get(call);
    this.#pending.delete(call);
    return pending;
  }

  async #answer(frame, handler) {
    const host = this.#host;
    const epoch = host.epoch();
    let reply;
    try {
      const value = await handler(this, frame);
      reply = isAsyncIterable(value)
        ? { type: 'result', call: frame.call, value: null, stream: host.streams.send(value) }
        : resultFrame(frame.call, value);
    } catch (error) {
      reply = errorFrame(frame.call, error);
    }
    try {
      await host.send(reply, epoch);
    } catch (error) {
      if (epoch !== host.epoch()) return;
      await host.send(errorFrame(frame.call, error), epoch).catch(() => {});
    }
  }

  async #openChannel({ channel: key, code }) {
    const current = this.#channels.get(key);
    const earlier = current === undefined ? undefined : this.#openings.get(current);
    // Opening a channel open on this page does not run its code again (as in
    // jupyter-jchannel): the answer is what its first run returned.
    if (earlier !== undefined) return await earlier;
    const open = evaluateFunction(code);
    const channel = new Channel(this.#host.client, key);
    current?.detach();
    this.#channels.set(key, channel);
    const opening = (async () => open(channel))();
    this.#openings.set(channel, opening);
    try {
      return await opening;
    } catch (error) {
      this.#openings.delete(channel);
      if (this.#channels.get(key) === channel) this.#channels.delete(key);
      channel.detach();
      throw error;
    }
  }

  /** The kernel server is stopping: stop too, rather than retry a server that is gone. */
  #stopSoon() {
    this.#host.stopSoon();
    return null;
  }

  #closeChannel({ channel: key }) {
    this.#channels.get(key)?.detach();
    this.#channels.delete(key);
    return null;
  }

  #invokeHandler({ channel: key, name, args, stream }) {
    const received = stream === undefined ? undefined : this.#host.streams.receive(stream);
    const channel = this.#channels.get(key);
    if (channel === undefined) throw new StateError(`no channel ${key} on this page`);
    const { handler } = channel;
    const method = findMethod(handler, name);
    return method.apply(handler, received === undefined ? args : [received, ...args]);
  }
}

/**
 * The function that the code of an open frame stands for. Code that is one expression (the
 * usual `(channel) => {...}`) is its value; any other code is run as a script by the global
 * (indirect) eval, as jupyter-jchannel does, and its completion value (the value of its last
 * expression statement: statements may come before it, a `;` may end it) is the function.
 *
 * @param {string} code
 * @returns {Function}
 * @throws {TypeError} when the code's value is not a function (naming what it is); SyntaxError
 *   when it is no script
 */
export function evaluateFunction(code) {
  let expression = null;
  try {
    expression = new Function(`return (${code}\n);`);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  const value = expression === null ? globalThis.eval(code) : expression();
  if (typeof value !== 'function') {
    throw new TypeError(
      'the code given to open() must evaluate to a function taking the channel, ' +
        `e.g. \`(channel) => { ... }\`, but it evaluated to ${describeValue(value)}`,
    );
  }
  return value;
}

/**
 * @param {unknown} value what open code evaluated to
 * @returns {string} its kind, and a short form of it where it has one: `a number (42)`
 */
function describeValue(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined (the code has no value)';
  if (Array.isArray(value)) return 'an array';
  const kind = typeof value;
  if (kind === 'object') return 'an object';
  if (kind === 'symbol' || kind === 'bigint') return `a ${kind}`;
  const shown = kind === 'string' ? JSON.stringify(value) : String(value);
  return `a ${kind} (${shown.length > 40 ? `${shown.slice(0, 40)}...` : shown})`;
}

/**
 * @param {unknown} handler a channel's handler
 * @param {string} name the called method's
 * @returns {Function} the method
 * @throws {MissingMethod} with the kernel's words for each case
 */
function findMethod(handler, name) {
  if (handler === null || handler === undefined) {
    throw new MissingMethod(`the channel has no handler, so it has no method '${name}'`);
  }
  const method = handler[name];
  if (typeof method !== 'function' || method === Object.prototype[name]) {
    throw new MissingMethod(`handler has no method '${name}'`);
  }
  return method;
}

/**
 * @param {number} call
 * @param {unknown} value a handler's result; `undefined` becomes null
 * @returns {Record<string, unknown>} the result frame
 * @throws {TypeError} when JSON cannot carry `value` faithfully (see sendable.js)
 */
export function resultFrame(call, value) {
  checkSendable(value, 'result');
  return { type: 'result', call, value: value === undefined ? null : value };
}

/**
 * @param {number} call
 * @param {unknown} error whatever was thrown
 * @returns {Record<string, unknown>} the error frame; never throws
 */
export function errorFrame(call, error) {
  const { name, message } = describeThrown(error);
  return { type: 'error', call, name: clip(name), message: clip(message) };
}

/**
 * @param {string} text
 * @returns {string} `text`, cut after MAX_ERROR_TEXT characters (so that an error frame always
 *   fits in a POST)
 */
function clip(text) {
  if (text.length <= MAX_ERROR_TEXT) return text;
  const end = /[\ud800-\udbff]/.test(text[MAX_ERROR_TEXT - 1]) ? MAX_ERROR_TEXT - 1 : MAX_ERROR_TEXT;
  return `${text.slice(0, end)}... (${text.length - end} more characters)`;
}
