import { Channel } from './channel.js';
import { Client, trimTrailingSlash } from './client.js';
import { KernelError, StateError } from './errors.js';
import { MetaGenerator, ProgressFeed, StreamSource } from './meta_generator.js';

/** @type {Map<string, Client>} */
const clientsByUrl = new Map();

/**
 * The server's base URL and the token that `url` carries, if any: `<url>?token=T` and
 * `<url>/page?token=T` (what `server.page_url` is) both give `<url>` and `T`.
 *
 * @param {string} url
 * @returns {{base: string, token: string | undefined}}
 */
export function splitToken(url) {
  const query = url.indexOf('?');
  if (query < 0) return { base: trimTrailingSlash(url), token: undefined };
  const params = new URLSearchParams(url.slice(query + 1));
  const token = params.get('token');
  if (token === null) return { base: trimTrailingSlash(url), token: undefined };
  params.delete('token');
  let base = trimTrailingSlash(url.slice(0, query));
  if (base.endsWith('/page')) base = base.slice(0, -'/page'.length);
  const rest = params.toString();
  return { base: rest === '' ? base : `${base}?${rest}`, token };
}

/**
 * Connects this page to the kernel server at `url`, once per URL: while a client for the URL is
 * neither stopped nor failed, later calls return that client (and ignore their options).
 *
 * `url` may carry the token (`<url>?token=T`, or `server.page_url`), which is then used unless
 * `options.token` is given. jupyter-jchannel's form `start(url, maxMsgSize)` is accepted: a
 * number in place of the options is ignored (the server's `max_body` bounds what the page
 * sends).
 *
 * @param {string} url the server's base URL
 * @param {ConstructorParameters<typeof Client>[1] | number} [options] see ClientOptions in
 *   client.js
 * @returns {Promise<Client>} resolved once the client is connected; rejected if it fails first
 *   (for example with a wrong token)
 */
export async function start(url, options = {}) {
  const given = typeof options === 'object' && options !== null ? options : {};
  const { base, token } = splitToken(url);
  const key = trimTrailingSlash(base);
  let client = clientsByUrl.get(key);
  if (client === undefined || client.state === 'stopped' || client.state === 'failed') {
    client = new Client(key, token !== undefined && given.token === undefined
      ? { ...given, token } : given);
    clientsByUrl.set(key, client);
    client.start();
  }
  return client.ready();
}

/**
 * Stops and forgets the client for `url` (which may carry the token, as in `start`), if any.
 *
 * @param {string} url
 * @returns {Promise<void>} resolved once the client stopped (as jupyter-jchannel's `stop`,
 *   it can be awaited)
 */
export async function stop(url) {
  const key = trimTrailingSlash(splitToken(url).base);
  const client = clientsByUrl.get(key);
  clientsByUrl.delete(key);
  client?.stop();
}

/** The API installed as `globalThis.jchannel`. */
export const jchannel = Object.freeze({
  start,
  stop,
  Client,
  Channel,
  KernelError,
  StateError,
  MetaGenerator,
  ProgressFeed,
  StreamSource,
});

if (globalThis.jchannel === undefined) globalThis.jchannel = jchannel;
