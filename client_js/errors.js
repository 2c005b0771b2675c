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
