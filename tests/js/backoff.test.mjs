import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay } from '../../client_js/backoff.js';

test('the first retry is immediate, then 1 s doubling, capped at 30 s', () => {
  const high = (attempt) => backoffDelay(attempt, () => 1);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 50, 5000].map(high),
    [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000],
  );
});

test('jitter scales the delay between half and all of it', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 7].map((attempt) => backoffDelay(attempt, () => 0)),
    [0, 500, 1000, 2000, 15000],
  );
  assert.deepEqual(
    [1, 2, 6].map((attempt) => backoffDelay(attempt, () => 0.5)),
    [750, 1500, 22500],
  );
  for (let attempt = 1; attempt < 12; attempt += 1) {
    const delay = backoffDelay(attempt);
    const base = Math.min(30000, 1000 * 2 ** (attempt - 1));
    assert.ok(delay >= base / 2 && delay <= base, `attempt ${attempt}: ${delay}`);
  }
});
