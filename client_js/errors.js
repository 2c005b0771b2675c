/**
 * An exception raised on the kernel side, reported back to the page.
 */
export class KernelError extends Error {
  /**
   * @param {string} type the Python exception class name
   * @param {string} detail the exception message
   */
  constructor(type, detail) {
    super(`${type}: ${detail}`);
    this.name = 'KernelError';
    /** @type {string} */
    this.type = type;
    /** @type {string} */
    this.detail = detail;
  }
}

/**
 * A call named a method the channel's handler does not have. Its name is `AttributeError`, the
 * name the kernel gives the same error (its `MissingMethod` is an `AttributeError`, as in
 * jupyter-jchannel), so a missing method reads the same in both directions:
 * `AttributeError: handler has no method 'x'`.
 */
export class MissingMethod extends Error {
  /**
   * @param {string} message
   */
  constructor(message) {
    super(message);
    this.name = 'AttributeError';
  }
}

/**
 * The channel, client or session is not in a state that allows the operation.
 */
export class StateError extends Error {
  /**
   * @param {string} message
   */
  constructor(message) {
    super(message);
    this.name = 'StateError';
  }
}

/**
 * The class name and message to report for a thrown value, whatever it is: an Error, a
 * primitive (its type and its text), or an object that cannot describe itself (a getter of
 * `name` or `message` that throws, a `toString` that throws, a Proxy that throws on every
 * access). It never throws: a part that cannot be read is replaced by a description of why.
 *
 * @param {unknown} thrown
 * @returns {{name: string, message: string}}
 */
export function describeThrown(thrown) {
  if (thrown === null) return { name: 'null', message: 'null' };
  if (typeof thrown !== 'object' && typeof thrown !== 'function') {
    return { name: typeof thrown, message: textOf(thrown) ?? `a ${typeof thrown} was thrown` };
  }
  let name;
  let message;
  let problem = null;
  try {
    name = thrown.name;
    message = thrown.message;
  } catch (error) {
    problem = error;
  }
  if (problem !== null) {
    return { name: 'Error', message: undescribed(`reading it threw ${briefly(problem)}`) };
  }
  const nameText = (name === undefined || name === null || name === '') ? null : textOf(name);
  let messageText = (message === undefined || message === null) ? null : textOf(message);
  if (messageText === null) messageText = textOf(thrown);
  return {
    name: nameText ?? 'Error',
    message: messageText ?? undescribed('it has no message and no working toString'),
  };
}

/**
 * @param {string} why
 * @returns {string}
 */
function undescribed(why) {
  return `<the thrown value could not be described: ${why}>`;
}

/**
 * @param {unknown} value
 * @returns {string | null} `String(value)`, or null when that throws or gives no string
 */
function textOf(value) {
  try {
    const text = String(value);
    return typeof text === 'string' ? text : null;
  } catch {
    return null;
  }
}

/**
 * @param {unknown} error an error thrown while describing another
 * @returns {string} a short account of it that cannot throw in turn
 */
function briefly(error) {
  if (typeof error !== 'object' || error === null) return textOf(error) ?? typeof error;
  try {
    const { name, message } = error;
    if (typeof name === 'string' && typeof message === 'string') return `${name}: ${message}`;
  } catch {
    // fall through
  }
  return 'an error that cannot be described either';
}
