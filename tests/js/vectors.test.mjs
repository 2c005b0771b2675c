// The shared conformance vectors (tests/vectors/*.json) against the page's protocol core:
// client_js/frames.js and the Outbox and Inbox of client_js/session.js. tests/protocol/test_vectors.py
// runs the same cases against the kernel's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { decodeFrame, decodeItem, encodeFrame, FrameError, FRAME_TYPES } from '../../client_js/frames.js';
import { Inbox, Outbox } from '../../client_js/session.js';

const VECTORS = new URL('../vectors/', import.meta.url);
const FRAMES = JSON.parse(readFileSync(new URL('frames.json', VECTORS), 'utf8'));
const SESSIONS = JSON.parse(readFileSync(new URL('sessions.json', VECTORS), 'utf8'));

/** @param {{name: string}[]} cases */
function checkNames(cases) {
  const names = cases.map((item) => item.name);
  assert.equal(new Set(names).size, names.length, 'vector names must be unique');
  return cases;
}

for (const vector of checkNames(FRAMES.valid)) {
  test(`valid frame: ${vector.name}`, () => {
    const { seq, frame } = decodeFrame(JSON.parse(vector.json));
    assert.equal(seq, vector.seq);
    assert.deepEqual(frame, vector.frame);
    assert.deepEqual(Object.keys(frame), Object.keys(vector.frame)); // the table's order
    assert.equal(encodeFrame(vector.seq, frame), vector.json);
  });
}

for (const vector of checkNames(FRAMES.invalid)) {
  test(`invalid frame: ${vector.name}`, () => {
    const allowed = vector.allowed ?? null;
    if (allowed === null) {
      assert.throws(() => decodeFrame(vector.data), (error) => {
        assert.ok(error instanceof FrameError);
        assert.ok(error.message.includes(vector.error), `${error.message} lacks ${vector.error}`);
        return true;
      });
    }
    if (vector.item === null) {
      assert.throws(() => decodeItem(vector.data), (error) => error.message.includes(vector.error));
      return;
    }
    const item = decodeItem(vector.data, allowed);
    assert.ok('invalid' in item, 'the item decoded as a frame');
    const { call, kind, reason } = item.invalid;
    assert.deepEqual({ seq: item.seq, call, kind }, vector.item);
    assert.ok(reason.includes(vector.error), `${reason} lacks ${vector.error}`);
  });
}

test('frame vectors cover every type', () => {
  assert.deepEqual(new Set(FRAMES.valid.map((vector) => vector.frame.type)), new Set(FRAME_TYPES));
});

/**
 * The vectors' name for an error of the page's core.
 *
 * @param {Error} error
 * @returns {string}
 */
function errorCode(error) {
  if (error instanceof RangeError && error.message.includes('too far ahead')) return 'too_far_ahead';
  if (error instanceof RangeError && error.message.includes('beyond the last frame sent')) {
    return 'beyond_sent';
  }
  throw new assert.AssertionError({ message: `an error the vectors do not name: ${error}` });
}

/** Lets every settled `enqueue` run its callbacks. */
async function settle() {
  for (let i = 0; i < 20; i += 1) await Promise.resolve();
}

class PageSide {
  /** @param {{max_messages?: number, max_bytes?: number, max_ahead?: number}} config */
  constructor(config) {
    this.outbox = new Outbox({ maxMessages: config.max_messages, maxBytes: config.max_bytes });
    this.inbox = new Inbox({ maxAhead: config.max_ahead });
    /** @type {{seq: number | null}[]} */
    this.sends = [];
  }

  /**
   * @param {Record<string, any>} step
   * @param {() => any} action
   */
  static expect(step, action) {
    if (!('error' in step)) return action();
    assert.throws(action, (error) => errorCode(error) === step.error);
    return null;
  }

  /** @param {Record<string, any>} step */
  async step(step) {
    const { op } = step;
    if (op === 'send') {
      const send = { seq: null };
      this.sends.push(send);
      this.outbox.enqueue({ ...step.frame }).then((seq) => { send.seq = seq; }, () => {});
      await settle();
      if (step.waits) {
        assert.equal(send.seq, null, 'the frame was numbered at once');
      } else {
        assert.equal(send.seq, step.seq, 'the frame waits for room, or got another number');
      }
    } else if (op === 'ack') {
      PageSide.expect(step, () => this.outbox.ack(step.upto));
      await settle();
    } else if (op === 'receive') {
      const delivered = PageSide.expect(step, () => this.inbox.receive(step.seq, step.frame));
      if ('delivered' in step) assert.deepEqual(delivered, step.delivered);
    } else if (op === 'reconnect') {
      // the page's outbox after a hello whose ack is the cursor: what it posts again
      const resent = PageSide.expect(step, () => {
        this.outbox.ack(step.cursor);
        return this.outbox.batch().map((text) => JSON.parse(text).seq);
      });
      if ('resent' in step) assert.deepEqual(resent, step.resent);
      await settle();
    } else if (op === 'check') {
      const state = {
        cursor: this.inbox.cursor,
        held: this.inbox.held,
        last_seq: this.outbox.lastSeq,
        acked: this.outbox.acked,
        waiting: this.outbox.waiting,
        bytes: this.outbox.bytes,
        outbox: this.outbox.batch(),
      };
      const { op: _, ...expected } = step;
      const actual = Object.fromEntries(Object.keys(expected).map((name) => [name, state[name]]));
      assert.deepEqual(actual, expected);
    } else {
      assert.fail(`unknown operation ${op}`);
    }
  }
}

for (const vector of checkNames(SESSIONS.cases)) {
  test(`session: ${vector.name}`, async () => {
    const side = new PageSide(vector.config);
    for (const [number, step] of vector.steps.entries()) {
      try {
        await side.step(step);
      } catch (error) {
        error.message = `step ${number} ${JSON.stringify(step)}: ${error.message}`;
        throw error;
      }
    }
    side.outbox.reset();
  });
}
