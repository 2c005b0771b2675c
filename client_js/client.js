import { StateError } from './errors.js';
import { Connection } from './connection.js';
import { Path } from './path.js';
import { Receiver } from './receiver.js';
import { Rpc } from './rpc.js';
import { Sender } from './sender.js';
import { StreamHub } from './streams.js';
import { DEFAULT_REMEMBER_SECONDS, TransportMemory, tabStorage } from './transport_memory.js';
import { TRANSPORTS, transportCandidates } from './transports.js';
import { DEFAULT_MAX_URL, SEND_METHODS } from './wire.js';

const DEFAULT_HEARTBEAT_SECONDS = 15;
const DEFAULT_HEARTBEAT_GRACE = 2;
const DEFAULT_POST_TIMEOUT_SECONDS = 60;
const DEFAULT_FIRST_EVENT_DEADLINE_SECONDS = 3;
const DEFAULT_UPGRADE_INTERVAL_SECONDS = 300;
const INACTIVE_STATES = new Set(['stopped', 'failed']);

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
 * @property {'sse-get' | 'sse-post' | 'poll' | null} [transport] use only this transport; by
 *   default each is tried in turn ('sse-get', 'sse-post', 'poll') and the first that works is kept
 *   (until upgradeInterval, when the better ones are tried again)
 * @property {number} [firstEventDeadline] seconds within which an event stream's first event
 *   should arrive; past it the client asks the server for its `/status`: when that is answered
 *   and the first event is still missing, a proxy buffers the stream and the client tries the next
 *   transport; when it is not (the kernel is busy or unreachable), the client keeps waiting on
 *   this transport
 * @property {number} [upgradeInterval] seconds after which a client that moved down to a lesser
 *   transport tries the better ones again (default 300); it moves back up when they work
 * @property {'post' | 'get' | null} [sendMethod] how frames and upload chunks go to the kernel:
 *   'post' (request bodies) or 'get' (in the query); by default POST until a path refuses it
 *   while the server answers GET, then GET
 * @property {number} [maxUrl] the most characters of a URL built to send over GET (default 8000;
 *   the server's hello may say otherwise); longer batches and chunks are split
 * @property {number} [rememberTransport] seconds for which a tab remembers the transport and the
 *   send method that worked for this server (in sessionStorage, by origin and path), so that a
 *   reload connects on them at once instead of probing; past it the page probes again, and a
 *   remembered transport that fails is forgotten (default 600; 0 turns the memory off). Unused
 *   when `transport` is given
 * @property {{getItem: Function, setItem: Function, removeItem: Function} | null} [storage] where
 *   that memory is kept (default: the tab's sessionStorage)
 * @property {() => number} [now] the clock, in milliseconds (default: Date.now)
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
 * The page end of the channel to one kernel server, composed of one part per job: the
 * receiver (kernel -> page frames over one of the transports of transports.js, failover and
 * watchdogs: receiver.js), the sender (page -> kernel frames in batches, acknowledgements:
 * sender.js), the calls (rpc.js), the streams (streams.js) and what the path lets through
 * (path.js). The client itself holds the state machine and the page's lifecycle.
 */
export class Client {
  /** @type {Connection} */
  #conn;
  /** @type {Path} */
  #path;
  /** @type {Receiver} */
  #receiver;
  /** @type {Sender} */
  #sender;
  /** @type {Rpc} */
  #rpc;
  /** @type {StreamHub} */
  #streams;
  /** @type {TransportMemory} */
  #memory;
  /** @type {string | null} what the memory holds now, as 'transport method' */
  #remembered = null;
  /** @type {{resolve: (client: Client) => void, reject: (error: Error) => void}[]} */
  #readyWaiters = [];
  #started = false;
  #stopController = new AbortController();
  /** @type {(() => void) | null} */
  #pageHideListener = null;
  /** @type {(() => void) | null} */
  #pageShowListener = null;
  /** @type {(() => void) | null} resolves the wait of a hidden page's stream loop */
  #shown = null;

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
      transport = null,
      firstEventDeadline = DEFAULT_FIRST_EVENT_DEADLINE_SECONDS,
      upgradeInterval = DEFAULT_UPGRADE_INTERVAL_SECONDS,
      now = Date.now,
      random = Math.random,
      sleep = sleepFor,
      maxMessages,
      maxBytes,
      maxAhead,
      sendMethod = null,
      maxUrl = DEFAULT_MAX_URL,
      rememberTransport = DEFAULT_REMEMBER_SECONDS,
      storage = tabStorage(),
      onstatechange = null,
    } = options;
    if (sendMethod !== null && !SEND_METHODS.includes(sendMethod)) {
      throw new RangeError(`unknown sendMethod '${sendMethod}': use 'post', 'get' or leave it unset`);
    }
    let candidates = transportCandidates(transport);
    if (sendMethod === 'get' && transport === null) {
      candidates = candidates.filter((name) => TRANSPORTS[name].method === 'GET');
    }
    /** @type {string} */
    this.url = trimTrailingSlash(url);
    /** @type {ClientState} */
    this.state = 'connecting';
    /** @type {Error | null} */
    this.lastError = null;
    /** @type {((client: Client) => void) | null} called after every change of state or lastError */
    this.onstatechange = onstatechange;
    const conn = new Connection({
      url: this.url, token, fetch, sleep, random, now, maxUrl,
      stopSignal: this.#stopController.signal,
      bounds: { maxMessages, maxBytes, maxAhead },
    });
    if (sendMethod !== null) {
      conn.sendMethod = sendMethod;
      conn.sendForced = true;
    }
    this.#conn = conn;
    this.#memory = new TransportMemory({
      storage: transport === null ? storage : null, url: this.url, now, seconds: rememberTransport,
    });
    const remembered = this.#recall(candidates);
    this.#path = new Path(conn, {
      note: (error) => this.#note(error),
      deadline: () => this.#receiver.firstEventDeadline,
    });
    this.#streams = new StreamHub({
      fetch: (resource, init) => conn.fetch(resource, init),
      url: this.url,
      headers: (extra) => conn.headers(extra),
      session: () => conn.session,
      sleep,
      random,
      method: () => conn.sendMethod,
      room: (resource) => conn.room(resource),
      refused: (error) => this.#path.checkRefusal(error),
    });
    this.#sender = new Sender(conn, {
      active: () => this.#active,
      state: () => this.state,
      handleFailure: (failure, state) => this.#handleFailure(failure, state),
      onFrame: (frame) => this.#onFrame(frame),
      path: this.#path,
      postTimeout,
    });
    this.#receiver = new Receiver(conn, {
      active: () => this.#active,
      state: () => this.state,
      lastError: () => this.lastError,
      note: (error) => this.#note(error),
      setState: (state, error) => {
        if (error !== undefined) this.lastError = error;
        this.#setState(state);
      },
      handleFailure: (failure, state) => this.#handleFailure(failure, state),
      whileHidden: () => this.#whileHidden(),
      onFrame: (frame) => this.#onFrame(frame),
      sender: this.#sender,
      path: this.#path,
      worked: (name) => this.#rememberWorking(name),
      forget: () => {
        this.#remembered = null;
        this.#memory.forget();
      },
    }, { candidates, heartbeat, heartbeatGrace, firstEventDeadline, upgradeInterval, remembered });
    this.#rpc = new Rpc({
      client: this,
      send: (frame, epoch) => this.#sender.send(frame, epoch),
      epoch: () => conn.epoch,
      streams: this.#streams,
      stopSoon: () => this.#stopSoon(),
    });
  }

  /** @returns {string} this page's client id */
  get id() {
    return this.#conn.id;
  }

  /** @returns {string | null} the session, once a hello named it */
  get session() {
    return this.#conn.session;
  }

  /** @returns {string} the transport in use, or being tried: 'sse-get', 'sse-post' or 'poll' */
  get transport() {
    return this.#receiver.transport;
  }

  /** @returns {'post' | 'get'} how frames and upload chunks go to the kernel now */
  get sendMethod() {
    return this.#conn.sendMethod;
  }

  /** @returns {ClientStats} */
  get stats() {
    const { outbox, inbox } = this.#conn;
    return {
      sent: outbox.lastSeq,
      acked: outbox.acked,
      received: inbox.cursor,
      outbox: { messages: outbox.size, bytes: outbox.bytes },
      pendingCalls: this.#rpc.pendingCalls,
      channels: this.#rpc.channels,
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
    this.#receiver.run();
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
    const conn = this.#conn;
    const method = conn.sendMethod === 'get' ? 'GET' : 'POST';
    const init = { method, keepalive: true, headers: conn.headers() };
    conn.fetch(`${this.url}/release?client=${conn.id}`, init).catch(() => {});
  }

  /**
   * Sends a call frame of `channel` to the kernel. Used by Channel.
   *
   * @param {Channel} channel
   * @param {string} type 'call' or 'echo'
   * @param {Record<string, unknown>} fields the frame's other fields (`name`, `args`)
   * @param {AsyncIterable<Uint8Array>} [stream] a byte stream sent with the frame (see streams.js)
   * @returns {Promise<unknown>} the kernel's result; rejected with a KernelError if it raised
   */
  request(channel, type, fields, stream = undefined) {
    if (!this.#active) return Promise.reject(new StateError(`the client is ${this.state}`));
    return this.#rpc.request(channel, type, fields, stream);
  }

  get #active() {
    return !INACTIVE_STATES.has(this.state);
  }

  /**
   * @param {string[]} candidates
   * @returns {string | null} the transport this tab remembers for the server, if it may be used
   *   (the send method it remembers is taken too, unless sendMethod was given)
   */
  #recall(candidates) {
    const known = this.#memory.recall();
    if (known === null || candidates.length < 2 || !candidates.includes(known.transport)) return null;
    const conn = this.#conn;
    const method = conn.sendForced ? conn.sendMethod : known.sendMethod;
    if (method === 'get' && TRANSPORTS[known.transport].method !== 'GET') return null;
    conn.sendMethod = method;
    this.#remembered = `${known.transport} ${known.sendMethod}`;
    return known.transport;
  }

  #rememberWorking(transport) {
    const now = `${transport} ${this.#conn.sendMethod}`;
    if (now === this.#remembered) return;
    this.#remembered = now;
    this.#memory.remember(transport, this.#conn.sendMethod);
  }

  #note(error) {
    this.lastError = error;
    this.#setState(this.state);
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
    if (failure.action === 'stop') {
      this.#finish('failed', failure);
      return;
    }
    if (failure.action === 'resync') this.#resync(failure.message);
    this.lastError = failure;
    this.#setState(state);
  }

  #resync(reason) {
    const conn = this.#conn;
    conn.epoch += 1;
    const error = new StateError(`the session was reset (resync): ${reason}`);
    this.#rpc.rejectPending(error);
    conn.outbox.reset(error);
    conn.inbox.reset();
    conn.session = null;
    conn.ackSent = 0;
    this.#sender.reset();
    this.#streams.reset(error);
    this.#receiver.resetSession();
  }

  #finish(state, error) {
    this.#conn.epoch += 1;
    this.lastError = error;
    const reason = new StateError(
      state === 'failed' ? `the client failed: ${error.message}` : `the client is ${state}`,
    );
    this.#stopController.abort(reason);
    this.#receiver.stop(reason);
    this.#sender.stop(reason);
    this.#rpc.rejectPending(reason);
    this.#conn.outbox.reset(reason);
    this.#streams.reset(reason);
    this.#forgetPageHide();
    this.#setState(state);
  }

  #onFrame(frame) {
    for (const ready of this.#conn.inbox.receive(frame.seq, frame)) this.#rpc.dispatch(ready);
    this.#sender.scheduleFlush();
  }

  /** The kernel server is stopping: stop too, rather than retry a server that is gone. */
  #stopSoon() {
    setTimeout(() => {
      this.lastError = new StateError('the kernel server was stopped');
      this.stop();
    }, 0);
  }

  #listenPageHide() {
    if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return;
    this.#pageHideListener = () => {
      this.#conn.hidden = true; // a request after the release would take the server back
      this.release();
    };
    this.#pageShowListener = () => {
      if (!this.#conn.hidden) return;
      this.#conn.hidden = false; // back from the back/forward cache
      this.#shown?.();
      this.#sender.kickFlush();
    };
    window.addEventListener('pagehide', this.#pageHideListener);
    window.addEventListener('pageshow', this.#pageShowListener);
  }

  /** @returns {Promise<void>} resolved when a hidden page is shown again, or the client stops */
  #whileHidden() {
    return new Promise((resolve) => {
      this.#shown = () => {
        this.#shown = null;
        resolve();
      };
      this.#stopController.signal.addEventListener('abort', () => this.#shown?.(), { once: true });
    });
  }

  #forgetPageHide() {
    if (this.#pageHideListener === null) return;
    window.removeEventListener('pagehide', this.#pageHideListener);
    window.removeEventListener('pageshow', this.#pageShowListener);
    this.#pageHideListener = null;
    this.#pageShowListener = null;
    this.#shown?.();
  }
}

/**
 * @param {string} url
 * @returns {string} `url` without one trailing slash
 */
export function trimTrailingSlash(url) {
  return url.endsWith('/') ? url.slice(0, -1) : url;
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

function reportCallbackError(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}
