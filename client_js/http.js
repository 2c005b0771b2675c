import { HEADERS } from './wire.js';
import { joinBytes } from './bytes.js';

/**
 * What the page does with each HTTP answer, in one table for calls, receive requests and streams
 * alike (see README, "How it works", and tests/vectors/answers.json), and the reading of answers that
 * goes with it: `TransportError` (a failed request with its action), `checkResponse`, `readJson`.
 *
 * Every status here either changes what the next request says or ends the retries: a status
 * retried with the same request (the default, for transient ones: 408, 429, 5xx, ...) must be one
 * that can pass by itself. A 400 is not: the kernel refused the request as it is (a frame it
 * cannot parse), and sending it again would be refused again, forever.
 */

/**
 * @typedef {'retry' | 'check' | 'shrink' | 'resync' | 'advance' | 'fail' | 'stop'} AnswerAction
 *   'retry': the same request again, after a backoff; 'check': the path, not the kernel server,
 *   may have answered (a refused method, an empty 500): ask `/status` what it means, and send
 *   again at once over GET when the path refuses POST; 'shrink': halve the body bound and send
 *   again; 'resync': start a new session, failing what waits with the reason; 'advance': try the
 *   next transport; 'fail': fail this call or stream; 'stop': stop the client and tell the user
 */

/**
 * @typedef {'call' | 'receive' | 'stream'} AnswerUse 'call': page -> kernel frames (POST or GET
 *   /messages); 'receive': the transport's request (/events, /poll); 'stream': a stream's request
 */

/**
 * @typedef {object} AnswerRule
 * @property {AnswerAction} action
 * @property {string} text why, for the error's message
 * @property {AnswerAction} otherwise for 'check': the action when the check finds no refusal
 */

/** Statuses with which a path may refuse a request's method rather than the request itself. */
export const REFUSAL_STATUSES = new Set([403, 405, 500, 501]);

/**
 * @param {number | null} status a failed answer's
 * @param {string} text what it said
 * @returns {boolean} whether it refuses the method itself (405, 501, or Colab's "Not allowed"),
 *   rather than being a hiccup that only counts when it comes back several times
 */
export function refusesMethod(status, text) {
  return status === 405 || status === 501 || /not allowed/i.test(text);
}

/**
 * @param {number} status
 * @param {string} text
 * @returns {boolean} whether the answer is an empty 500, with which some paths hide what the
 *   kernel server answered
 */
export function hidesAnswer(status, text) {
  return status === 500 && text === '';
}

/** What to do about a refused token: the kernel prints the page's address with its token. */
export const TOKEN_HINT = 'open the address the kernel printed (server.page_url, with its token)';

/** @type {Record<string, [AnswerAction, string, AnswerAction?]>} rows common to calls and receive */
const CALL_ROWS = {
  400: ['resync', 'the server refused a request (400 bad_request), so the session starts over'],
  401: ['stop', `the server refused the token (401): ${TOKEN_HINT}`],
  // allow_origins does not list this page's origin: the server's message names the exact value
  '403 forbidden_origin': ['stop', "the server refuses this page's origin (403 forbidden_origin)"],
  409: ['retry', 'another page is connected (409), retrying until it leaves'],
  410: ['resync', 'the server no longer holds this session (410 resync)'],
  413: ['shrink', "a message is larger than the server's max_body (413)"],
  // the kernel server's own answer to a bug it hit handling the request: the same request would
  // hit it again (a 500 from a proxy, without this code, is checked and retried)
  '500 internal_error': ['resync', 'the server failed on a request (500 internal_error), so the session starts over'],
};

/** @type {Record<AnswerUse, Record<string, [AnswerAction, string, AnswerAction?]>>} */
const ROWS = {
  call: CALL_ROWS,
  receive: {
    ...CALL_ROWS,
    413: ['stop', "a message is larger than the server's max_body (413)"],
    404: ['advance', 'this transport is not served here (404)'],
    405: ['advance', 'this transport is not allowed here (405)'],
    501: ['advance', 'this transport is not implemented here (501)'],
  },
  stream: {
    400: ['fail', 'the server refused the request (400)'],
    401: ['fail', `the server refused the token (401): ${TOKEN_HINT}`],
    '403 foreign': ['check', 'the path answered 403', 'fail'],
    403: ['fail', 'the server refused the request (403)'],
    404: ['fail', 'the server does not know this stream or session (404)'],
    410: ['fail', 'the server no longer holds this session (410)'],
    413: ['shrink', 'a chunk is larger than the path lets through (413)'],
    '422 stream_error': ['fail', 'the other end of the stream failed (422 stream_error)'],
  },
};

/**
 * What to do with an answer. `status` null is a request that got no answer (a network error);
 * `code` is the JSON `error` of the kernel server's own error answers, null for any other answer
 * (a proxy's); `html` says the answer was an HTML page.
 *
 * @param {AnswerUse} use
 * @param {number | null} status
 * @param {string | null} [code]
 * @param {{html?: boolean}} [how]
 * @returns {AnswerRule}
 */
