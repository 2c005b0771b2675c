/**
 * What a tab remembers of the path to a kernel server: the transport and the send method that
 * worked last, kept in sessionStorage under the server's origin and path, so that a reload
 * connects at once instead of probing again. A memory older than its lifetime is not used
 * (the page probes again, in case the path changed), and it is forgotten when the remembered
 * transport fails.
 */

/** Seconds a remembered transport is used before the page probes again. */
export const DEFAULT_REMEMBER_SECONDS = 600;
const STORAGE_PREFIX = 'jchannel-transport ';

/**
 * @typedef {object} Remembered
 * @property {string} transport
 * @property {'post' | 'get'} sendMethod
 * @property {number} at when it was found, in milliseconds of the clock
 */

/**
 * @typedef {object} MemoryStorage the part of the Storage interface used here
 * @property {(key: string) => string | null} getItem
 * @property {(key: string, value: string) => void} setItem
 * @property {(key: string) => void} removeItem
 */

/**
 * @returns {MemoryStorage | null} the tab's sessionStorage, or null where there is none (or the
 *   browser refuses it, as for some sandboxed frames)
 */
export function tabStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

/**
 * @param {string} url the server's URL, absolute or relative to the page
 * @returns {string} its origin and path: what one memory is kept under
 */
export function memoryKey(url) {
  try {
    const base = typeof location === 'undefined' ? undefined : location.href;
    const resolved = new URL(url, base);
    return `${resolved.origin}${resolved.pathname.replace(/\/$/, '')}`;
  } catch {
    return url;
  }
}

export class TransportMemory {
  #storage;
  #key;
  #now;
  #lifetime;

  /**
   * @param {object} options
   * @param {MemoryStorage | null} options.storage where the memory is kept; null keeps nothing
   * @param {string} options.url the server's URL
   * @param {() => number} options.now the clock, in milliseconds
   * @param {number} options.seconds how long a memory is used; 0 turns the memory off
   */
  constructor({ storage, url, now, seconds }) {
    if (typeof seconds !== 'number' || !(seconds >= 0)) {
      throw new RangeError(`rememberTransport must be a number of seconds >= 0, not ${seconds}`);
    }
    this.#storage = seconds > 0 ? storage : null;
    this.#key = STORAGE_PREFIX + memoryKey(url);
    this.#now = now;
    this.#lifetime = seconds * 1000;
  }

  /**
   * @returns {Remembered | null} what worked last, unless it is older than the lifetime (then
   *   it is dropped), unreadable or absent
   */
  recall() {
    const text = this.#read();
    if (text === null) return null;
    let value = null;
    try {
      value = JSON.parse(text);
    } catch {
      // written by something else: dropped below
    }
    const valid = value !== null && typeof value === 'object' && typeof value.transport === 'string' &&
      (value.sendMethod === 'post' || value.sendMethod === 'get') && Number.isFinite(value.at);
    const age = valid ? this.#now() - value.at : Infinity;
    if (!valid || age < 0 || age >= this.#lifetime) {
      this.forget();
      return null;
    }
    return { transport: value.transport, sendMethod: value.sendMethod, at: value.at };
  }

  /**
   * Remembers that `transport` and `sendMethod` work. A memory of the same keeps its time, so
   * that the page probes again once the lifetime has passed since the probe that found them.
   *
   * @param {string} transport
   * @param {'post' | 'get'} sendMethod
   */
  remember(transport, sendMethod) {
    const known = this.recall();
    if (known !== null && known.transport === transport && known.sendMethod === sendMethod) return;
    this.#write(JSON.stringify({ transport, sendMethod, at: this.#now() }));
  }

  /** Drops the memory: the next start probes. */
  forget() {
    try {
      this.#storage?.removeItem(this.#key);
    } catch {
      // storage refused: nothing to drop
    }
  }

  #read() {
    try {
      return this.#storage?.getItem(this.#key) ?? null;
    } catch {
      return null;
    }
  }

  #write(text) {
    try {
      this.#storage?.setItem(this.#key, text);
    } catch {
      // storage full or refused: the page probes next time, as without memory
    }
  }
}
