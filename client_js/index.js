import { Channel } from './channel.js';
import { Client, trimTrailingSlash } from './client.js';
import { KernelError, StateError } from './errors.js';
import { MetaGenerator, ProgressFeed, StreamSource } from './meta_generator.js';

/** @type {Map<string, Client>} */
const clientsByUrl = new Map();

/**
 * Connects this page to the kernel server at `url`, once per URL: while a client for the URL is
 * neither stopped nor failed, later calls return that client (and ignore their options).
 *
 * @param {string} url the server's base URL
 * @param {ConstructorParameters<typeof Client>[1]} [options] see ClientOptions in client.js
 * @returns {Promise<Client>} resolved once the client is connected; rejected if it fails first
 *   (for example with a wrong token)
 */
export async function start(url, options = {}) {
  const key = trimTrailingSlash(url);
  let client = clientsByUrl.get(key);
  if (client === undefined || client.state === 'stopped' || client.state === 'failed') {
    client = new Client(key, options);
    clientsByUrl.set(key, client);
    client.start();
  }
  return client.ready();
}

/**
 * Stops and forgets the client for `url`, if any.
 *
 * @param {string} url
 * @returns {void}
 */
export function stop(url) {
  const key = trimTrailingSlash(url);
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
