import { KernelError, StateError } from './errors.js';
import { answerRule } from './http.js';

/** How long one request of a stream may take before it is abandoned and retried. */
export const STREAM_REQUEST_TIMEOUT_MS = 120 * 1000;

/**
 * @param {Response} response
 * @param {number} key
 * @returns {Promise<object | null>} the JSON answer of a success; null for a failure worth a retry
 * @throws {StateError | KernelError} for a failure that no retry can fix
 */
export async function readStreamAnswer(response, key) {
  if (response.ok) return response.json().catch(() => null);
  await failOnStreamStatus(response, key);
  return null;
}

/**
 * Throws the error a stream request's failure stands for (see http.js, use 'stream'), unless a
 * retry may fix it.
 *
 * @param {Response} response a failed response
 * @param {number} key
 * @returns {Promise<void>} resolved when the request should be retried
 */
export async function failOnStreamStatus(response, key) {
  const text = await response.text().catch(() => '');
  let detail = {};
  try {
    detail = JSON.parse(text) ?? {};
  } catch {
    detail = { message: text.slice(0, 200) };
  }
  const code = typeof detail.error === 'string' ? detail.error : null;
  const rule = answerRule('stream', response.status, code);
  const action = rule.action === 'check' ? rule.otherwise : rule.action;
  if (action !== 'fail') return;
  const message = typeof detail.message === 'string' ? detail.message : `status ${response.status}`;
  if (response.status === 422 && code === 'stream_error') throw new KernelError(String(detail.name), message);
  throw new StateError(`stream ${key}: ${message} (${response.status})`);
}

/**
 * @param {unknown} error an upload's failure, shown in the console
 */
export function reportStreamError(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}
