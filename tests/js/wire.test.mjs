import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TRANSPORT_ORDER, TRANSPORTS } from '../../client_js/transports.js';
import {
  CLIENT_ID_LENGTH, HEADERS, ID_ALPHABET, SEND_METHODS, TRANSPORT_NAMES, headerNumber, randomId,
} from '../../client_js/wire.js';

test('ids are of the id alphabet and of the length asked', () => {
  assert.equal(ID_ALPHABET.length, 64);
  const id = randomId(CLIENT_ID_LENGTH);
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(randomId(CLIENT_ID_LENGTH), id);
});

test('transport names and send methods have one copy, which the transports use', () => {
  assert.equal(TRANSPORT_ORDER, TRANSPORT_NAMES);
  assert.deepEqual(Object.keys(TRANSPORTS).sort(), [...TRANSPORT_NAMES].sort());
  for (const name of TRANSPORT_NAMES) assert.equal(TRANSPORTS[name].name, name);
  assert.deepEqual(SEND_METHODS, ['post', 'get']);
  assert.ok(Object.isFrozen(HEADERS));
});

test('a stream header is a number only when it is decimal digits', () => {
  const headers = new Headers({ [HEADERS.streamOffset]: '1024', [HEADERS.streamEnd]: '-1', [HEADERS.streamTotal]: '1e3' });
  assert.equal(headerNumber(headers, HEADERS.streamOffset), 1024);
  assert.equal(headerNumber(headers, HEADERS.streamEnd), null);
  assert.equal(headerNumber(headers, HEADERS.streamTotal), null);
  assert.equal(headerNumber(headers, HEADERS.streamWindow), null);
  assert.equal(headerNumber(new Headers({ 'Stream-Offset': '1'.repeat(17) }), 'Stream-Offset'), null);
});
