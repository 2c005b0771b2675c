import { backoffDelay } from './backoff.js';
import { TransportError, checkResponse, readJson, toTransportError } from './http.js';
import { TRANSPORTS } from './transports.js';
import { ENVELOPE_BYTES, MIN_MAX_URL } from './wire.js';

const DEFAULT_POLL_HOLD_SECONDS = 25;
/** Silences after a hello, each while the server answered a probe, after which a stream moves on. */
const SILENCES_BEFORE_ADVANCE = 2;
/** The most milliseconds a first event may trail the answer to a probe sent after it. */
const MAX_PROBE_GRACE_MS = 1000;
const HOLD_CUT_SECONDS = 2;
const HOLD_SHRINK = 0.75;
const MIN_HOLD_SECONDS = 1;

/**
 * @typedef {object} ReceiverHost what the receiver needs from the client
 * @property {() => boolean} active whether the client is neither stopped nor failed
 * @property {() => string} state the client's state
 * @property {() => Error | null} lastError
 * @property {(error: Error | null) => void} note sets lastError and tells the client's listener
 * @property {(state: string, error?: Error | null) => void} setState
 * @property {(failure: TransportError, state: string) => void} handleFailure
 * @property {() => Promise<void>} whileHidden resolved when a hidden page is shown again
 * @property {(frame: Record<string, any>) => void} onFrame
 * @property {Sender} sender
 * @property {Path} path
 * @property {(transport: string) => void} worked the transport passed a hello: remember it
 * @property {() => void} forget the remembered transport failed: forget it
 */

/**
 * @typedef {object} ReceiverOptions
 * @property {string[]} candidates the transports the client may use, in order
 * @property {number} heartbeat
 * @property {number} heartbeatGrace
 * @property {number} firstEventDeadline
 * @property {number} upgradeInterval
 * @property {string | null} [remembered] the transport that worked last in this tab: the first
 *   one tried (the probe of the better ones is skipped); forgotten when it fails first
 */

/**
 * Kernel -> page frames: one request of the current transport after the other (transports.js),
 * the watchdogs that tell a silent stream from a buffered one, the failover to the next
 * transport, and the upgrade back to the best one after a while.
 */
export class Receiver {
  /** @type {Connection} */
  #conn;
  /** @type {ReceiverHost} */
  #host;
  /** @type {string[]} */
  #candidates;
  #candidate = 0;
  #heartbeat;
  #heartbeatGrace;
  #firstEventDeadline;
  #upgradeInterval;
  /** @type {number | null} seconds a poll may be held, once a proxy cut a longer one short */
  #pollHold = null;
  #serverHold = DEFAULT_POLL_HOLD_SECONDS;
  #helloSeen = false;
  /** @type {string | null} the transport of the latest hello */
  #helloTransport = null;
  /** silences after a hello in a row, on this transport, while the server answered a probe */
  #silences = 0;
  #attempt = 0;
  /** whether the transport came from memory and has not passed a hello yet */
  #fromMemory = false;
  /** @type {AbortController | null} */
  #streamController = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #watchdog = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #firstEventTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #upgradeTimer = undefined;

  /**
   * @param {Connection} conn
   * @param {ReceiverHost} host
   * @param {ReceiverOptions} options
   */
  constructor(conn, host, {
    candidates, heartbeat, heartbeatGrace, firstEventDeadline, upgradeInterval, remembered = null,
  }) {
    this.#conn = conn;
    this.#host = host;
    this.#candidates = candidates;
    this.#heartbeat = heartbeat;
    this.#heartbeatGrace = heartbeatGrace;
    this.#firstEventDeadline = firstEventDeadline;
    this.#upgradeInterval = upgradeInterval;
    /** @type {string} the transport in use, or being tried */
    this.transport = candidates[0];
    const start = remembered === null ? -1 : candidates.indexOf(remembered);
    if (start >= 0) {
      this.#candidate = start;
      this.transport = remembered;
      this.#fromMemory = true;
    }
  }

  /** @returns {number} seconds a `/status` probe may take */
  get firstEventDeadline() {
    return this.#firstEventDeadline;
  }

  /** The session was reset: the request under way ends, the next one starts a new session. */
  resetSession() {
    this.#streamController?.abort(new TransportError('retry', 'the session was reset'));
  }

