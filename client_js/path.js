import { TransportError, foreignError, hidesAnswer, refusesMethod } from './http.js';

/** The fewest bytes of frames a page asks an answer to carry after a path cut a larger one. */
const MIN_ANSWER_BYTES = 1024;
/** How far apart, as a fraction, two cuts may be and still count as one limit of the path. */
const CUT_TOLERANCE = 0.1;
/** Odd answers to POST in a row (while /status answers) after which POST counts as refused. */
const ODD_ANSWERS_BEFORE_REFUSAL = 3;

/**
 * @typedef {object} PathHost what the path needs from the client
 * @property {(error: Error) => void} note sets the client's lastError and tells its listener
 * @property {() => number} deadline seconds a `/status` probe may take (firstEventDeadline)
 */

/**
 * What the path between the page and the kernel server lets through, learned from its answers:
 * whether it refuses POST (then frames go over GET), whether it cuts answers (then they carry
 * fewer bytes), and what `GET /status` says about an answer that may be the path's own.
 */
export class Path {
  #conn;
  #host;
  /** @type {number | null} where the latest answer was cut */
  #lastCut = null;
  /** @type {Promise<boolean> | null} a check of a refused POST under way */
  #refusalCheck = null;
  /** odd answers to POSTs in a row while the server answered GET /status */
  #oddAnswers = 0;

  /**
   * @param {Connection} conn
   * @param {PathHost} host
   */
  constructor(conn, host) {
    this.#conn = conn;
    this.#host = host;
  }

  /** A request passed: odd answers before it were passing hiccups. */
  passed() {
    this.#oddAnswers = 0;
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
  async explain(failure, method) {
    const conn = this.#conn;
    if (conn.hidden) return failure;
    const probe = await this.askStatus(conn.stopSignal);
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
      const plain = refusesMethod(failure.status, said);
      this.#oddAnswers += 1;
      if (plain || this.#oddAnswers >= ODD_ANSWERS_BEFORE_REFUSAL) {
        return foreignError('refused', `${said}, while the kernel server answers GET: the path refuses POST`,
          failure.status);
      }
      return foreignError('retry', `${said}, while the kernel server answers GET: retrying`, failure.status);
    }
    const { session, connected, client } = probe.status;
    if (conn.session !== null && typeof session === 'string' && session !== conn.session) {
      return foreignError('resync', `${said}; the path hid the status, and /status shows that this session is over`,
        failure.status);
    }
    if (connected === true && typeof client === 'string' && client !== conn.id) {
      return foreignError('retry', `${said}; the path hid the status: another page is connected, retrying until it leaves`,
        failure.status);
    }
    return foreignError('retry', `${said}; the path hid the kernel server's answer while /status answers: retrying`,
      failure.status);
  }

  /**
   * POST is refused on the path: frames and chunks go in GET requests from now on (unless
   * POST is forced, when the client keeps retrying and says why).
   *
   * @param {TransportError} failure
   * @param {boolean} receiving whether a receive request (sse-post) was refused
   * @returns {TransportError}
   */
  refusedPost(failure, receiving) {
    const conn = this.#conn;
    if (conn.sendForced && conn.sendMethod === 'post') {
      const forced = `${failure.message}, and sendMethod 'post' is forced: retrying`;
      return foreignError(receiving ? 'advance' : 'retry', forced, failure.status);
    }
    const moved = conn.sendMethod !== 'get';
    conn.sendMethod = 'get';
    if (moved) {
      this.#host.note(foreignError('retry',
        `${failure.message}, so page -> kernel messages and uploads now go in GET requests`, failure.status));
    }
    return foreignError(receiving ? 'advance' : 'retry', failure.message, failure.status);
  }

  /**
   * A stream's chunk POST got an answer that may be a refusal of POST: check, once at a time.
   *
   * @param {TransportError} failure
   * @returns {Promise<boolean>} whether chunks now go in GET requests
   */
  async checkRefusal(failure) {
    if (this.#conn.sendMethod === 'get') return true;
    this.#refusalCheck ??= this.explain(failure, 'POST').then((explained) => {
      if (explained.action === 'refused') this.refusedPost(explained, false);
      return this.#conn.sendMethod === 'get';
    }).finally(() => {
      this.#refusalCheck = null;
    });
    return this.#refusalCheck;
  }

  /**
   * An answer was cut after `failure.cutAt` bytes (a path that limits answers): later answers
   * carry at most half as many bytes of frames (at least one frame always goes).
   *
   * @param {TransportError} failure
   * @returns {boolean} whether the bound shrank (false once it is as small as it gets)
   */
  shrinkAnswers(failure) {
    // A path that limits answers cuts them at the same size every time; a cut at a size of its
    // own is a lost connection (retried as it is). So only the second cut near one size counts.
    const previous = this.#lastCut;
    this.#lastCut = failure.cutAt;
    if (previous === null || Math.abs(failure.cutAt - previous) > previous * CUT_TOLERANCE) return false;
    this.#lastCut = null;
    const next = Math.max(MIN_ANSWER_BYTES, Math.floor(failure.cutAt / 2));
    const conn = this.#conn;
    if (conn.answerBytes !== null && next >= conn.answerBytes) return false;
    conn.answerBytes = next;
    this.#host.note(new TransportError('retry',
      `${failure.message}; answers now carry at most ${next} bytes of frames`, failure.status));
    return true;
  }

  /**
   * Asks for `GET <url>/status`, a small answer no buffering proxy holds back.
   *
   * @param {AbortSignal} signal
   * @returns {Promise<boolean>} whether the kernel server answered within firstEventDeadline
   */
  async probeServer(signal) {
    return (await this.askStatus(signal)).status !== null;
  }

  /**
   * @param {AbortSignal} signal
   * @returns {Promise<{status: object | null, hidden: boolean}>} the server's `/status` when it
   *   answered within firstEventDeadline; `hidden` when the path answered an empty 500 instead
   */
  async askStatus(signal) {
    const conn = this.#conn;
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal.addEventListener('abort', abort, { once: true });
    const timer = setTimeout(abort, this.#host.deadline() * 1000);
    try {
      const response = await conn.fetch(`${conn.url}/status`, {
        headers: conn.headers({ Accept: 'application/json' }),
        cache: 'no-store',
        signal: controller.signal,
      });
      const contentType = response.headers.get('content-type') ?? '';
      if (!response.ok || !contentType.includes('application/json')) {
        const text = await response.text().catch(() => '');
        return { status: null, hidden: hidesAnswer(response.status, text) };
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
}
