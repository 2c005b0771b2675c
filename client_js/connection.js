import { requestHeaders } from './http.js';
import { resolvedExtra } from './query_form.js';
import { Inbox, Outbox } from './session.js';
import { CLIENT_ID_LENGTH, DEFAULT_MAX_URL, MIN_MAX_URL, randomId } from './wire.js';

/**
 * What one client's receiver, sender, path and calls share: who the page is, the session, the
 * frames in both directions and the bounds the server and the path set. Plain state, no I/O of
 * its own but `fetch`.
 */
export class Connection {
  #token;
  #fetch;

  /**
   * @param {object} options
   * @param {string} options.url the server's base URL, without a trailing slash
   * @param {string} options.token
   * @param {typeof fetch} options.fetch
   * @param {(milliseconds: number, signal: AbortSignal) => Promise<void>} options.sleep
   * @param {() => number} options.random
   * @param {() => number} options.now
   * @param {AbortSignal} options.stopSignal aborted when the client stops or fails
   * @param {{maxMessages?: number, maxBytes?: number, maxAhead?: number}} options.bounds
   * @param {number} options.maxUrl
   */
  constructor({ url, token, fetch, sleep, random, now, stopSignal, bounds, maxUrl }) {
    this.#token = token;
    this.#fetch = fetch;
    /** @type {string} */
    this.url = url;
    /** @type {string} */
    this.id = randomId(CLIENT_ID_LENGTH);
    /** @type {string | null} */
    this.session = null;
    /** @type {number} bumped whenever the session ends: work of an older epoch is dropped */
    this.epoch = 0;
    this.outbox = new Outbox({ maxMessages: bounds.maxMessages, maxBytes: bounds.maxBytes });
    this.inbox = new Inbox({ maxAhead: bounds.maxAhead });
    /** @type {number} the inbox cursor last told to the server */
    this.ackSent = 0;
    /** @type {'post' | 'get'} how frames and upload chunks go to the kernel now */
    this.sendMethod = 'post';
    /** @type {boolean} whether sendMethod was given to the client */
    this.sendForced = false;
    /** @type {number} the most characters of a URL built to send over GET */
    this.maxUrl = Number.isSafeInteger(maxUrl) && maxUrl >= MIN_MAX_URL ? maxUrl : DEFAULT_MAX_URL;
    /** @type {number} characters the browser adds to `url` when it resolves it */
    this.urlExtra = resolvedExtra(url);
    /** @type {number} the most bytes of a request body (the server's max_body, the path's cap) */
    this.maxBody = Infinity;
    /** @type {number} a body size the path refused (413): later bodies stay under it */
    this.pathBodyCap = Infinity;
    /** @type {number | null} most bytes of frames per answer, once a path cut a larger one */
    this.answerBytes = null;
    /** @type {boolean} whether the page was hidden (it released the server) */
    this.hidden = false;
    this.sleep = sleep;
    this.random = random;
    this.now = now;
    this.stopSignal = stopSignal;
  }

  /**
   * @param {Record<string, string>} [extra]
   * @returns {Record<string, string>} the headers of every request (the token among them)
   */
  headers(extra) {
    return requestHeaders(this.#token, this.url, extra);
  }

  /**
   * @param {string} resource
   * @param {RequestInit} init
   * @returns {Promise<Response>}
   */
  async fetch(resource, init) {
    const fetchOnce = this.#fetch; // called unbound, as the global fetch wants
    return fetchOnce(resource, init);
  }

  /**
   * @param {string} url
   * @returns {number} characters `url` may still grow by under maxUrl
   */
  room(url) {
    return this.maxUrl - url.length - this.urlExtra;
  }
}
