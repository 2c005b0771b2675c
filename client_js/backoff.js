const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

/**
 * How long to wait before retry number `attempt` (0 for the first retry after a success).
 *
 * The first retry is immediate; then 1 s, 2 s, 4 s, ... capped at 30 s, each scaled by a random
 * factor in [0.5, 1) so that many pages do not retry in step.
 *
 * @param {number} attempt
 * @param {() => number} [random] a source of numbers in [0, 1)
 * @returns {number} the delay in milliseconds
 */
export function backoffDelay(attempt, random = Math.random) {
  if (attempt <= 0) return 0;
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempt - 1));
  return Math.round(base * (0.5 + random() / 2));
}
