import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TransportError, foreignError } from '../../client_js/http.js';
import { jsonResponse } from './fake_server.mjs';
import { fakeConnection, fakePath } from './module_fakes.mjs';

const status = (fields = {}) => jsonResponse(200, { connected: true, session: 's1', ...fields });

test('a POST answered "Not allowed" while /status answers is a refusal of POST', async () => {
  const { conn } = fakeConnection(() => status());
  const { path } = fakePath(conn);
  const failure = foreignError('check', 'the server answered 500: Not allowed', 500);
  const explained = await path.explain(failure, 'POST');
  assert.equal(explained.action, 'refused');
  assert.match(explained.message, /the path refuses POST/);
});

test('other odd answers to POST count as a refusal only the third time in a row', async () => {
  const { conn } = fakeConnection(() => status());
  const { path } = fakePath(conn);
  const odd = () => foreignError('check', 'the server answered 403: Forbidden', 403);
  assert.equal((await path.explain(odd(), 'POST')).action, 'retry');
  path.passed(); // a request passed in between: the count starts over
  assert.equal((await path.explain(odd(), 'POST')).action, 'retry');
  assert.equal((await path.explain(odd(), 'POST')).action, 'retry');
  assert.equal((await path.explain(odd(), 'POST')).action, 'refused');
});

test('an unanswered /status says the server is lost; another session on /status means resync', async () => {
  const lost = fakeConnection(() => Promise.reject(new TypeError('Failed to fetch')));
  const explained = await fakePath(lost.conn).path.explain(foreignError('check', 'the server answered 502', 502), 'GET');
  assert.equal(explained.action, 'retry');
  assert.match(explained.message, /lost or unreachable/);
  const moved = fakeConnection(() => status({ session: 's2' }));
  moved.conn.session = 's1';
  const over = await fakePath(moved.conn).path.explain(foreignError('check', 'the server answered 500', 500), 'GET');
  assert.equal(over.action, 'resync');
  const hidden = fakeConnection(() => new Response('', { status: 500 }));
  const hid = await fakePath(hidden.conn).path.explain(foreignError('check', 'the server answered 500', 500), 'GET');
  assert.match(hid.message, /empty 500 too/);
});

test('a refused POST moves sending to GET once, unless POST is forced', () => {
  const { conn } = fakeConnection(() => status());
  const { path, notes } = fakePath(conn);
  const refused = foreignError('refused', 'the path refuses POST', 500);
  assert.equal(path.refusedPost(refused, true).action, 'advance');
  assert.equal(conn.sendMethod, 'get');
  assert.equal(path.refusedPost(refused, false).action, 'retry');
  assert.equal(notes.length, 1);
  const forced = fakeConnection(() => status());
  forced.conn.sendForced = true;
  const kept = fakePath(forced.conn).path.refusedPost(refused, false);
  assert.equal(forced.conn.sendMethod, 'post');
  assert.match(kept.message, /sendMethod 'post' is forced/);
});

test('answers shrink only after two cuts near one size, and never below 1024 bytes', () => {
  const { conn } = fakeConnection(() => status());
  const { path } = fakePath(conn);
  const cut = (at) => Object.assign(new TransportError('retry', `cut after ${at}`), { cutAt: at });
  assert.equal(path.shrinkAnswers(cut(10000)), false);
  assert.equal(path.shrinkAnswers(cut(50000)), false); // another size: a lost connection
  assert.equal(path.shrinkAnswers(cut(50400)), true);
  assert.equal(conn.answerBytes, 25200);
  path.shrinkAnswers(cut(1500));
  assert.equal(path.shrinkAnswers(cut(1500)), true);
  assert.equal(conn.answerBytes, 1024);
  path.shrinkAnswers(cut(1500));
  assert.equal(path.shrinkAnswers(cut(1500)), false);
});
