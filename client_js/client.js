import { backoffDelay } from './backoff.js';
import { Channel } from './channel.js';
import { KernelError, StateError } from './errors.js';
import { Inbox, Outbox } from './session.js';
import { createParser } from './sse_parser.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const CLIENT_ID_LENGTH = 22;
const DEFAULT_HEARTBEAT_SECONDS = 15;
const DEFAULT_HEARTBEAT_GRACE = 2;
const DEFAULT_POST_TIMEOUT_SECONDS = 60;
const ENVELOPE_BYTES = 1024;
const INACTIVE_STATES = new Set(['stopped', 'failed']);

const STATUS_RULES = {
  401: ['fail', 'the server refused the token (401): check the token given to start()'],
  409: ['retry', 'another page is connected (409), retrying until it leaves'],
  410: ['resync', 'the server no longer holds this session (410 resync)'],
  413: ['fail', "a message is larger than the server's max_body (413)"],
};

/**
 * @typedef {'connecting' | 'connected' | 'reconnecting' | 'stopped' | 'failed'} ClientState
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] the server's token, sent as `Authorization: Bearer <token>`
 * @property {typeof fetch} [fetch] the fetch implementation (default: globalThis.fetch)
 * @property {number} [heartbeat] seconds between server heartbeats assumed before the first hello
 * @property {number} [heartbeatGrace] heartbeats without a byte after which the stream is dropped
 * @property {number} [postTimeout] seconds after which an unanswered POST is abandoned and retried
 * @property {() => number} [random] source of numbers in [0, 1) for the backoff jitter
 * @property {(milliseconds: number, signal: AbortSignal) => Promise<void>} [sleep] waits before a
 *   retry; must resolve early when `signal` aborts
 * @property {number} [maxMessages] the outbox bound in frames
 * @property {number} [maxBytes] the outbox bound in bytes
 * @property {number} [maxAhead] how far ahead of the inbox cursor frames are held
 * @property {((client: Client) => void) | null} [onstatechange] see `Client#onstatechange`
 */

/**
 * @typedef {object} ClientStats
 * @property {number} sent the last sequence number the page assigned
 * @property {number} acked the last one the kernel acknowledged
 * @property {number} received the page's inbox cursor
 * @property {{messages: number, bytes: number}} outbox the frames not yet acknowledged
 * @property {number} pendingCalls page calls waiting for the kernel's answer
 * @property {number} channels open channels
 */

/**
 * A failed request, with what to do about it: 'retry' later, 'resync' (start a new session) or
 * 'fail' (give up).
 */
class TransportError extends Error {
  /**
   * @param {'retry' | 'resync' | 'fail'} action
   * @param {string} message
   * @param {number | null} [status] the HTTP status, when there was a response
   */
  constructor(action, message, status = null) {
    super(message);
    this.name = 'TransportError';
    this.action = action;
    this.status = status;
  }
}

/**
 * The page end of the channel to one kernel server: an event stream for kernel -> page frames
 * and POST requests for page -> kernel frames.
 */
