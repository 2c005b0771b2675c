// A page in node: the real client_js Client, with node's own fetch, for tests that drive it
// from Python (tests/support/node_page.py) as they drive a browser page.
//
//   node tests/js/run_page_client.mjs <server url> <token> [<option JSON>]
//
// <option JSON> holds Client options (transport, sendMethod, ...). Once connected it writes
// {"connected": <transport>} on stdout; then, for each line {"id": n, "evaluate": <source>,
// "arg": <value>} on stdin, it evaluates the source in the global scope (a function is called
// with arg, a promise awaited) and writes {"id": n, "value": <result>} or
// {"id": n, "error": <text>}. Requests run at once, each answered when it settles. The line
// {"exit": true}, or the end of stdin, stops the client and ends the process.
import { createInterface } from 'node:readline';

import { installPageGlobals } from './page_globals.mjs';

installPageGlobals();
const { Client } = await import('../../client_js/client.js');

const [url, token, optionText = '{}'] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write('usage: run_page_client.mjs <url> <token> [<option JSON>]\n');
  process.exit(2);
}

/** @param {Record<string, unknown>} line */
function say(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const client = new Client(url, { ...JSON.parse(optionText), token });
globalThis.jchannelClient = client;
client.start();
await client.ready();
say({ connected: client.transport });

/**
 * @param {string} source
 * @param {unknown} arg
 * @returns {Promise<unknown>}
 */
async function evaluate(source, arg) {
  const value = (0, eval)(source); // eslint-disable-line no-eval
  return typeof value === 'function' ? await value(arg) : await value;
}

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (line.trim() === '') continue;
  const request = JSON.parse(line);
  if (request.exit) break;
  evaluate(request.evaluate, request.arg).then(
    (value) => say({ id: request.id, value: value === undefined ? null : value }),
    (error) => say({ id: request.id, error: String(error?.stack ?? error) }),
  );
}
client.stop();
process.exit(0);
