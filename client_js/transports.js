import { createParser } from './sse_parser.js';
import { TRANSPORT_NAMES } from './wire.js';

/**
 * How kernel -> page frames reach the page: one object per transport, tried in
 * `TRANSPORT_ORDER` until one works (see README, "Transports").
 *
 * A transport makes one request and reads its answer, handing what arrives to the client through
 * a `ReceiveLink`; the client owns the session, the timers and the choice of transport.
 */

/**
 * @typedef {object} ReceiveLink the client's side of one receive attempt
 * @property {(path: string, init: RequestInit, expected: string, query?: Record<string, string>)
 *   => Promise<Response>} request fetches `<url><path>` with the client id, cursor and session in
 *   the query (plus `query`) and the client's headers; rejects unless the answer is a success of
 *   content type `expected`
 * @property {() => void} onBytes called whenever bytes arrive
 * @property {(event: {type: string, data: string, id: string}) => void} onEvent an event of a stream
 * @property {(answer: unknown) => void} onPoll the parsed JSON answer of a poll
 * @property {(response: Response) => Promise<unknown>} readJson reads a JSON answer; an answer
 *   the path cut short rejects with a TransportError whose `cutAt` says after how many bytes
 * @property {number | null} hold seconds a poll may be held; null for the server's `poll_hold`
 */

/**
 * @typedef {object} ReceiveEnd how an attempt ended without an error
 * @property {number | null} reconnectAfter milliseconds to wait before the next attempt when the
 *   end was planned (a poll's answer, or a stream's `retry:` hint before it ended); null when a
 *   stream just ended, which counts as a failure
 */

/**
 * @typedef {object} Transport
 * @property {string} name 'sse-get', 'sse-post' or 'poll'; the server reports it in /status
 * @property {'GET' | 'POST'} method the request method
 * @property {boolean} streaming whether it is an event stream, which a buffering proxy can hold
 * @property {(link: ReceiveLink, signal: AbortSignal) => Promise<ReceiveEnd>} receive one attempt
 */

/**
 * @param {'GET' | 'POST'} method
 * @returns {Transport} an event stream read with a `fetch` of `method`
 */
function eventStreamTransport(method) {
  return {
    name: `sse-${method.toLowerCase()}`,
    method,
    streaming: true,
    async receive(link, signal) {
      const init = {
        method,
        headers: { Accept: 'text/event-stream' },
        signal,
        cache: 'no-store',
      };
      const response = await link.request('/events', init, 'text/event-stream');
      return readEventStream(response, link, signal);
    },
  };
}

/**
 * @param {Response} response
 * @param {ReceiveLink} link
 * @param {AbortSignal} signal
 * @returns {Promise<ReceiveEnd>} once the stream ends or `signal` aborts
 */
async function readEventStream(response, link, signal) {
  let reconnectAfter = null;
  const parser = createParser({
    onEvent: (event) => link.onEvent(event),
    onRetry: (milliseconds) => {
      reconnectAfter = milliseconds;
    },
  });
  if (response.body === null) return { reconnectAfter };
  const reader = response.body.getReader();
  const cancel = () => reader.cancel().catch(() => undefined);
  signal.addEventListener('abort', cancel, { once: true });
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || signal.aborted) return { reconnectAfter };
      link.onBytes();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/** @type {Transport} a request held until frames wait or `poll_hold` passes, then asked again */
const pollTransport = {
  name: 'poll',
  method: 'GET',
  streaming: false,
  async receive(link, signal) {
    const query = link.hold === null ? {} : { hold: String(link.hold) };
    const init = { headers: { Accept: 'application/json' }, signal, cache: 'no-store' };
    const response = await link.request('/poll', init, 'application/json', query);
    const answer = await link.readJson(response);
    link.onBytes();
    link.onPoll(answer);
    return { reconnectAfter: 0 };
  },
};

/** @type {Readonly<Record<string, Transport>>} every transport by name */
export const TRANSPORTS = Object.freeze({
  'sse-get': eventStreamTransport('GET'),
  'sse-post': eventStreamTransport('POST'),
  poll: pollTransport,
});

/** The order in which a client that is not told which transport to use tries them. */
export const TRANSPORT_ORDER = TRANSPORT_NAMES;

/**
 * @param {string | null | undefined} forced a transport name, or null/undefined to probe
 * @returns {string[]} the transports to try, in order
 * @throws {RangeError} when `forced` names no transport
 */
export function transportCandidates(forced) {
  if (forced === null || forced === undefined) return [...TRANSPORT_ORDER];
  if (!Object.hasOwn(TRANSPORTS, forced)) {
    const known = TRANSPORT_ORDER.join("', '");
    throw new RangeError(`unknown transport '${forced}': use '${known}' or leave it unset`);
  }
  return [forced];
}