export class Client {
  static #requestHandlers = {
    open: (client, frame) => client.#openChannel(frame),
    close: (client, frame) => client.#closeChannel(frame),
    echo: (client, frame) => frame.args,
    call: (client, frame) => client.#invokeHandler(frame),
  };

  static #replyHandlers = {
    result: (pending, frame) => pending.resolve(frame.value),
    error: (pending, frame) => pending.reject(new KernelError(frame.name, frame.message)),
  };

  #fetch;
  #token;
  #random;
  #sleep;
  #heartbeat;
  #heartbeatGrace;
  #postTimeout;
  #outbox;
  #inbox;
  /** @type {Map<number, Channel>} */
  #channels = new Map();
  /** @type {Map<number, {resolve: (value: unknown) => void, reject: (error: Error) => void}>} */
  #pending = new Map();
  /** @type {{resolve: (client: Client) => void, reject: (error: Error) => void}[]} */
  #readyWaiters = [];
  #nextCall = 1;
  #epoch = 0;
  #attempt = 0;
  #postAttempt = 0;
  #ackSent = 0;
  #maxBody = Infinity;
  #started = false;
  #flushing = false;
  #stopController = new AbortController();
  /** @type {AbortController | null} */
  #streamController = null;
  /** @type {AbortController | null} */
  #postController = null;
  /** @type {AbortController | null} */
  #flushWake = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #watchdog = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #flushTimer = undefined;
  /** @type {(() => void) | null} */
  #pageHideListener = null;

  /**
   * @param {string} url the server's base URL (one trailing slash is ignored)
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    const {
      token = '',
      fetch = globalThis.fetch,
      heartbeat = DEFAULT_HEARTBEAT_SECONDS,
      heartbeatGrace = DEFAULT_HEARTBEAT_GRACE,
      postTimeout = DEFAULT_POST_TIMEOUT_SECONDS,
      random = Math.random,
      sleep = sleepFor,
      maxMessages,
      maxBytes,
      maxAhead,
      onstatechange = null,
    } = options;
    /** @type {string} */
    this.url = trimTrailingSlash(url);
    /** @type {string} */
    this.id = randomClientId();
    /** @type {ClientState} */
    this.state = 'connecting';
    /** @type {'sse'} */
    this.transport = 'sse';
    /** @type {string | null} */
    this.session = null;
    /** @type {Error | null} */
    this.lastError = null;
    /** @type {((client: Client) => void) | null} called after every change of state or lastError */
    this.onstatechange = onstatechange;
    this.#fetch = async (resource, init) => fetch(resource, init);
    this.#token = token;
    this.#random = random;
    this.#sleep = sleep;
    this.#heartbeat = heartbeat;
    this.#heartbeatGrace = heartbeatGrace;
    this.#postTimeout = postTimeout;
    this.#outbox = new Outbox({ maxMessages, maxBytes });
    this.#inbox = new Inbox({ maxAhead });
  }

  /** @returns {ClientStats} */
  get stats() {
    return {
      sent: this.#outbox.lastSeq,
      acked: this.#outbox.acked,
      received: this.#inbox.cursor,
      outbox: { messages: this.#outbox.size, bytes: this.#outbox.bytes },
      pendingCalls: this.#pending.size,
      channels: this.#channels.size,
    };
  }

  /**
   * Opens the event stream and keeps it open until `stop`. Calling it again does nothing.
   *
   * @returns {void}
   */
  start() {
    if (this.#started || !this.#active) return;
    this.#started = true;
    this.#listenPageHide();
    this.#runStream();
  }

  /**
   * @returns {Promise<Client>} resolved when the client is (or next becomes) connected; rejected
   *   if it is stopped or fails first
   */
  ready() {
    if (this.state === 'connected') return Promise.resolve(this);
    if (!this.#active) return Promise.reject(this.#inactiveError());
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /**
   * Closes the stream, fails the pending page calls with StateError and releases the server.
   *
   * @returns {void}
   */
  stop() {
    if (!this.#active) return;
    const started = this.#started;
    this.#finish('stopped', this.lastError);
    if (started) this.release();
  }

  /**
   * Tells the server that this page is leaving, so that another page may connect at once.
   *
   * @returns {void}
   */
  release() {
    const headers = { Authorization: this.#authorization };
    const init = { method: 'POST', keepalive: true, headers };
    this.#fetch(`${this.url}/release?client=${this.id}`, init).catch(ignoreError);
  }

  /**
   * Sends a call frame of `channel` to the kernel. Used by Channel.
   *
   * @param {Channel} channel
   * @param {string} type 'call' or 'echo'
   * @param {Record<string, unknown>} fields the frame's other fields (`name`, `args`)
   * @returns {Promise<unknown>} the kernel's result; rejected with a KernelError if it raised
   */
  request(channel, type, fields) {
    if (!this.#active) return Promise.reject(new StateError(`the client is ${this.state}`));
    const call = this.#nextCall++;
    const frame = { type, call, channel: channel.key, ...fields };
    return new Promise((resolve, reject) => {
      this.#pending.set(call, { resolve, reject });
      this.#send(frame, this.#epoch).catch((error) => this.#takePending(call)?.reject(error));
    });
  }

  get #active() {
    return !INACTIVE_STATES.has(this.state);
  }

  get #authorization() {
    return `Bearer ${this.#token}`;
  }

  #headers(extra) {
    return { Authorization: this.#authorization, 'ngrok-skip-browser-warning': '1', ...extra };
  }

  #setState(state) {
    this.state = state;
    if (state === 'connected') {
      this.#settleReady((waiter) => waiter.resolve(this));
    } else if (!this.#active) {
      const error = this.#inactiveError();
      this.#settleReady((waiter) => waiter.reject(error));
    }
    if (typeof this.onstatechange !== 'function') return;
    try {
      this.onstatechange(this);
    } catch (error) {
      reportCallbackError(error);
    }
  }

  #settleReady(settle) {
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    waiters.forEach(settle);
  }

  #inactiveError() {
    if (this.state === 'failed' && this.lastError !== null) return this.lastError;
    return new StateError(`the client is ${this.state}`);
  }

  #handleFailure(failure, state) {
    if (failure.action === 'fail') {
      this.#finish('failed', failure);
      return;
    }
    if (failure.action === 'resync') this.#resync(failure.message);
    this.lastError = failure;
    this.#setState(state);
  }

  #resync(reason) {
    this.#epoch += 1;
    const error = new StateError(`the session was reset (resync): ${reason}`);
    this.#rejectPending(error);
    this.#outbox.reset(error);
    this.#inbox.reset();
    this.session = null;
    this.#ackSent = 0;
    this.#streamController?.abort(new TransportError('retry', 'the session was reset'));
  }

  #finish(state, error) {
    this.#epoch += 1;
    this.lastError = error;
    const reason = new StateError(
      state === 'failed' ? `the client failed: ${error.message}` : `the client is ${state}`,
    );
    this.#stopController.abort(reason);
    this.#streamController?.abort(reason);
    this.#postController?.abort(reason);
    this.#flushWake?.abort();
    clearTimeout(this.#watchdog);
    clearTimeout(this.#flushTimer);
    this.#watchdog = undefined;
    this.#flushTimer = undefined;
    this.#rejectPending(reason);
    this.#outbox.reset(reason);
    this.#forgetPageHide();
    this.#setState(state);
  }

  #rejectPending(error) {
    const pending = this.#pending;
    this.#pending = new Map();
    for (const { reject } of pending.values()) reject(error);
  }

  #takePending(call) {
    const pending = this.#pending.get(call);
    this.#pending.delete(call);
    return pending;
  }

  #listenPageHide() {
    if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return;
    this.#pageHideListener = () => this.release();
    window.addEventListener('pagehide', this.#pageHideListener);
  }

  #forgetPageHide() {
    if (this.#pageHideListener === null) return;
    window.removeEventListener('pagehide', this.#pageHideListener);
    this.#pageHideListener = null;
  }

  async #runStream() {
    while (this.#active) {
      const failure = await this.#streamOnce();
      if (!this.#active) return;
      this.#handleFailure(failure, this.state === 'connected' ? 'reconnecting' : this.state);
      if (!this.#active) return;
      await this.#sleep(backoffDelay(this.#attempt++, this.#random), this.#stopController.signal);
    }
  }

  async #streamOnce() {
    const controller = new AbortController();
    this.#streamController = controller;
    this.#armWatchdog(controller);
    try {
      const response = await this.#fetch(this.#eventsUrl(), {
        headers: this.#headers({ Accept: 'text/event-stream' }),
        signal: controller.signal,
        cache: 'no-store',
      });
      await checkResponse(response, 'text/event-stream', this.url);
      await this.#readStream(response, controller);
      return streamOutcome(controller, new TransportError('retry', 'the event stream ended'));
    } catch (error) {
      return streamOutcome(controller, error);
    } finally {
      clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
      this.#streamController = null;
    }
  }

  #eventsUrl() {
    const session = this.session === null ? '' : `&session=${encodeURIComponent(this.session)}`;
    return `${this.url}/events?client=${this.id}&cursor=${this.#inbox.cursor}${session}`;
  }

  #armWatchdog(controller) {
    clearTimeout(this.#watchdog);
    const seconds = this.#heartbeat * this.#heartbeatGrace;
    const silence = new TransportError('retry', `no data from the server for ${seconds} s`);
    this.#watchdog = setTimeout(() => controller.abort(silence), seconds * 1000);
  }

  async #readStream(response, controller) {
    if (response.body === null) return;
    const reader = response.body.getReader();
    const cancel = () => reader.cancel().catch(ignoreError);
    controller.signal.addEventListener('abort', cancel, { once: true });
    const decoder = new TextDecoder();
    const parser = createParser({ onEvent: (event) => this.#onEvent(event, controller) });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || controller.signal.aborted) return;
        this.#armWatchdog(controller);
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      controller.signal.removeEventListener('abort', cancel);
    }
  }

  #onEvent({ type, data }, controller) {
    if (controller.signal.aborted) return;
    if (type === 'hello') {
      this.#onHello(JSON.parse(data), controller);
    } else {
      this.#onFrame(JSON.parse(data));
    }
  }

  #onHello({ session, ack, heartbeat, max_body: maxBody }, controller) {
    if (typeof session !== 'string' || session === '') {
      throw new TransportError('retry', 'the server sent a hello event without a session');
    }
    if (this.session !== null && session !== this.session) {
      const change = `from session ${this.session} to ${session}`;
      throw new TransportError('resync', `the server moved ${change}`);
    }
    this.#checkAck(ack);
    this.session = session;
    if (typeof heartbeat === 'number' && heartbeat > 0) this.#heartbeat = heartbeat;
    if (Number.isSafeInteger(maxBody) && maxBody > ENVELOPE_BYTES) {
      this.#maxBody = maxBody;
      this.#outbox.maxFrameBytes = maxBody - ENVELOPE_BYTES;
    }
    this.#outbox.ack(ack);
    this.#ackSent = Math.max(this.#ackSent, this.#inbox.cursor);
    this.#attempt = 0;
    this.lastError = null;
    this.#armWatchdog(controller);
    this.#setState('connected');
    this.#kickFlush();
  }

  #onFrame(frame) {
    for (const ready of this.#inbox.receive(frame.seq, frame)) this.#dispatch(ready);
    this.#scheduleFlush();
  }

  #dispatch(frame) {
    const { type } = frame;
    if (Object.hasOwn(Client.#requestHandlers, type)) {
      this.#answer(frame, Client.#requestHandlers[type]);
    } else if (Object.hasOwn(Client.#replyHandlers, type)) {
      const pending = this.#takePending(frame.call);
      if (pending !== undefined) Client.#replyHandlers[type](pending, frame);
    }
  }

  async #answer(frame, handler) {
    const epoch = this.#epoch;
    let reply;
    try {
      reply = resultFrame(frame.call, await handler(this, frame));
    } catch (error) {
      reply = errorFrame(frame.call, error);
    }
    try {
      await this.#send(reply, epoch);
    } catch (error) {
      if (epoch !== this.#epoch) return;
      await this.#send(errorFrame(frame.call, error), epoch).catch(ignoreError);
    }
  }

  async #openChannel({ channel: key, code }) {
    const open = evaluateFunction(code);
    const channel = new Channel(this, key);
    this.#channels.get(key)?.detach();
    this.#channels.set(key, channel);
    try {
      return await open(channel);
    } catch (error) {
      if (this.#channels.get(key) === channel) this.#channels.delete(key);
      channel.detach();
      throw error;
    }
  }

  #closeChannel({ channel: key }) {
    this.#channels.get(key)?.detach();
    this.#channels.delete(key);
    return null;
  }

  #invokeHandler({ channel: key, name, args }) {
    const channel = this.#channels.get(key);
    if (channel === undefined) throw new StateError(`no channel ${key} on this page`);
    const { handler } = channel;
    const method = findMethod(handler, name);
    if (method === null) throw new Error(`handler has no method '${name}'`);
    return method.apply(handler, args);
  }

  async #send(frame, epoch) {
    if (epoch !== this.#epoch) return;
    await this.#outbox.enqueue(frame);
    this.#scheduleFlush();
  }

  #scheduleFlush() {
    if (this.#flushTimer !== undefined || !this.#active) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flushLoop();
    }, 0);
  }

  #kickFlush() {
    this.#postAttempt = 0;
    this.#flushWake?.abort();
    this.#scheduleFlush();
  }

  #needsFlush() {
    if (!this.#active || this.session === null) return false;
    return this.#outbox.size > 0 || this.#inbox.cursor > this.#ackSent;
  }

  async #flushLoop() {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#needsFlush()) {
        const failure = await this.#postOnce();
        if (failure === null || !this.#active) continue;
        this.#handleFailure(failure, this.state);
        if (this.#active) await this.#sleepBeforePost();
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #sleepBeforePost() {
    const wake = new AbortController();
    this.#flushWake = wake;
    await this.#sleep(backoffDelay(this.#postAttempt++, this.#random), wake.signal);
    this.#flushWake = null;
  }

  async #postOnce() {
    const epoch = this.#epoch;
    const cursor = this.#inbox.cursor;
    const messages = this.#outbox.batch(this.#maxBody - ENVELOPE_BYTES);
    const lastSent = this.#outbox.acked + messages.length;
    const body =
      `{"client":${JSON.stringify(this.id)},"session":${JSON.stringify(this.session)},` +
      `"ack":${cursor},"messages":[${messages.join(',')}]}`;
    const controller = new AbortController();
    const seconds = this.#postTimeout;
    const timeout = new TransportError('retry', `no answer to a POST within ${seconds} s`);
    const timer = setTimeout(() => controller.abort(timeout), this.#postTimeout * 1000);
    this.#postController = controller;
    try {
      const response = await this.#fetch(`${this.url}/messages`, {
        method: 'POST',
        headers: this.#headers({ 'Content-Type': 'application/json' }),
        body,
        signal: controller.signal,
      });
      await checkResponse(response, 'application/json', this.url);
      const answer = await response.json();
      if (epoch !== this.#epoch) return null;
      this.#applyAck(answer, lastSent);
      this.#ackSent = Math.max(this.#ackSent, cursor);
      this.#postAttempt = 0;
      return null;
    } catch (error) {
      if (epoch !== this.#epoch) return null;
      return toTransportError(controller.signal.aborted ? controller.signal.reason : error);
    } finally {
      clearTimeout(timer);
      this.#postController = null;
    }
  }

  #applyAck(answer, lastSent) {
    const ack = answer?.ack;
    this.#checkAck(ack);
    this.#outbox.ack(ack);
    if (this.#outbox.acked < lastSent) {
      const gap = `acknowledged frame ${ack} of the ${lastSent} sent`;
      throw new TransportError('retry', `the server only ${gap}`);
    }
  }

  #checkAck(ack) {
    if (!Number.isSafeInteger(ack) || ack < 0) {
      throw new TransportError('retry', `the server sent an invalid ack: ${JSON.stringify(ack)}`);
    }
    const sent = this.#outbox.lastSeq;
    if (ack > sent) {
      const beyond = `acknowledged frame ${ack}, beyond the last one sent (${sent})`;
      throw new TransportError('resync', `the server ${beyond}`);
    }
  }
}