export function answerRule(use, status, code = null, { html = false } = {}) {
  const rows = ROWS[use];
  if (rows === undefined) throw new RangeError(`unknown use of an answer: '${use}'`);
  const rule = (row) => ({ action: row[0], text: row[1], otherwise: row[2] ?? row[0] });
  if (status === null) return rule(['retry', 'the request got no answer']);
  if (code !== null && Object.hasOwn(rows, `${status} ${code}`)) return rule(rows[`${status} ${code}`]);
  if (code === null && Object.hasOwn(rows, `${status} foreign`)) return rule(rows[`${status} foreign`]);
  if (html && use !== 'stream') {
    if (status === 413 && use === 'call') return rule(rows[413]);
    return rule(['retry', `the server answered ${status} with an HTML page`]);
  }
  if (Object.hasOwn(rows, status)) return rule(rows[status]);
  const checked = use === 'stream' ? REFUSAL_STATUSES.has(status) : REFUSAL_STATUSES.has(status) || status >= 500;
  if (code === null && checked) return rule(['check', `the server answered ${status}`, 'retry']);
  return rule(['retry', `the server answered ${status}`]);
}

/**
 * @param {string} text an error answer's body
 * @returns {{detail: string, code: string | null}} its explanation (the `message` of a JSON
 *   error, else the start of the text) and its JSON `error` code, if any
 */
export function answerDetail(text) {
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

/**
 * A failed request, with what to do about it: an AnswerAction, or 'upgrade' (a planned end: try
 * the best transport again) or 'refused' (the path refuses POST: send over GET).
 */
export class TransportError extends Error {
  /**
   * @param {AnswerAction | 'upgrade' | 'refused'} action
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
 * @param {AnswerAction | 'upgrade' | 'refused'} action
 * @param {string} message
 * @param {number | null} status
 * @returns {TransportError} marked as the path's answer
 */
export function foreignError(action, message, status) {
  const error = new TransportError(action, message, status);
  error.foreign = true;
  return error;
}

/**
 * @param {unknown} error
 * @returns {TransportError} `error`, or a retry that names it
 */
export function toTransportError(error) {
  if (error instanceof TransportError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new TransportError(answerRule('call', null).action, message);
}

/**
 * @param {Response} response
 * @param {string} expected the content type a success must have
 * @param {string} baseUrl the server's URL, named in errors
 * @param {AnswerUse} [use] which rows of the table apply
 * @param {'retry' | 'advance'} [mismatch] the action when a success has another content type
 * @returns {Promise<void>} rejected with a TransportError unless `response` is a success of type
 *   `expected`
 */
export async function checkResponse(response, expected, baseUrl, use = 'call', mismatch = 'retry') {
  // Age above 0 comes from a cache that answered from what it stored (the server never sends it;
  // Varnish sends Age: 0 on every answer it passed on)
  const age = Number(response.headers.get('age') ?? 0);
  if (age > 0) {
    await discardBody(response);
    throw new TransportError('retry', `a cache on the way answered from what it stored (Age: ${age}), `
      + 'although the server marks every answer no-store, so no message can arrive: make it pass every '
      + `request to ${baseUrl} (Varnish: return (pass) in vcl_recv; a CDN: a bypass rule for this path)`,
    response.status);
  }
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.includes('text/html')) {
    await discardBody(response);
    const { action } = answerRule(use, response.status, null, { html: true });
    throw htmlPageError(action, response.status, expected, baseUrl);
  }
  if (response.ok && contentType.includes(expected)) return;
  if (response.ok) {
    await discardBody(response);
    const different = `expected ${expected} but got '${contentType}'`;
    throw new TransportError(mismatch, different, response.status);
  }
  const { detail, code } = answerDetail(await response.text().catch(() => ''));
  const { action, text } = answerRule(use, response.status, code);
  const shown = detail || (response.status === 500 ? 'an empty answer' : '');
  const error = new TransportError(action, shown ? `${text}: ${shown}` : text, response.status);
  error.foreign = code === null;
  throw error;
}

function htmlPageError(action, status, expected, baseUrl) {
  if (status >= 500) {
    const gateway = `a proxy answered ${status} with an HTML error page instead of ${expected}`;
    return new TransportError(action, `${gateway}: the kernel server is slow or gone`, status);
  }
  return new TransportError(
    action,
    `the server answered with an HTML page (status ${status}) instead of ${expected}, ` +
      'probably a tunnel warning or login page: ' +
      `open ${baseUrl}/openapi.json once in this browser`,
    status,
  );
}

/**
 * Reads a JSON answer, telling a body cut short by the path from one that is not JSON.
 *
 * @param {Response} response a success
 * @param {AbortSignal} signal the request's
 * @returns {Promise<unknown>}
 */
export async function readJson(response, signal) {
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
  const bytes = joinBytes(parts);
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
 * @param {Response} response
 * @returns {Promise<void>} once its body, if any, is cancelled
 */
export async function discardBody(response) {
  await response.body?.cancel().catch(() => {});
}

/**
 * @param {string} token the server's token
 * @param {string} url the server's URL
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>} the headers every request of the page carries, plus `extra`
 */
export function requestHeaders(token, url, extra) {
  const headers = {
    [HEADERS.authorization]: `Bearer ${token}`,
    [HEADERS.ngrokSkip]: '1',
    ...extra,
  };
  const xsrf = sameOriginXsrfToken(url);
  if (xsrf !== null) headers[HEADERS.xsrf] = xsrf;
  return headers;
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
