import assert from 'node:assert/strict';
import { afterEach, test as nodeTest } from 'node:test';

import { Client } from '../../client_js/client.js';
import { base64url, base64urlText, bytesFitting } from '../../client_js/query_form.js';
import { FakeServer, jsonResponse } from './fake_server.mjs';
import { waitUntil } from './helpers.mjs';

const URL_BASE = 'http://kernel.test/proxy/8765';
const test = (name, body) => nodeTest(name, { timeout: 3000 }, body);
const clients = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.stop();
  delete globalThis.testChannels;
});

function makeClient(server, options = {}) {
  const client = new Client(URL_BASE, {
    token: 'secret', fetch: server.fetch, random: () => 0.5,
    sleep: () => new Promise((resolve) => setTimeout(resolve, 1)), ...options,
  });
  clients.push(client);
  client.start();
  return client;
}

async function withChannel(server, options = {}) {
  const client = makeClient(server, options);
  await client.ready();
  const code = '(channel) => { (globalThis.testChannels ??= []).push(channel); }';
  server.stream.frame({ seq: 1, type: 'open', call: 1, channel: 3, code });
  await waitUntil(() => server.receivedOfType('result').length === 1);
  return { client, channel: globalThis.testChannels[0] };
}

const notAllowed = () => new Response('Not allowed', { status: 500, headers: { 'content-type': 'text/plain' } });

test('base64url carries any bytes unchanged in a URL, and the bound is arithmetic', () => {
  const bytes = Uint8Array.from({ length: 70000 }, (_, i) => (i * 7) % 256);
  const text = base64url(bytes);
  assert.match(text, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(new Uint8Array(Buffer.from(text, 'base64url')), bytes);
  assert.equal(Buffer.from(base64urlText('é\ud83d\ude00'), 'base64url').toString('utf8'), 'é\ud83d\ude00');
  assert.equal(bytesFitting(8), 6);
  assert.equal(bytesFitting(7), 3);
});

test('a POST refused with "Not allowed" while /status answers moves sending to GET, each frame once', async () => {
  const server = new FakeServer();
  const { client, channel } = await withChannel(server);
  server.onMessages = (body, index) => (server.posts[index].method === 'POST' ? notAllowed() : server.processMessages(body));
  const call = channel.call('f', 1);
  await waitUntil(() => server.received.some((frame) => frame.name === 'f'));
  assert.equal(client.sendMethod, 'get');
  assert.match(client.lastError.message, /Not allowed, while the kernel server answers GET: the path refuses POST, so page -> kernel messages and uploads now go in GET requests/);
  const viaGet = server.posts.filter((post) => post.method === 'GET');
  assert.ok(viaGet.length >= 1 && viaGet[0].url.searchParams.get('messages') !== null);
  server.stream.frame({ seq: 2, type: 'result', call: 1, value: 'ok' });
  assert.equal(await call, 'ok');
  assert.equal(server.received.filter((frame) => frame.name === 'f').length, 1);
});

test('a batch longer than maxUrl goes in parts, one after the other, and arrives once', async () => {
  const server = new FakeServer();
  const { client, channel } = await withChannel(server, { sendMethod: 'get', maxUrl: 1500 });
  assert.equal(client.sendMethod, 'get');
  const big = 'x'.repeat(5000);
  channel.call('big', big).catch(() => {});
  await waitUntil(() => server.received.some((frame) => frame.name === 'big'));
  assert.ok(server.partRequests.length >= 4);
  for (const { url } of server.partRequests) assert.ok(url.href.length <= 1500, url.href.length);
  assert.deepEqual(server.received.find((frame) => frame.name === 'big').args, [big]);
  assert.equal(server.posts.filter((post) => post.method === 'POST').length, 0);
});

test('an empty 500 on a GET is explained by /status: a session that is over resyncs', async () => {
  const server = new FakeServer();
  const { client, channel } = await withChannel(server, { sendMethod: 'get' });
  server.onStatus = () => jsonResponse(200, { connected: true, client: client.id, session: 'other' });
  server.onMessages = () => new Response('', { status: 500 });
  await assert.rejects(channel.call('f'), /the path hid the status, and \/status shows that this session is over/);
});

test('an empty 500 with /status unanswered says the kernel server is lost, not refused', async () => {
  const server = new FakeServer();
  const { client, channel } = await withChannel(server, { sendMethod: 'get' });
  server.onStatus = () => new Response('Bad Gateway', { status: 502, headers: { 'content-type': 'text/plain' } });
  server.onMessages = () => new Response('', { status: 500 });
  channel.call('f').catch(() => {});
  await waitUntil(() => /lost or unreachable/.test(client.lastError?.message ?? ''));
  assert.doesNotMatch(client.lastError.message, /refuses/);
  assert.equal(client.sendMethod, 'get');
});

test('an answer cut twice at one size makes later answers ask for fewer bytes', async () => {
  const server = new FakeServer();
  const { client, channel } = await withChannel(server, { sendMethod: 'get' });
  let cuts = 2; // the same cut twice: a limit of the path, not a lost connection
  server.onMessages = (body) => {
    if (cuts === 0) return server.processMessages(body);
    cuts -= 1;
    let pulls = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (pulls++ === 0) controller.enqueue(new TextEncoder().encode('{"ack":1,"frames":[' + ' '.repeat(3999)));
        else controller.error(new TypeError('network error'));
      },
    });
    return new Response(stream, { headers: { 'content-type': 'application/json' } });
  };
  channel.call('f').catch(() => {});
  await waitUntil(() => server.posts.some((post) => post.url?.searchParams.get('bytes') === '2009'));
  assert.match(client.lastError.message, /cut after 4018 bytes.*at most 2009 bytes/);
});

test('an answered part of a batch resets the backoff: a path losing every other request does not slow it down more and more', async () => {
  const server = new FakeServer();
  const delays = [];
  let parts = 0;
  const lossy = (resource, init) => {
    if (String(resource).includes('&part=') && parts++ % 2 === 1) {
      return Promise.reject(new TypeError('the connection was reset'));
    }
    return server.fetch(resource, init);
  };
  const sleep = (milliseconds) => {
    delays.push(milliseconds);
    return new Promise((resolve) => setTimeout(resolve, 1));
  };
  const { channel } = await withChannel(server, { sendMethod: 'get', maxUrl: 1500, fetch: lossy, sleep });
  const big = 'x'.repeat(5000);
  channel.call('big', big).catch(() => {});
  await waitUntil(() => server.received.some((frame) => frame.name === 'big'));
  assert.ok(delays.length >= 2, `${delays.length} retries`);
  assert.deepEqual([...new Set(delays)], [0]);
});
