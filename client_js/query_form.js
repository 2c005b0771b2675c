/**
 * The GET form of what the page sends, for paths that refuse POST (see docs/protocol.md,
 * "Page -> kernel over GET"): bytes in unpadded base64url, which a URL carries unchanged, and
 * the arithmetic of a URL-length bound.
 */

const BINARY_SLICE = 0x8000;

/**
 * @param {Uint8Array} bytes
 * @returns {string} `bytes` in unpadded base64url
 */
export function base64url(bytes) {
  let binary = '';
  for (let at = 0; at < bytes.length; at += BINARY_SLICE) {
    binary += String.fromCharCode.apply(null, bytes.subarray(at, at + BINARY_SLICE));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @param {string} text well-formed text (JSON.stringify output is)
 * @returns {string} its UTF-8 bytes in unpadded base64url
 */
export function base64urlText(text) {
  return base64url(new TextEncoder().encode(text));
}

/**
 * @param {number} characters base64url characters that fit
 * @returns {number} the most bytes whose base64url takes at most `characters`
 */
export function bytesFitting(characters) {
  return Math.max(0, Math.floor(characters / 4) * 3);
}

/**
 * @param {string} url the server's URL, absolute or relative to the page
 * @returns {number} how many characters the browser adds to `url` when it resolves it (the
 *   scheme and host of a relative URL), so that bounds count what goes on the wire
 */
export function resolvedExtra(url) {
  try {
    const base = typeof location === 'undefined' ? undefined : location.href;
    return Math.max(0, new URL(url, base).href.replace(/\/$/, '').length - url.length);
  } catch {
    return 0;
  }
}
