import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeThrown } from '../../client_js/errors.js';
import { MAX_DEPTH, checkSendable } from '../../client_js/sendable.js';

function refusal(value, root = 'result') {
  try {
    checkSendable(value, root);
  } catch (error) {
    assert.ok(error instanceof TypeError, `a TypeError, not ${error}`);
    return error.message;
  }
  return null;
}

function nested(depth) {
  let value = 1;
  for (let i = 0; i < depth; i += 1) value = i % 2 ? [value] : { a: value };
  return value;
}

test('values JSON carries faithfully pass, undefined by JSON.stringify conventions', () => {
  const values = [
    null, true, 0, -0.5, 1e300, 'text', '\ud800 lone \udfff surrogates', [], {},
    [1, 'a', null, undefined, [{ b: [true] }]], { a: undefined, b: { c: [1.5] } },
    undefined, new Date(0), { toJSON: () => 'replaced' }, new Number(3), new String('s'),
    Object.create(null), new Map([[1, 2]]), nested(MAX_DEPTH),
    { shared: (() => { const x = { y: 1 }; return [x, x]; })() },
    { toJSON() { return this; }, plain: 1 },
  ];
  for (const value of values) assert.equal(refusal(value), null, JSON.stringify(value));
});

test('what JSON cannot carry is refused, naming where it sits', () => {
  const cyclic = { items: [] };
  cyclic.items.push({ back: cyclic });
  const cases = [
    [() => 1, 'args', 'cannot send args: a function'],
    [[1, 2, { x: () => 1 }], 'args', 'cannot send args[2].x: a function'],
    [{ items: [0, 1, 2, NaN] }, 'result', 'cannot send result.items[3]: NaN'],
    [[Infinity], 'result', 'cannot send result[0]: Infinity'],
    [{ 'a b': -Infinity }, 'result', 'cannot send result["a b"]: -Infinity'],
    [[Symbol('s')], 'args', 'cannot send args[0]: a symbol'],
    [{ n: 10n }, 'result', 'cannot send result.n: a BigInt'],
    [{ n: new Number(NaN) }, 'result', 'cannot send result.n: NaN'],
    [{ toJSON: () => NaN }, 'result', 'cannot send result: NaN'],
    [cyclic, 'result', 'cannot send result.items[0].back: a cycle (a value that contains itself)'],
  ];
  for (const [value, root, message] of cases) assert.equal(refusal(value, root), message);
  const self = [];
  self.push(self);
  assert.equal(refusal(self), 'cannot send result[0]: a cycle (a value that contains itself)');
  const deep = refusal(nested(MAX_DEPTH + 1));
  assert.match(deep, /^cannot send result\.a\[0\]\.a.*\.\.\.: more than 250 arrays or objects deep$/);
  assert.ok(deep.length < 300, 'the path is cut');
});

test('the check is cheap for a 10,000-element array of small objects', () => {
  const value = Array.from({ length: 10000 }, (_, i) => ({ id: i, name: `item ${i}`, ok: true, score: i / 3, tags: ['a', 'b'] }));
  checkSendable(value, 'result'); // warm up
  const rounds = 20;
  const started = performance.now();
  for (let i = 0; i < rounds; i += 1) checkSendable(value, 'result');
  const check = (performance.now() - started) / rounds;
  const stringifyStarted = performance.now();
  for (let i = 0; i < rounds; i += 1) JSON.stringify(value);
  const stringify = (performance.now() - stringifyStarted) / rounds;
  console.log(`checkSendable: ${check.toFixed(2)} ms, JSON.stringify: ${stringify.toFixed(2)} ms`);
  assert.ok(check < 25, `the check took ${check} ms`);
});

test('thrown values are always described, however broken', () => {
  const throwing = () => {
    throw new Error('no');
  };
  const hostile = new Proxy({}, { get: throwing, has: throwing, getPrototypeOf: throwing, ownKeys: throwing });
  const badName = { get name() { throw new Error('name getter'); }, message: 'm' };
  const badText = { toString: throwing };
  const cases = [
    [new RangeError('out'), { name: 'RangeError', message: 'out' }],
    ['oops', { name: 'string', message: 'oops' }],
    [42, { name: 'number', message: '42' }],
    [null, { name: 'null', message: 'null' }],
    [undefined, { name: 'undefined', message: 'undefined' }],
    [Symbol('s'), { name: 'symbol', message: 'Symbol(s)' }],
    [{ name: 'Custom', message: 7 }, { name: 'Custom', message: '7' }],
    [badName, { name: 'Error', message: '<the thrown value could not be described: reading it threw Error: name getter>' }],
    [badText, { name: 'Error', message: '<the thrown value could not be described: it has no message and no working toString>' }],
    [hostile, { name: 'Error', message: '<the thrown value could not be described: reading it threw Error: no>' }],
    [{ name: { toString: throwing }, message: 'kept' }, { name: 'Error', message: 'kept' }],
  ];
  for (const [thrown, expected] of cases) assert.deepEqual(describeThrown(thrown), expected);
  const ruthless = new Proxy({}, { get() { throw hostile; } });
  assert.deepEqual(describeThrown(ruthless), {
    name: 'Error',
    message: '<the thrown value could not be described: reading it threw an error that cannot be described either>',
  });
});
