/**
 * A small seeded PRNG (mulberry32) so that randomized tests are reproducible.
 *
 * @param {number} seed
 * @returns {() => number} numbers in [0, 1)
 */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * @param {() => number} random
 * @param {number} below
 * @returns {number} an integer in [0, below)
 */
export function randomInt(random, below) {
  return Math.floor(random() * below);
}

/**
 * Waits until `condition()` is true, polling every few milliseconds.
 *
 * @param {() => boolean} condition
 * @param {number} [timeout] milliseconds before failing
 * @returns {Promise<void>}
 */
export async function waitUntil(condition, timeout = 1000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeout} ms: ${condition}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