  /**
   * The client stopped or failed: the request under way ends, no timer is left.
   *
   * @param {Error} reason
   */
  stop(reason) {
    this.#streamController?.abort(reason);
    clearTimeout(this.#watchdog);
    clearTimeout(this.#firstEventTimer);
    clearTimeout(this.#upgradeTimer);
    this.#watchdog = undefined;
    this.#firstEventTimer = undefined;
    this.#upgradeTimer = undefined;
  }

  /** Receives until the client stops. */
  async run() {
    const host = this.#host;
    const conn = this.#conn;
    while (host.active()) {
      if (conn.hidden) {
        await host.whileHidden();
        continue;
      }
      let { failure, reconnectAfter } = await this.#receiveOnce();
      if (!host.active()) return;
      if (failure === null) {
        if (reconnectAfter > 0) await conn.sleep(reconnectAfter, conn.stopSignal);
        else await nextTask(); // so that a POST of what the answer caused goes out first
        continue;
      }
      if (failure.action === 'upgrade') {
        this.#upgradeTransport();
        continue;
      }
      if (failure.silentAfterHello) failure = await this.#judgeSilence(failure);
      else if (failure.action === 'check') {
        failure = await host.path.explain(failure, TRANSPORTS[this.transport].method);
      } else if (failure.action === 'retry' && failure.status === null && failure.cutAt === null) {
        failure = await this.#explainLoss(failure);
      }
      if (!host.active()) return;
      if (failure.cutAt !== null && host.path.shrinkAnswers(failure)) continue;
      if (failure.action === 'refused') failure = host.path.refusedPost(failure, true);
      if (failure.action === 'advance' && this.#fromMemory) {
        // the remembered transport does not work (any more): forget it and probe from the best
        this.#fromMemory = false;
        host.forget();
        if (this.#candidate !== 0) {
          this.#upgradeTransport();
          continue;
        }
      }
      if (failure.action === 'advance' && this.#advanceTransport(failure)) continue;
      host.handleFailure(failure, host.state() === 'connected' ? 'reconnecting' : host.state());
      if (!host.active()) return;
      await conn.sleep(backoffDelay(this.#attempt++, conn.random), conn.stopSignal);
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
    const startedAt = this.#conn.now();
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
   * @returns {ReceiveLink} the link of one attempt
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
    const conn = this.#conn;
    const cursor = conn.inbox.cursor;
    const params = new URLSearchParams({ client: conn.id, cursor: String(cursor) });
    if (conn.session !== null) params.set('session', conn.session);
    if (conn.answerBytes !== null) params.set('bytes', String(conn.answerBytes));
    for (const [name, value] of Object.entries(query)) params.set(name, value);
    const headers = conn.headers(init.headers);
    // the cursor acknowledges: no POST needed for it (a later request carries it if this one fails)
    conn.ackSent = Math.max(conn.ackSent, cursor);
    const response = await conn.fetch(`${conn.url}${path}?${params}`, { ...init, headers });
    await checkResponse(response, expected, conn.url, 'receive', 'advance');
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
    this.transport = name;
    this.#armUpgrade();
    const host = this.#host;
    host.setState(host.state() === 'connected' ? 'reconnecting' : host.state(),
      new TransportError('advance', `${failure.message}; trying ${name}`, failure.status));
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
      if (!this.#host.active() || this.#candidate === 0) return;
      const upgrade = new TransportError('upgrade', `trying ${this.#candidates[0]} again`);
      if (this.#streamController === null) this.#upgradeTransport();
      else this.#streamController.abort(upgrade);
    }, this.#upgradeInterval * 1000);
  }

  /** @returns {boolean} whether transport `name` may be tried: not a POST one on a path refusing POST */
  #usable(name) {
    return TRANSPORTS[name].method === 'GET' || this.#conn.sendMethod !== 'get' || this.#candidates.length === 1;
  }

  #upgradeTransport() {
    this.#candidate = 0;
    this.#silences = 0;
    this.transport = this.#candidates[0];
  }

  /**
   * A request got no answer at all: whether the kernel server answers `/status` says whether
   * the request alone was lost (a cut) or the server too.
   *
   * @param {TransportError} failure
   * @returns {Promise<TransportError>}
   */
  async #explainLoss(failure) {
    if (this.#conn.hidden || (!this.#helloSeen && this.#host.state() !== 'connected')) return failure;
    const probe = await this.#host.path.askStatus(this.#conn.stopSignal);
    if (probe.status !== null) return failure;
    return new TransportError('retry',
      `${failure.message}; the kernel server does not answer /status either: it is lost or unreachable`);
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
    const answered = await this.#host.path.probeServer(this.#conn.stopSignal);
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
   * A poll that failed after being held a while was probably cut by a proxy's idle timeout: later
   * polls ask the server to answer sooner, and the next one goes at once.
   *
   * @returns {boolean} whether the hold was shortened
   */
  #shortenHold(transport, failure, startedAt) {
    const transient = failure.action === 'retry' || failure.action === 'check';
    if (transport.streaming || !transient || !this.#host.active()) return false;
    const held = (this.#conn.now() - startedAt) / 1000;
    if (held < HOLD_CUT_SECONDS) return false;
    this.#pollHold = Math.max(MIN_HOLD_SECONDS, Math.floor(held * HOLD_SHRINK));
    const shorter = `polls now ask to be held at most ${this.#pollHold} s`;
    this.#host.note(new TransportError('retry', `${failure.message}; ${shorter}`, failure.status));
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
    const answered = await this.#host.path.probeServer(controller.signal);
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
    let silence;
    if (this.#helloSeen) {
      silence = new TransportError('retry', `no data from the server for ${grace} s: heartbeats stopped`);
      silence.silentAfterHello = true;
    } else {
      silence = new TransportError('retry', `no data from the server for ${grace} s`);
    }
    this.#watchdog = setTimeout(() => controller.abort(silence), grace * 1000);
  }

  #onEvent({ type, data }, controller) {
    if (controller.signal.aborted) return;
    if (type === 'hello') {
      this.#onHello(JSON.parse(data), controller);
    } else {
      this.#host.onFrame(JSON.parse(data));
    }
  }

  #onHello({ session, ack, heartbeat, max_body: maxBody, max_url: maxUrl }, controller) {
    const conn = this.#conn;
    const host = this.#host;
    if (typeof session !== 'string' || session === '') {
      throw new TransportError('retry', 'the server sent a hello event without a session');
    }
    if (conn.session !== null && session !== conn.session) {
      const change = `from session ${conn.session} to ${session}`;
      throw new TransportError('resync', `the server moved ${change}`);
    }
    host.sender.checkAck(ack);
    conn.session = session;
    if (typeof heartbeat === 'number' && heartbeat > 0) this.#heartbeat = heartbeat;
    if (Number.isSafeInteger(maxUrl) && maxUrl >= MIN_MAX_URL) conn.maxUrl = maxUrl;
    if (Number.isSafeInteger(maxBody) && maxBody > ENVELOPE_BYTES) {
      conn.maxBody = Math.min(maxBody, conn.pathBodyCap);
      conn.outbox.maxFrameBytes = conn.maxBody - ENVELOPE_BYTES;
    }
    conn.outbox.ack(ack);
    conn.ackSent = Math.max(conn.ackSent, conn.inbox.cursor);
    this.#attempt = 0;
    this.#helloSeen = true;
    clearTimeout(this.#firstEventTimer);
    this.#firstEventTimer = undefined;
    this.#armUpgrade();
    if (TRANSPORTS[this.transport].streaming) this.#armWatchdog(controller);
    const moved = this.#helloTransport !== this.transport; // back up, after an upgrade
    this.#helloTransport = this.transport;
    this.#fromMemory = false;
    host.worked(this.transport);
    if (host.state() === 'connected' && host.lastError() === null && !moved) {
      host.sender.scheduleFlush();
      return;
    }
    host.setState('connected', null);
    host.sender.kickFlush();
  }

  #onPoll(answer, controller) {
    if (answer === null || typeof answer !== 'object' || !Array.isArray(answer.frames)) {
      throw new TransportError('retry', 'the answer to a poll has no frames array');
    }
    if (typeof answer.hold === 'number' && answer.hold > 0) this.#serverHold = answer.hold;
    this.#onHello(answer, controller);
    for (const frame of answer.frames) this.#host.onFrame(frame);
    this.#conn.ackSent = Math.max(this.#conn.ackSent, this.#conn.inbox.cursor); // the next poll's cursor acks
  }
}

/** @returns {Promise<void>} resolved after the tasks already queued (timers due now included) */
function nextTask() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function streamOutcome(controller, error) {
  return toTransportError(controller.signal.aborted ? controller.signal.reason : error);
}