/**
 * @param {string} url
 * @returns {string} `url` without one trailing slash
 */
export function trimTrailingSlash(url) {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function randomClientId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(CLIENT_ID_LENGTH));
  return Array.from(bytes, (byte) => ID_ALPHABET[byte & 63]).join('');
}

/**
 * @param {number} milliseconds
 * @param {AbortSignal} signal
 * @returns {Promise<void>} resolved after `milliseconds`, or at once when `signal` aborts
 */
function sleepFor(milliseconds, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, milliseconds);
    signal.addEventListener('abort', done, { once: true });
  });
}

function streamOutcome(controller, error) {
  return toTransportError(controller.signal.aborted ? controller.signal.reason : error);
}

function toTransportError(error) {
  if (error instanceof TransportError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new TransportError('retry', message);
}

async function checkResponse(response, expected, baseUrl) {
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.includes('text/html')) {
    await discardBody(response);
    throw new TransportError(
      'retry',
      `the server answered with an HTML page (status ${response.status}) instead of ${expected}, ` +
        'probably a tunnel warning or login page: ' +
        `open ${baseUrl}/openapi.json once in this browser`,
      response.status,
    );
  }
  if (response.ok && contentType.includes(expected)) return;
  if (response.ok) {
    await discardBody(response);
    const mismatch = `expected ${expected} but got '${contentType}'`;
    throw new TransportError('retry', mismatch, response.status);
  }
  const detail = await errorDetail(response);
  const [action, explanation] = STATUS_RULES[response.status] ?? [
    'retry',
    `the server answered ${response.status}`,
  ];
  const message = detail ? `${explanation}: ${detail}` : explanation;
  throw new TransportError(action, message, response.status);
}

async function errorDetail(response) {
  const text = await response.text().catch(() => '');
  return errorMessageOf(text) ?? text.slice(0, 200);
}

function errorMessageOf(text) {
  try {
    const parsed = JSON.parse(text);
    return typeof parsed?.message === 'string' ? parsed.message : null;
  } catch {
    return null;
  }
}

async function discardBody(response) {
  await response.body?.cancel().catch(ignoreError);
}

function evaluateFunction(code) {
  const value = new Function(`return (${code}\n);`)();
  if (typeof value !== 'function') {
    throw new TypeError('the code of an open frame is not a function');
  }
  return value;
}

function findMethod(handler, name) {
  if (handler === null || handler === undefined) return null;
  const method = handler[name];
  if (typeof method !== 'function' || method === Object.prototype[name]) return null;
  return method;
}

function resultFrame(call, value) {
  return { type: 'result', call, value: value === undefined ? null : value };
}

function errorFrame(call, error) {
  const name = (error !== null && error !== undefined && error.name) || typeof error;
  const message = (error !== null && error !== undefined && error.message) || safeString(error);
  return { type: 'error', call, name: safeString(name), message: safeString(message) };
}

function safeString(value) {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function reportCallbackError(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}

function ignoreError() {}
