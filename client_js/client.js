import { backoffDelay } from './backoff.js';
import { Channel } from './channel.js';
import { KernelError, StateError, describeThrown } from './errors.js';
import { isAsyncIterable } from './meta_generator.js';
import { checkSendable } from './sendable.js';
import { REFUSAL_STATUSES, base64urlText, resolvedExtra } from './query_form.js';
import { Inbox, Outbox } from './session.js';
import { StreamHub } from './streams.js';
import { TRANSPORTS, transportCandidates } from './transports.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const CLIENT_ID_LENGTH = 22;
const DEFAULT_HEARTBEAT_SECONDS = 15;
const DEFAULT_HEARTBEAT_GRACE = 2;
const DEFAULT_POST_TIMEOUT_SECONDS = 60;
const DEFAULT_FIRST_EVENT_DEADLINE_SECONDS = 3;
const DEFAULT_POLL_HOLD_SECONDS = 25;
const DEFAULT_UPGRADE_INTERVAL_SECONDS = 300;
const DEFAULT_MAX_URL = 8000;
const SEND_METHODS = new Set(['post', 'get']);
/** The fewest bytes of frames a page asks an answer to carry after a path cut a larger one. */
const MIN_ANSWER_BYTES = 1024;
/** How far apart, as a fraction, two cuts may be and still count as one limit of the path. */
const CUT_TOLERANCE = 0.1;
const BATCH_ID_LENGTH = 12;
/** Odd answers to POST in a row (while /status answers) after which POST counts as refused. */
const ODD_ANSWERS_BEFORE_REFUSAL = 3;
/** Silences after a hello, each while the server answered a probe, after which a stream moves on. */
const SILENCES_BEFORE_ADVANCE = 2;
/** The most milliseconds a first event may trail the answer to a probe sent after it. */
const MAX_PROBE_GRACE_MS = 1000;
const HOLD_CUT_SECONDS = 2;
const HOLD_SHRINK = 0.75;
const MIN_HOLD_SECONDS = 1;
const ENVELOPE_BYTES = 1024;
const MAX_ERROR_TEXT = 16 * 1024;
const INACTIVE_STATES = new Set(['stopped', 'failed']);

// Every status here either changes what the next request says or ends the retries: a status
// retried with the same request (the default, for transient ones: 429, 5xx, ...) must be one
// that can pass by itself. A 400 is not: the kernel refused the request as it is (a frame it
// cannot parse), and sending it again would be refused again, forever.
const STATUS_RULES = {
  400: ['resync', 'the server refused a request (400 bad_request), so the session starts over'],
  401: ['fail', 'the server refused the token (401): check the token given to start()'],
  409: ['retry', 'another page is connected (409), retrying until it leaves'],
  410: ['resync', 'the server no longer holds this session (410 resync)'],
  413: ['fail', "a message is larger than the server's max_body (413)"],
  // the kernel server's own answer to a bug it hit handling the request: the same request would
  // hit it again (a 500 from a proxy, without this code, is retried)
  '500 internal_error': ['resync', 'the server failed on a request (500 internal_error), so the session starts over'],
};

