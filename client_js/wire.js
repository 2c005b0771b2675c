/**
 * The words of the wire, one copy each: header names, id rules, transport names, send methods and
 * the sizes the page counts with (see docs/protocol.md).
 */

/** The characters of client ids and batch ids (base64url). */
export const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Characters of a client id: 22 of 64 symbols, 132 random bits. */
export const CLIENT_ID_LENGTH = 22;
/** Characters of the id of a batch sent over GET in parts. */
export const BATCH_ID_LENGTH = 12;
/** A number in a stream header: decimal digits only, at most 16 of them. */
export const HEADER_NUMBER = /^[0-9]{1,16}$/;

/** Header names of the page's requests and of stream answers. */
export const HEADERS = Object.freeze({
  authorization: 'Authorization',
  xsrf: 'X-XSRFToken',
  ngrokSkip: 'ngrok-skip-browser-warning',
  streamOffset: 'Stream-Offset',
  streamEnd: 'Stream-End',
  streamTotal: 'Stream-Total',
  streamWindow: 'Stream-Window',
});

/** The transports of kernel -> page frames, best first (see transports.js). */
export const TRANSPORT_NAMES = Object.freeze(['sse-get', 'sse-post', 'poll']);
/** How page -> kernel frames and upload chunks may go: in request bodies or in the query. */
export const SEND_METHODS = Object.freeze(['post', 'get']);

/** Bytes a batch's envelope (client, session, ack) may take around its frames. */
export const ENVELOPE_BYTES = 1024;
/** The most characters of an error's name or message in an error frame. */
export const MAX_ERROR_TEXT = 16 * 1024;
/** The most characters of a URL built to send over GET, unless the client or the server's hello says otherwise. */
export const DEFAULT_MAX_URL = 8000;
/** The fewest characters of a URL built to send over GET. */
export const MIN_MAX_URL = 1024;

/**
 * @param {number} length
 * @returns {string} `length` random characters of ID_ALPHABET
 */
export function randomId(length) {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (byte) => ID_ALPHABET[byte & 63]).join('');
}

/**
 * @param {Headers} headers
 * @param {string} name
 * @returns {number | null} the header's value when it is a number of HEADER_NUMBER's form
 */
export function headerNumber(headers, name) {
  const value = headers.get(name);
  if (value === null || !HEADER_NUMBER.test(value)) return null;
  return Number(value);
}
