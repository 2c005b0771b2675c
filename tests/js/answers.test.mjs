import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { KernelError, StateError } from '../../client_js/errors.js';
import {
  TransportError, answerDetail, answerRule, checkResponse, hidesAnswer, refusesMethod,
} from '../../client_js/http.js';
import { failOnStreamStatus } from '../../client_js/stream_answer.js';

const { cases } = JSON.parse(readFileSync(new URL('../vectors/answers.json', import.meta.url), 'utf8'));

/** @returns {string} a case's name in failure messages */
function named({ use, status, content_type: type, body }) {
  return `${use} ${status ?? 'no answer'} ${type ?? ''} ${JSON.stringify(body ?? '').slice(0, 40)}`;
}

function answerOf({ status, content_type: type, body }) {
  return new Response(body, { status, headers: { 'content-type': type } });
}

test('the vectors cover every use and action, and each status of the job description', () => {
  assert.ok(cases.length >= 40);
  assert.deepEqual(new Set(cases.map((c) => c.use)), new Set(['call', 'receive', 'stream']));
  const actions = new Set(cases.map((c) => c.action));
  for (const action of ['retry', 'check', 'shrink', 'resync', 'advance', 'fail', 'stop']) {
    assert.ok(actions.has(action), action);
  }
  const statuses = new Set(cases.map((c) => c.status));
  for (const status of [400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504, null]) {
    assert.ok(statuses.has(status), String(status));
  }
});

test('the table gives each answer of the vectors its action', () => {
  for (const c of cases) {
    const code = c.body === null ? null : answerDetail(c.body).code;
    const html = (c.content_type ?? '').includes('text/html');
    const rule = answerRule(c.use, c.status, code, { html });
    assert.equal(rule.action, c.action, named(c));
    assert.equal(rule.otherwise, c.otherwise, named(c));
    assert.equal(typeof rule.text, 'string');
  }
});

test('a call or receive answer becomes a TransportError with the action of the table', async () => {
  for (const c of cases.filter((row) => row.use !== 'stream' && row.status !== null)) {
    const use = c.use;
    const error = await checkResponse(answerOf(c), 'application/json', 'http://kernel.test', use).then(
      () => assert.fail(`${named(c)} passed`),
      (reason) => reason,
    );
    assert.ok(error instanceof TransportError, named(c));
    assert.equal(error.action, c.action, named(c));
    assert.equal(error.status, c.status, named(c));
  }
});

test('a stream answer fails the stream exactly when the table says fail', async () => {
  for (const c of cases.filter((row) => row.use === 'stream' && row.status !== null)) {
    const final = c.action === 'check' ? c.otherwise : c.action;
    const outcome = await failOnStreamStatus(answerOf(c), 7).then(() => null, (reason) => reason);
    if (final !== 'fail') {
      assert.equal(outcome, null, named(c));
      continue;
    }
    const kernel = c.status === 422;
    assert.ok(kernel ? outcome instanceof KernelError : outcome instanceof StateError, named(c));
    assert.match(outcome.message, kernel ? /producer failed/ : new RegExp(`\\(${c.status}\\)`), named(c));
  }
});

test('an unknown use is refused with a clear error', () => {
  assert.throws(() => answerRule('upload', 500), /unknown use of an answer: 'upload'/);
});

test('a refusal of the method and an answer hidden by the path are told apart', () => {
  assert.ok(refusesMethod(405, 'Method Not Allowed'));
  assert.ok(refusesMethod(501, ''));
  assert.ok(refusesMethod(500, 'the server answered 500: Not allowed'));
  assert.ok(!refusesMethod(500, 'the server answered 500: an empty answer'));
  assert.ok(!refusesMethod(403, 'Forbidden'));
  assert.ok(hidesAnswer(500, ''));
  assert.ok(!hidesAnswer(500, 'Internal Server Error'));
  assert.ok(!hidesAnswer(502, ''));
});