const RECEIVE_STATUS_RULES = {
  ...STATUS_RULES,
  404: ['advance', 'this transport is not served here (404)'],
  405: ['advance', 'this transport is not allowed here (405)'],
  501: ['advance', 'this transport is not implemented here (501)'],
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
 * A failed request, with what to do about it: 'retry' later, 'resync' (start a new session),
 * 'advance' (try the next transport; retry when there is none), 'upgrade' (a planned end: try
 * the best transport again), 'refused' (the path refuses POST: send over GET) or 'fail' (give up).
 */
class TransportError extends Error {
  /**
   * @param {'retry' | 'resync' | 'advance' | 'upgrade' | 'fail' | 'refused'} action 'refused':
   *   the path refuses the request's method (POST)
   * @param {string} message
   * @param {number | null} [status] the HTTP status, when there was a response
   */
  constructor(action, message, status = null) {
    super(message);
    this.name = 'TransportError';
    this.action = action;
    this.status = status;
    /** @type {boolean} whether the error answer came from the path, not the kernel server */
    this.foreign = false;
    /** @type {number | null} bytes of a success that arrived before the path cut it */
    this.cutAt = null;
    /** @type {boolean} whether an event stream fell silent after its hello */
    this.silentAfterHello = false;
  }
}

/**
 * @param {TransportError} error
 * @returns {TransportError} `error`, marked as the silence of a stream after its hello
 */
function silentAfterHello(error) {
  error.silentAfterHello = true;
  return error;
}

/**
 * The page end of the channel to one kernel server: kernel -> page frames arrive over one of the
 * transports of transports.js (an event stream, or long-poll), page -> kernel frames go in POST
 * requests.
 */
export class Client {
  static #requestHandlers = {
    open: (client, frame) => client.#openChannel(frame),
    close: (client, frame) => client.#closeChannel(frame),
    echo: (client, frame) => frame.args,
    call: (client, frame) => client.#invokeHandler(frame),
    pipe: (client, frame) => client.#streams.receive(frame.stream),
    stop: (client) => client.#stopSoon(),
  };

  static #replyHandlers = {
    result: (pending, frame, client) =>
      pending.resolve(frame.stream === undefined ? frame.value : client.#streams.receive(frame.stream)),
    error: (pending, frame) => pending.reject(new KernelError(frame.name, frame.message)),
  };

  #fetch;
  #token;
  #random;
  #sleep;
  #heartbeat;
  #heartbeatGrace;
  #postTimeout;
  #firstEventDeadline;
  #upgradeInterval;
  #now;
  /** @type {string[]} the transports this client may use, in order */
  #candidates;
  #candidate = 0;
  /** @type {number | null} seconds a poll may be held, once a proxy cut a longer one short */
  #pollHold = null;
  #serverHold = DEFAULT_POLL_HOLD_SECONDS;
  #helloSeen = false;
  /** @type {'post' | 'get'} */
  #sendMethod = 'post';
  #sendForced = false;
  #maxUrl = DEFAULT_MAX_URL;
  #urlExtra = 0;
  /** @type {{id: string, text: string, have: number, lastSent: number} | null} a GET batch */
  #parts = null;
  /** @type {number | null} most bytes of frames per answer, once a path cut a larger one */
  #answerBytes = null;
  /** @type {number | null} where the latest answer was cut */
  #lastCut = null;
  /** @type {Promise<boolean> | null} a check of a refused POST under way */
  #refusalCheck = null;
  /** odd answers to POSTs in a row while the server answered GET /status */
  #oddAnswers = 0;
  /** @type {string | null} the transport of the latest hello */
  #helloTransport = null;
  /** silences after a hello in a row, on this transport, while the server answered a probe */
  #silences = 0;
  #outbox;
  #inbox;
  /** @type {StreamHub} */
  #streams;
  /** @type {Map<number, Channel>} */
  #channels = new Map();
  /** @type {WeakMap<Channel, Promise<unknown>>} what each channel's open code returned */
  #openings = new WeakMap();
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
  /** @type {number} a body size the path refused (413): later bodies stay under it */
  #pathBodyCap = Infinity;
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
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #firstEventTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #upgradeTimer = undefined;
  /** @type {(() => void) | null} */
  #pageHideListener = null;
  /** @type {(() => void) | null} */
  #pageShowListener = null;
  /** whether the page was hidden (it released the server): it sends nothing until shown again */
  #hidden = false;
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
      onstatechange = null,
    } = options;
    if (sendMethod !== null && !SEND_METHODS.has(sendMethod)) {
      throw new RangeError(`unknown sendMethod '${sendMethod}': use 'post', 'get' or leave it unset`);
    }
    /** @type {string} */
    this.url = trimTrailingSlash(url);
    /** @type {string} */
    this.id = randomClientId();
    /** @type {ClientState} */
    this.state = 'connecting';
    this.#candidates = transportCandidates(transport);
    if (sendMethod !== null) {
      this.#sendMethod = sendMethod;
      this.#sendForced = true;
    }
    if (sendMethod === 'get' && transport === null) {
      this.#candidates = this.#candidates.filter((name) => TRANSPORTS[name].method === 'GET');
    }
    if (Number.isSafeInteger(maxUrl) && maxUrl >= 1024) this.#maxUrl = maxUrl;
    /** @type {string} the transport in use, or being tried: 'sse-get', 'sse-post' or 'poll' */
    this.transport = this.#candidates[0];
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
    this.#firstEventDeadline = firstEventDeadline;
    this.#upgradeInterval = upgradeInterval;
    this.#now = now;
    this.#urlExtra = resolvedExtra(this.url);
    this.#outbox = new Outbox({ maxMessages, maxBytes });
    this.#inbox = new Inbox({ maxAhead });
    this.#streams = new StreamHub({
      fetch: (resource, init) => this.#fetch(resource, init),
      url: this.url,
      headers: (extra) => this.#headers(extra),
      session: () => this.session,
      sleep: this.#sleep,
      random: this.#random,
      method: () => this.#sendMethod,
      room: (url) => this.#maxUrl - url.length - this.#urlExtra,
      refused: (error) => this.#checkRefusal(error),
    });
  }

  /** @returns {'post' | 'get'} how frames and upload chunks go to the kernel now */
  get sendMethod() {
    return this.#sendMethod;
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
    const method = this.#sendMethod === 'get' ? 'GET' : 'POST';
    const init = { method, keepalive: true, headers: this.#headers() };
    this.#fetch(`${this.url}/release?client=${this.id}`, init).catch(ignoreError);
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
      if (stream !== undefined) frame.stream = this.#streams.send(stream);
    } catch (error) {
      return Promise.reject(error);
    }
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
    const headers = {
      Authorization: this.#authorization,
      'ngrok-skip-browser-warning': '1',
      ...extra,
    };
    const xsrf = sameOriginXsrfToken(this.url);
    if (xsrf !== null) headers['X-XSRFToken'] = xsrf;
    return headers;
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
    this.#parts = null;
    this.#streams.reset(error);
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
    clearTimeout(this.#firstEventTimer);
    clearTimeout(this.#upgradeTimer);
    this.#watchdog = undefined;
    this.#flushTimer = undefined;
    this.#firstEventTimer = undefined;
    this.#upgradeTimer = undefined;
    this.#rejectPending(reason);
    this.#outbox.reset(reason);
    this.#streams.reset(reason);
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
    this.#pageHideListener = () => {
      this.#hidden = true; // a request after the release would take the server back
      this.release();
    };
    this.#pageShowListener = () => {
      if (!this.#hidden) return;
      this.#hidden = false; // back from the back/forward cache
      this.#shown?.();
      this.#kickFlush();
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

  async #runStream() {
    while (this.#active) {
      if (this.#hidden) {
        await this.#whileHidden();
        continue;
      }
      let { failure, reconnectAfter } = await this.#receiveOnce();
      if (!this.#active) return;
      if (failure === null) {
        if (reconnectAfter > 0) await this.#sleep(reconnectAfter, this.#stopController.signal);
        else await nextTask(); // so that a POST of what the answer caused goes out first
        continue;
      }
      if (failure.action === 'upgrade') {
        this.#upgradeTransport();
        continue;
      }
      if (failure.silentAfterHello) failure = await this.#judgeSilence(failure);
      else if (failure.action === 'retry' && isRefusal(failure)) {
        failure = await this.#explain(failure, TRANSPORTS[this.transport].method);
      } else if (failure.action === 'retry' && failure.status === null && failure.cutAt === null) {
        failure = await this.#explainLoss(failure);
      }
      if (!this.#active) return;
      if (failure.cutAt !== null && this.#shrinkAnswers(failure)) continue;
      if (failure.action === 'refused') failure = this.#refusedPost(failure, true);
      if (failure.action === 'advance' && this.#advanceTransport(failure)) continue;
      this.#handleFailure(failure, this.state === 'connected' ? 'reconnecting' : this.state);
      if (!this.#active) return;
      await this.#sleep(backoffDelay(this.#attempt++, this.#random), this.#stopController.signal);
    }
  }

  /**
   * One request of the current transport, read to its end.
   *
   * @returns {Promise<{failure: TransportError | null, reconnectAfter: number | null}>}
   */
  async #receiveOnce() {
    const transport = TRANSPORTS[this.transport];
    const controller = new AbortController();
    const startedAt = this.#now();
    this.#streamController = controller;
    this.#helloSeen = false;
    this.#armFirstEvent(controller, transport);
    this.#armWatchdog(controller);
    try {
      const link = this.#receiveLink(controller);
      const { reconnectAfter } = await transport.receive(link, controller.signal);
      if (reconnectAfter !== null && !controller.signal.aborted) {
        return { failure: null, reconnectAfter };
      }
      const ended = new TransportError('retry', 'the event stream ended');
      return { failure: streamOutcome(controller, ended), reconnectAfter: null };
    } catch (error) {
      const failure = streamOutcome(controller, error);
      if (this.#shortenHold(transport, failure, startedAt)) return { failure: null, reconnectAfter: 0 };
      return { failure, reconnectAfter: null };
    } finally {
      clearTimeout(this.#watchdog);
      clearTimeout(this.#firstEventTimer);
      this.#watchdog = undefined;
      this.#firstEventTimer = undefined;
      this.#streamController = null;
    }
  }

  /**
   * @param {AbortController} controller
   * @returns {object} the ReceiveLink (see transports.js) of one attempt
   */
  #receiveLink(controller) {
    return {
      request: (path, init, expected, query = {}) => this.#receiveRequest(path, init, expected, query),
      onBytes: () => {
        if (this.#helloSeen) this.#silences = 0; // bytes after the hello: nothing holds them
        this.#armWatchdog(controller);
      },
      onEvent: (event) => this.#onEvent(event, controller),
      onPoll: (answer) => this.#onPoll(answer, controller),
      readJson: (response) => readJson(response, controller.signal),
      hold: this.#pollHold,
    };
  }

  async #receiveRequest(path, init, expected, query) {
    const cursor = this.#inbox.cursor;
    const params = new URLSearchParams({ client: this.id, cursor: String(cursor) });
    if (this.session !== null) params.set('session', this.session);
    if (this.#answerBytes !== null) params.set('bytes', String(this.#answerBytes));
    for (const [name, value] of Object.entries(query)) params.set(name, value);
    const headers = this.#headers(init.headers);
    // the cursor acknowledges: no POST needed for it (a later request carries it if this one fails)
    this.#ackSent = Math.max(this.#ackSent, cursor);
    const response = await this.#fetch(`${this.url}${path}?${params}`, { ...init, headers });
    await checkResponse(response, expected, this.url, RECEIVE_STATUS_RULES, 'advance');
    return response;
  }

  /**
   * Moves on to the next transport (the better ones are tried again after upgradeInterval).
   *
   * @param {TransportError} failure why the current one does not work
   * @returns {boolean} false when there is no next transport
   */
  #advanceTransport(failure) {
    let next = this.#candidate + 1;
    while (next < this.#candidates.length && !this.#usable(this.#candidates[next])) next += 1;
    if (next >= this.#candidates.length) return false;
    this.#candidate = next;
    this.#silences = 0;
    const name = this.#candidates[next];
    this.lastError = new TransportError('advance', `${failure.message}; trying ${name}`, failure.status);
    this.transport = name;
    this.#armUpgrade();
    this.#setState(this.state === 'connected' ? 'reconnecting' : this.state);
    return true;
  }

  /**
   * Once `upgradeInterval` has passed on a lesser transport, the current request is ended (the
   * next resumes from the cursor: nothing is lost or repeated) and the best transport is tried
   * again, with the usual rules: the client moves down again only on evidence of buffering.
   */
  #armUpgrade() {
    if (this.#upgradeTimer !== undefined || this.#candidate === 0) return;
    this.#upgradeTimer = setTimeout(() => {
      this.#upgradeTimer = undefined;
      if (!this.#active || this.#candidate === 0) return;
      const upgrade = new TransportError('upgrade', `trying ${this.#candidates[0]} again`);
      if (this.#streamController === null) this.#upgradeTransport();
      else this.#streamController.abort(upgrade);
    }, this.#upgradeInterval * 1000);
  }

  /** @returns {boolean} whether transport `name` may be tried: not a POST one on a path refusing POST */
  #usable(name) {
    return TRANSPORTS[name].method === 'GET' || this.#sendMethod !== 'get' || this.#candidates.length === 1;
  }

  /**
   * A request failed with an answer that may be the path's, not the kernel server's (a refused
   * method, or an empty 500 that hides the status). `GET /status` tells them apart: unanswered,
   * the server is lost or unreachable; answered, the path refused the method (a POST), or hid
   * the server's status (a GET), which /status then helps to tell.
   *
   * @param {TransportError} failure
   * @param {'GET' | 'POST'} method the failed request's
   * @returns {Promise<TransportError>} what to do, with a message that says which it was
   */
  async #explain(failure, method) {
    if (this.#hidden) return failure;
    const probe = await this.#askStatus(this.#stopController.signal);
    const said = failure.message;
    if (probe.status === null) {
      const why = probe.hidden
        ? '/status gets an empty 500 too: the path hides what the kernel server answers (a refused token?)'
        : 'the kernel server does not answer /status either: it is lost or unreachable';
      return foreignError('retry', `${said}; ${why}`, failure.status);
    }
    if (method === 'POST') {
      // Colab's proxy says "Not allowed"; a 405 or 501 says it too. Any other odd answer could
      // be a passing hiccup of a proxy: only the same, several times in a row, is a refusal.
      const plain = failure.status === 405 || failure.status === 501 || /not allowed/i.test(said);
      this.#oddAnswers += 1;
      if (plain || this.#oddAnswers >= ODD_ANSWERS_BEFORE_REFUSAL) {
        return foreignError('refused', `${said}, while the kernel server answers GET: the path refuses POST`,
          failure.status);
      }
      return foreignError('retry', `${said}, while the kernel server answers GET: retrying`, failure.status);
    }
    const { session, connected, client } = probe.status;
    if (this.session !== null && typeof session === 'string' && session !== this.session) {
      return foreignError('resync', `${said}; the path hid the status, and /status shows that this session is over`,
        failure.status);
    }
    if (connected === true && typeof client === 'string' && client !== this.id) {
      return foreignError('retry', `${said}; the path hid the status: another page is connected, retrying until it leaves`,
        failure.status);
    }
    return foreignError('retry', `${said}; the path hid the kernel server's answer while /status answers: retrying`,
      failure.status);
  }

  /**
   * A request got no answer at all: whether the kernel server answers `/status` says whether
   * the request alone was lost (a cut) or the server too.
   *
   * @param {TransportError} failure
   * @returns {Promise<TransportError>}
   */
  async #explainLoss(failure) {
    if (this.#hidden || (!this.#helloSeen && this.state !== 'connected')) return failure;
    const probe = await this.#askStatus(this.#stopController.signal);
    if (probe.status !== null) return failure;
    return new TransportError('retry',
      `${failure.message}; the kernel server does not answer /status either: it is lost or unreachable`);
  }

  /**
   * POST is refused on the path: frames and chunks go in GET requests from now on (unless
   * POST is forced, when the client keeps retrying and says why).
   *
   * @param {TransportError} failure
   * @param {boolean} receiving whether a receive request (sse-post) was refused
   * @returns {TransportError}
   */
  #refusedPost(failure, receiving) {
    if (this.#sendForced && this.#sendMethod === 'post') {
      const forced = `${failure.message}, and sendMethod 'post' is forced: retrying`;
      return foreignError(receiving ? 'advance' : 'retry', forced, failure.status);
    }
    const moved = this.#sendMethod !== 'get';
    this.#sendMethod = 'get';
    if (moved) {
      this.lastError = foreignError('retry',
        `${failure.message}, so page -> kernel messages and uploads now go in GET requests`, failure.status);
      this.#setState(this.state);
    }
    return foreignError(receiving ? 'advance' : 'retry', failure.message, failure.status);
  }

  /**
   * A stream's chunk POST got an answer that may be a refusal of POST: check, once at a time.
   *
   * @param {TransportError} failure
   * @returns {Promise<boolean>} whether chunks now go in GET requests
   */
  async #checkRefusal(failure) {
    if (this.#sendMethod === 'get') return true;
    this.#refusalCheck ??= this.#explain(failure, 'POST').then((explained) => {
      if (explained.action === 'refused') this.#refusedPost(explained, false);
      return this.#sendMethod === 'get';
    }).finally(() => {
      this.#refusalCheck = null;
    });
    return this.#refusalCheck;
  }

  /**
   * An answer was cut after `failure.cutAt` bytes (a path that limits answers): later answers
   * carry at most half as many bytes of frames (at least one frame always goes).
   *
   * @returns {boolean} whether the bound shrank (false once it is as small as it gets)
   */
  #shrinkAnswers(failure) {
    // A path that limits answers cuts them at the same size every time; a cut at a size of its
    // own is a lost connection (retried as it is). So only the second cut near one size counts.
    const previous = this.#lastCut;
    this.#lastCut = failure.cutAt;
    if (previous === null || Math.abs(failure.cutAt - previous) > previous * CUT_TOLERANCE) return false;
    this.#lastCut = null;
    const next = Math.max(MIN_ANSWER_BYTES, Math.floor(failure.cutAt / 2));
    if (this.#answerBytes !== null && next >= this.#answerBytes) return false;
    this.#answerBytes = next;
    this.lastError = new TransportError('retry',
      `${failure.message}; answers now carry at most ${next} bytes of frames`, failure.status);
    this.#setState(this.state);
    return true;
  }

  #upgradeTransport() {
    this.#candidate = 0;
    this.#silences = 0;
    this.transport = this.#candidates[0];
  }

  /**
   * A stream fell silent after its hello. A silent server (a kernel busy computing, or a network
   * that dropped the connection) is no reason to leave the transport: the client retries it.
   * Only when the server answers a probe, and this happens again on the next stream, does a
   * proxy seem to hold what follows the first event: then the client moves on.
   *
   * @param {TransportError} failure
   * @returns {Promise<TransportError>}
   */
  async #judgeSilence(failure) {
    const answered = await this.#probeServer(this.#stopController.signal);
    if (!answered) {
      this.#silences = 0;
      const busy = 'the server does not answer either (busy or unreachable)';
      return new TransportError('retry', `${failure.message}; ${busy}: retrying ${this.transport}`);
    }
    this.#silences += 1;
    if (this.#silences < SILENCES_BEFORE_ADVANCE) return failure;
    const held = `${this.#silences} times in a row while the server answers: a proxy seems to hold the stream`;
    return new TransportError('advance', `${failure.message}, ${held}`);
  }

  /**
   * Asks for `GET <url>/status`, a small answer no buffering proxy holds back.
   *
   * @param {AbortSignal} signal
   * @returns {Promise<boolean>} whether the kernel server answered within firstEventDeadline
   */
  async #probeServer(signal) {
    return (await this.#askStatus(signal)).status !== null;
  }

  /**
   * @param {AbortSignal} signal
   * @returns {Promise<{status: object | null, hidden: boolean}>} the server's `/status` when it
   *   answered within firstEventDeadline; `hidden` when the path answered an empty 500 instead
   */
  async #askStatus(signal) {
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    const timer = setTimeout(abort, this.#firstEventDeadline * 1000);
    try {
      const response = await this.#fetch(`${this.url}/status`, {
        headers: this.#headers({ Accept: 'application/json' }),
        cache: 'no-store',
        signal: controller.signal,
      });
      const contentType = response.headers.get('content-type') ?? '';
      if (!response.ok || !contentType.includes('application/json')) {
        const text = await response.text().catch(() => '');
        return { status: null, hidden: response.status === 500 && text === '' };
      }
      const status = await response.json().catch(() => null);
      return { status: status !== null && typeof status === 'object' ? status : null, hidden: false };
    } catch {
      return { status: null, hidden: false };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  /**
   * A poll that failed after being held a while was probably cut by a proxy's idle timeout: later
   * polls ask the server to answer sooner, and the next one goes at once.
   *
   * @returns {boolean} whether the hold was shortened
   */
  #shortenHold(transport, failure, startedAt) {
    if (transport.streaming || failure.action !== 'retry' || !this.#active) return false;
    const held = (this.#now() - startedAt) / 1000;
    if (held < HOLD_CUT_SECONDS) return false;
    this.#pollHold = Math.max(MIN_HOLD_SECONDS, Math.floor(held * HOLD_SHRINK));
    const shorter = `polls now ask to be held at most ${this.#pollHold} s`;
    this.lastError = new TransportError('retry', `${failure.message}; ${shorter}`, failure.status);
    this.#setState(this.state);
    return true;
  }

  #armFirstEvent(controller, transport) {
    clearTimeout(this.#firstEventTimer);
    this.#firstEventTimer = undefined;
    if (!transport.streaming || this.#candidate >= this.#candidates.length - 1) return;
    const seconds = this.#firstEventDeadline;
    this.#firstEventTimer = setTimeout(() => this.#suspectBuffering(controller, transport), seconds * 1000);
  }

  /**
   * The first event is late. Either a proxy holds the stream (then the server answers a probe
   * while the event stays missing) or the kernel is busy or unreachable (then the probe is not
   * answered either, and the client keeps waiting on this transport, within the watchdog).
   *
   * @param {AbortController} controller the stream's
   * @param {{name: string}} transport
   */
  async #suspectBuffering(controller, transport) {
    this.#firstEventTimer = undefined;
    const answered = await this.#probeServer(controller.signal);
    if (controller.signal.aborted || this.#helloSeen || this.#streamController !== controller) return;
    const seconds = this.#firstEventDeadline;
    if (!answered) {
      this.#firstEventTimer = setTimeout(() => this.#suspectBuffering(controller, transport), seconds * 1000);
      return;
    }
    const buffered = new TransportError(
      'advance',
      `no first event over ${transport.name} within ${seconds} s: a proxy seems to buffer it`,
    );
    // the event may have left the server just before the probe's answer: give it a moment
    const grace = Math.min(MAX_PROBE_GRACE_MS, seconds * 1000);
    this.#firstEventTimer = setTimeout(() => {
      this.#firstEventTimer = undefined;
      if (!this.#helloSeen) controller.abort(buffered);
    }, grace);
  }

  #armWatchdog(controller) {
    clearTimeout(this.#watchdog);
    const grace = this.#heartbeat * this.#heartbeatGrace;
    if (!TRANSPORTS[this.transport].streaming) {
      const seconds = (this.#pollHold ?? this.#serverHold) + grace;
      const late = new TransportError('retry', `no answer to a poll within ${seconds} s`);
      this.#watchdog = setTimeout(() => controller.abort(late), seconds * 1000);
      return;
    }
    const silence = this.#helloSeen
      ? silentAfterHello(new TransportError('retry', `no data from the server for ${grace} s: heartbeats stopped`))
      : new TransportError('retry', `no data from the server for ${grace} s`);
    this.#watchdog = setTimeout(() => controller.abort(silence), grace * 1000);
  }

  #onEvent({ type, data }, controller) {
    if (controller.signal.aborted) return;
    if (type === 'hello') {
      this.#onHello(JSON.parse(data), controller);
    } else {
      this.#onFrame(JSON.parse(data));
    }
  }

  #onHello({ session, ack, heartbeat, max_body: maxBody, max_url: maxUrl }, controller) {
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
    if (Number.isSafeInteger(maxUrl) && maxUrl >= 1024) this.#maxUrl = maxUrl;
    if (Number.isSafeInteger(maxBody) && maxBody > ENVELOPE_BYTES) {
      this.#maxBody = Math.min(maxBody, this.#pathBodyCap);
      this.#outbox.maxFrameBytes = this.#maxBody - ENVELOPE_BYTES;
    }
    this.#outbox.ack(ack);
    this.#ackSent = Math.max(this.#ackSent, this.#inbox.cursor);
    this.#attempt = 0;
    this.#helloSeen = true;
    clearTimeout(this.#firstEventTimer);
    this.#firstEventTimer = undefined;
    this.#armUpgrade();
    if (TRANSPORTS[this.transport].streaming) this.#armWatchdog(controller);
    const moved = this.#helloTransport !== this.transport; // back up, after an upgrade
    this.#helloTransport = this.transport;
    if (this.state === 'connected' && this.lastError === null && !moved) {
      this.#scheduleFlush();
      return;
    }
    this.lastError = null;
    this.#setState('connected');
    this.#kickFlush();
  }

  #onPoll(answer, controller) {
    if (answer === null || typeof answer !== 'object' || !Array.isArray(answer.frames)) {
      throw new TransportError('retry', 'the answer to a poll has no frames array');
    }
    if (typeof answer.hold === 'number' && answer.hold > 0) this.#serverHold = answer.hold;
    this.#onHello(answer, controller);
    for (const frame of answer.frames) this.#onFrame(frame);
    this.#ackSent = Math.max(this.#ackSent, this.#inbox.cursor); // the next poll's cursor acks
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
      if (pending !== undefined) {
        Client.#replyHandlers[type](pending, frame, this);
      } else if (frame.stream !== undefined) {
        this.#streams.refuse(frame.stream); // nobody reads it: stop its producer
      }
    }
  }

  async #answer(frame, handler) {
    const epoch = this.#epoch;
    let reply;
    try {
      const value = await handler(this, frame);
      reply = isAsyncIterable(value)
        ? { type: 'result', call: frame.call, value: null, stream: this.#streams.send(value) }
        : resultFrame(frame.call, value);
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
    const current = this.#channels.get(key);
    const earlier = current === undefined ? undefined : this.#openings.get(current);
    // Opening a channel open on this page does not run its code again (as in
    // jupyter-jchannel): the answer is what its first run returned.
    if (earlier !== undefined) return await earlier;
    const open = evaluateFunction(code);
    const channel = new Channel(this, key);
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
    setTimeout(() => {
      this.lastError = new StateError('the kernel server was stopped');
      this.stop();
    }, 0);
    return null;
  }

  #closeChannel({ channel: key }) {
    this.#channels.get(key)?.detach();
    this.#channels.delete(key);
    return null;
  }

  #invokeHandler({ channel: key, name, args, stream }) {
    const received = stream === undefined ? undefined : this.#streams.receive(stream);
    const channel = this.#channels.get(key);
    if (channel === undefined) throw new StateError(`no channel ${key} on this page`);
    const { handler } = channel;
    const method = findMethod(handler, name);
    if (method === null) throw new Error(`handler has no method '${name}'`);
    return method.apply(handler, received === undefined ? args : [received, ...args]);
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
    if (!this.#active || this.session === null || this.#hidden) return false;
    return this.#outbox.size > 0 || this.#inbox.cursor > this.#ackSent;
  }

  async #flushLoop() {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#needsFlush()) {
        const method = this.#sendMethod === 'get' ? 'GET' : 'POST';
        let failure = await (method === 'GET' ? this.#getOnce() : this.#postOnce());
        if (failure === null) this.#oddAnswers = 0;
        if (failure === null || !this.#active) continue;
        if (failure.action === 'retry' && isRefusal(failure)) failure = await this.#explain(failure, method);
        else if (failure.action !== 'refused') this.#oddAnswers = 0;
        if (!this.#active) continue;
        if (failure.cutAt !== null && this.#shrinkAnswers(failure)) continue;
        if (failure.action === 'refused') {
          failure = this.#refusedPost(failure, false);
          if (this.#sendMethod === 'get') continue;
        }
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
    // The answer carries back the kernel frames after `cursor` (waiting briefly for a
    // handler's result or the kernel's next call): a call and its answer take one request.
    const body =
      `{"client":${JSON.stringify(this.id)},"session":${JSON.stringify(this.session)},` +
      `"ack":${cursor},"messages":[${messages.join(',')}],"carry":true}`;
    const controller = new AbortController();
    const seconds = this.#postTimeout;
    const timeout = new TransportError('retry', `no answer to a POST within ${seconds} s`);
    const timer = setTimeout(() => controller.abort(timeout), this.#postTimeout * 1000);
    this.#postController = controller;
    try {
      const bytes = this.#answerBytes === null ? '' : `?bytes=${this.#answerBytes}`;
      const response = await this.#fetch(`${this.url}/messages${bytes}`, {
        method: 'POST',
        headers: this.#headers({ 'Content-Type': 'application/json' }),
        body,
        signal: controller.signal,
      });
      await checkResponse(response, 'application/json', this.url);
      const answer = await readJson(response, controller.signal);
      if (epoch !== this.#epoch) return null;
      this.#applyAck(answer, lastSent);
      this.#ackSent = Math.max(this.#ackSent, cursor);
      this.#postAttempt = 0;
      this.#onCarried(answer);
      return null;
    } catch (error) {
      if (epoch !== this.#epoch) return null;
      const failure = toTransportError(controller.signal.aborted ? controller.signal.reason : error);
      return failure.status === 413 ? this.#bodyRefused(body, messages.length, failure) : failure;
    } finally {
      clearTimeout(timer);
      this.#postController = null;
    }
  }

  /**
   * A POST refused for its size (413): a proxy in between takes less than the server's
   * max_body, or the server itself. Sending the same body again would be refused forever, so
   * later bodies stay under half of this one: a batch of several frames goes again in smaller
   * batches, and later frames too large for the path are refused when sent (RangeError). A
   * single frame that large can never pass: the session starts over (its waiting calls fail
   * with the reason), since the frame's number cannot be skipped.
   *
   * @param {string} body the refused body
   * @param {number} frames how many frames it carried
   * @param {TransportError} failure
   * @returns {TransportError}
   */
  #bodyRefused(body, frames, failure) {
    const size = new TextEncoder().encode(body).length;
    this.#pathBodyCap = Math.max(2 * ENVELOPE_BYTES, Math.min(this.#pathBodyCap, Math.floor(size / 2)));
    this.#maxBody = Math.min(this.#maxBody, this.#pathBodyCap);
    this.#outbox.maxFrameBytes = this.#maxBody - ENVELOPE_BYTES;
    const bound = `later requests stay under ${this.#maxBody} bytes`;
    if (frames > 1) {
      this.#postAttempt = 0;
      return new TransportError('retry', `a ${size}-byte POST was refused (413); ${bound}`, 413);
    }
    const detail = `a message of ${size} bytes is larger than the path to the kernel lets through`;
    return new TransportError('resync', `${detail} (413): ${failure.message}; ${bound}`, 413);
  }

  /**
   * The GET form of `#postOnce`: the batch in the query, in parts when it does not fit in one
   * URL of `maxUrl` characters, sent one after the other. The batch stays the same until its last
   * part is answered, so a part sent again is the same; sequence numbers do the rest.
   *
   * @returns {Promise<TransportError | null>}
   */
  async #getOnce() {
    const epoch = this.#epoch;
    const cursor = this.#inbox.cursor;
    if (this.#parts === null) {
      const messages = this.#outbox.batch(this.#maxBody - ENVELOPE_BYTES);
      const text = base64urlText(`[${messages.join(',')}]`);
      this.#parts = { id: randomId(BATCH_ID_LENGTH), text, have: 0, lastSent: this.#outbox.acked + messages.length };
    }
    const parts = this.#parts;
    const params = new URLSearchParams({ client: this.id, session: this.session, ack: String(cursor) });
    if (this.#answerBytes !== null) params.set('bytes', String(this.#answerBytes));
    const base = `${this.url}/messages?${params}`;
    for (;;) {
      let url = `${base}&messages=${parts.text}`;
      if (parts.have > 0 || this.#maxUrl - url.length - this.#urlExtra < 0) {
        const head = `${base}&batch=${parts.id}&offset=${parts.have}&total=${parts.text.length}&part=`;
        const room = this.#maxUrl - head.length - this.#urlExtra;
        if (room < 64) return new TransportError('fail', `maxUrl (${this.#maxUrl}) leaves no room for a message`);
        url = head + parts.text.slice(parts.have, parts.have + room);
      }
      const controller = new AbortController();
      const timeout = new TransportError('retry', `no answer to a GET within ${this.#postTimeout} s`);
      const timer = setTimeout(() => controller.abort(timeout), this.#postTimeout * 1000);
      this.#postController = controller;
      try {
        const response = await this.#fetch(url, {
          headers: this.#headers(), cache: 'no-store', signal: controller.signal,
        });
        await checkResponse(response, 'application/json', this.url);
        const answer = await readJson(response, controller.signal);
        if (epoch !== this.#epoch) return null;
        if (!Array.isArray(answer?.frames)) {
          this.#checkAck(answer?.ack);
          this.#outbox.ack(answer.ack);
          if (!Number.isSafeInteger(answer.have) || answer.have < 0 || answer.have > parts.text.length) {
            throw new TransportError('retry', 'the answer to a part of a batch has no valid have');
          }
          parts.have = answer.have;
          continue;
        }
        this.#parts = null;
        this.#applyAck(answer, parts.lastSent);
        this.#ackSent = Math.max(this.#ackSent, cursor);
        this.#postAttempt = 0;
        this.#onCarried(answer);
        return null;
      } catch (error) {
        if (epoch !== this.#epoch) return null;
        return toTransportError(controller.signal.aborted ? controller.signal.reason : error);
      } finally {
        clearTimeout(timer);
        this.#postController = null;
      }
    }
  }

  /**
   * Takes the kernel frames a POST answer carried back. If that answer is lost, the POST is
   * sent again with the same cursor and they come back again, so they are never lost.
   *
   * @param {{frames?: unknown}} answer
   */
  #onCarried(answer) {
    if (!Array.isArray(answer.frames)) {
      throw new TransportError('retry', 'the answer to a POST has no frames array');
    }
    for (const frame of answer.frames) this.#onFrame(frame);
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
  return randomId(CLIENT_ID_LENGTH);
}

function randomId(length) {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (byte) => ID_ALPHABET[byte & 63]).join('');
}

/**
 * @param {TransportError} failure
 * @returns {boolean} whether the path, not the kernel server, may have answered: a refusal of the
 *   method, or an empty 500 hiding the server's status
 */
function isRefusal(failure) {
  return failure.foreign && (REFUSAL_STATUSES.has(failure.status) || failure.status >= 500);
}

function foreignError(action, message, status) {
  const error = new TransportError(action, message, status);
  error.foreign = true;
  return error;
}

/**
 * Reads a JSON answer, telling a body cut short by the path from one that is not JSON.
 *
 * @param {Response} response a success
 * @param {AbortSignal} signal the request's
 * @returns {Promise<unknown>}
 */
async function readJson(response, signal) {
  if (response.body === null) return response.json();
  const reader = response.body.getReader();
  const parts = [];
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.length;
    }
  } catch (error) {
    if (signal.aborted || received === 0) throw error; // no byte: the connection was lost
    throw cutAnswer(received, response.status);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  // A whole JSON object is a whole answer: behind a compressing proxy Content-Length counts the
  // encoded bytes, more than the decoded ones for a small answer, and is no sign of a cut.
  let parsed;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    if (received > 0 && bytes[received - 1] !== 0x7d) throw cutAnswer(received, response.status);
    const length = Number(response.headers.get('content-length'));
    if (Number.isSafeInteger(length) && length > received) throw cutAnswer(received, response.status);
    throw new TransportError('retry', 'the answer is not valid JSON', response.status);
  }
  return parsed;
}

function cutAnswer(received, status) {
  const error = new TransportError('retry', `an answer was cut after ${received} bytes (the path limits answers)`, status);
  error.cutAt = received;
  return error;
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

/** @returns {Promise<void>} resolved after the tasks already queued (timers due now included) */
function nextTask() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function streamOutcome(controller, error) {
  return toTransportError(controller.signal.aborted ? controller.signal.reason : error);
}

function toTransportError(error) {
  if (error instanceof TransportError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new TransportError('retry', message);
}

/**
 * @param {Response} response
 * @param {string} expected the content type a success must have
 * @param {string} baseUrl the server's URL, named in errors
 * @param {Record<string, [string, string]>} [rules] action and explanation by error status, or by
 *   status and JSON error code (`"500 internal_error"`), which wins
 * @param {'retry' | 'advance'} [mismatch] the action when a success has another content type
 * @returns {Promise<void>} rejected with a TransportError unless `response` is a success of type
 *   `expected`
 */
async function checkResponse(response, expected, baseUrl, rules = STATUS_RULES, mismatch = 'retry') {
  // Age above 0 comes from a cache that answered from what it stored (the server never sends it;
  // Varnish sends Age: 0 on every answer it passed on)
  const age = Number(response.headers.get('age') ?? 0);
  if (age > 0) {
    await discardBody(response);
    throw new TransportError('retry', `a cache on the way answered from what it stored (Age: ${age}), `
      + `although the server marks every answer no-store, so no message can arrive: make it pass every `
      + `request to ${baseUrl} (Varnish: return (pass) in vcl_recv; a CDN: a bypass rule for this path)`,
    response.status);
  }
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.includes('text/html')) {
    await discardBody(response);
    throw htmlPageError(response.status, expected, baseUrl);
  }
  if (response.ok && contentType.includes(expected)) return;
  if (response.ok) {
    await discardBody(response);
    const different = `expected ${expected} but got '${contentType}'`;
    throw new TransportError(mismatch, different, response.status);
  }
  const { detail, code } = await errorDetail(response);
  const [action, explanation] = rules[`${response.status} ${code}`] ?? rules[response.status] ?? [
    'retry',
    `the server answered ${response.status}`,
  ];
  const shown = detail || (response.status === 500 ? 'an empty answer' : '');
  const message = shown ? `${explanation}: ${shown}` : explanation;
  const error = new TransportError(action, message, response.status);
  error.foreign = code === null;
  throw error;
}

function htmlPageError(status, expected, baseUrl) {
  if (status >= 500) {
    const gateway = `a proxy answered ${status} with an HTML error page instead of ${expected}`;
    return new TransportError('retry', `${gateway}: the kernel server is slow or gone`, status);
  }
  return new TransportError(
    'retry',
    `the server answered with an HTML page (status ${status}) instead of ${expected}, ` +
      'probably a tunnel warning or login page: ' +
      `open ${baseUrl}/openapi.json once in this browser`,
    status,
  );
}

/**
 * @param {string} url the server's URL
 * @returns {string | null} the page's `_xsrf` cookie (set by Jupyter servers) when `url` is of the
 *   page's own origin, for the `X-XSRFToken` header some proxies require on POSTs
 */
function sameOriginXsrfToken(url) {
  if (typeof document === 'undefined' || typeof location === 'undefined') return null;
  let origin;
  try {
    origin = new URL(url, location.href).origin;
  } catch {
    return null;
  }
  if (origin !== location.origin) return null;
  const match = /(?:^|;\s*)_xsrf=([^;]*)/.exec(document.cookie ?? '');
  return match === null ? null : match[1];
}

/**
 * @param {Response} response an error answer
 * @returns {Promise<{detail: string, code: string | null}>} its explanation (the `message` of a
 *   JSON error, else the start of the text) and its JSON `error` code, if any
 */
async function errorDetail(response) {
  const text = await response.text().catch(() => '');
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: a proxy's answer
  }
  const message = typeof parsed?.message === 'string' ? parsed.message : null;
  const code = typeof parsed?.error === 'string' ? parsed.error : null;
  return { detail: message ?? text.slice(0, 200), code };
}

async function discardBody(response) {
  await response.body?.cancel().catch(ignoreError);
}

/**
 * The function that the code of an open frame stands for. Code that is one expression (the
 * usual `(channel) => {...}`) is its value; any other code is run as a script by the global
 * (indirect) eval, as jupyter-jchannel does, and its completion value (the value of its last
 * expression statement: statements may come before it, a `;` may end it) is the function.
 *
 * @param {string} code
 * @returns {Function}
 * @throws {TypeError} when the code's value is not a function; SyntaxError when it is no script
 */
function evaluateFunction(code) {
  let expression = null;
  try {
    expression = new Function(`return (${code}\n);`);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  const value = expression === null ? globalThis.eval(code) : expression();
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

/**
 * @param {number} call
 * @param {unknown} value a handler's result; `undefined` becomes null
 * @returns {Record<string, unknown>} the result frame
 * @throws {TypeError} when JSON cannot carry `value` faithfully (see sendable.js)
 */
function resultFrame(call, value) {
  checkSendable(value, 'result');
  return { type: 'result', call, value: value === undefined ? null : value };
}

/**
 * @param {number} call
 * @param {unknown} error whatever was thrown
 * @returns {Record<string, unknown>} the error frame; never throws
 */
function errorFrame(call, error) {
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

function reportCallbackError(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}

function ignoreError() {}
