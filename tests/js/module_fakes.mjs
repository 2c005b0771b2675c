import { Connection } from '../../client_js/connection.js';
import { Path } from '../../client_js/path.js';

/**
 * A Connection to http://kernel.test whose requests go to `handler` (a fake server: a function
 * of the URL and the init, returning a Response), with sleeps that end on the next task (so that loops yield to timers).
 *
 * @param {(url: URL, init: RequestInit) => Response | Promise<Response>} handler
 * @param {{maxUrl?: number}} [options]
 * @returns {{conn: Connection, requests: {url: URL, init: RequestInit}[], stop: AbortController}}
 */
export function fakeConnection(handler, { maxUrl = 8000 } = {}) {
  const requests = [];
  const stop = new AbortController();
  const conn = new Connection({
    url: 'http://kernel.test',
    token: 'secret',
    fetch: async (resource, init = {}) => {
      const url = new URL(resource);
      requests.push({ url, init });
      return handler(url, init);
    },
    sleep: () => new Promise((resolve) => setTimeout(resolve, 0)), // yields to timers
    random: () => 0,
    now: Date.now,
    stopSignal: stop.signal,
    bounds: {},
    maxUrl,
  });
  return { conn, requests, stop };
}

/**
 * @param {Connection} conn
 * @returns {{path: Path, notes: Error[]}} a Path whose notes are recorded
 */
export function fakePath(conn) {
  const notes = [];
  return { path: new Path(conn, { note: (error) => notes.push(error), deadline: () => 1 }), notes };
}
