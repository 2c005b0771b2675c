/**
 * Frames as the page reads and writes them: the table of docs/protocol.md ("Frames"), with
 * the same rules and error messages as jchannel_http/protocol/frames.py. `decodeFrame` validates a
 * parsed JSON value; `decodeItem` does so for an item of a batch, which keeps its place in the
 * sequence when it has a usable `seq`; `encodeFrame` writes a frame's JSON text, fields in the
 * table's order.
 */

/** The fields of each frame type after `type`, in order; optional ones may be left out. */
export const FRAME_FIELDS = Object.freeze({
  open: Object.freeze(['call', 'channel', 'code']),
  close: Object.freeze(['call', 'channel']),
  echo: Object.freeze(['call', 'channel', 'args']),
  call: Object.freeze(['call', 'channel', 'name', 'args', 'stream']),
  pipe: Object.freeze(['call', 'channel', 'stream']),
  result: Object.freeze(['call', 'value', 'stream']),
  error: Object.freeze(['call', 'name', 'message']),
  stop: Object.freeze(['call']),
});

/** The frame types, in the order of the table. */
export const FRAME_TYPES = Object.freeze(Object.keys(FRAME_FIELDS));

const OPTIONAL = new Set(['call.stream', 'result.stream']);

/** @type {Record<string, 'integer' | 'string' | 'array' | 'any'>} */
const FIELD_KINDS = {
  call: 'integer',
  channel: 'integer',
  code: 'string',
  args: 'array',
  name: 'string',
  message: 'string',
  value: 'any',
  stream: 'integer',
};

/** A value that is not a valid frame; `message` says why. */
export class FrameError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * @typedef {object} InvalidItem
 * @property {number | null} call the item's `call` id, when it is a positive integer
 * @property {string | null} kind the item's `type`, when it is a string
 * @property {string} reason why it is not a valid frame
 */

/**
 * @param {unknown} value
 * @returns {value is number} whether `value` is an integer >= 1 that JavaScript holds exactly
 */
function isPositiveInteger(value) {
  return Number.isSafeInteger(value) && /** @type {number} */ (value) >= 1;
}

/**
 * @param {unknown} data
 * @returns {boolean}
 */
function isObject(data) {
  return typeof data === 'object' && data !== null && !Array.isArray(data);
}

/**
 * @param {string} text
 * @returns {string} `text` quoted as the kernel's messages quote names
 */
function quoted(text) {
  return `'${text}'`;
}

/**
 * The sequence number of a parsed frame.
 *
 * @param {unknown} data
 * @returns {number}
 * @throws {FrameError} when `data` is not an object or has no usable `seq`
 */
function seqOf(data) {
  if (!isObject(data)) throw new FrameError('a frame must be a JSON object');
  const { seq } = /** @type {Record<string, unknown>} */ (data);
  if (!isPositiveInteger(seq)) throw new FrameError("field 'seq' must be a positive integer");
  return seq;
}

/**
 * @param {string} name
 * @param {unknown} value
 * @throws {FrameError} when `value` is not of the field's JSON type
 */
function checkField(name, value) {
  const kind = FIELD_KINDS[name];
  if (kind === 'integer' && !isPositiveInteger(value)) {
    throw new FrameError(`field ${quoted(name)} must be a positive integer`);
  }
  if (kind === 'string' && typeof value !== 'string') {
    throw new FrameError(`field ${quoted(name)} must be a JSON str`);
  }
  if (kind === 'array' && !Array.isArray(value)) {
    throw new FrameError(`field ${quoted(name)} must be a JSON list`);
  }
}

/**
 * Validates a parsed JSON value as a frame.
 *
 * @param {unknown} data
 * @returns {{seq: number, frame: Record<string, unknown>}} the frame without `seq`, `type` first
 *   and the other fields in the table's order (optional ones only when given)
 * @throws {FrameError} naming what is wrong
 */
export function decodeFrame(data) {
  const seq = seqOf(data);
  const fields = /** @type {Record<string, unknown>} */ (data);
  const { type } = fields;
  if (typeof type !== 'string' || !Object.hasOwn(FRAME_FIELDS, type)) {
    const shown = typeof type === 'string' ? quoted(type) : String(JSON.stringify(type) ?? 'None');
    const expected = [...FRAME_TYPES].sort().map(quoted).join(', ');
    throw new FrameError(`unknown frame type ${shown}; expected one of [${expected}]`);
  }
  const names = FRAME_FIELDS[type];
  const unknown = Object.keys(fields)
    .filter((name) => name !== 'seq' && name !== 'type' && !names.includes(name))
    .sort();
  if (unknown.length > 0) {
    const list = unknown.map(quoted).join(', ');
    throw new FrameError(`unknown field(s) [${list}] in a ${quoted(type)} frame`);
  }
  /** @type {Record<string, unknown>} */
  const frame = { type };
  for (const name of names) {
    const given = Object.hasOwn(fields, name) && fields[name] !== undefined;
    if (!given && OPTIONAL.has(`${type}.${name}`)) continue;
    if (!given) throw new FrameError(`a ${quoted(type)} frame needs the field ${quoted(name)}`);
    checkField(name, fields[name]);
    frame[name] = fields[name];
  }
  return { seq, frame };
}

/**
 * Like `decodeFrame`, for an item of a batch: an item with a usable `seq` that is not a valid
 * frame (or not of one of the `allowed` types) gives `invalid` in its place, so the rest of the
 * batch goes on.
 *
 * @param {unknown} data
 * @param {readonly string[] | null} [allowed] the types this way may carry (default: all)
 * @returns {{seq: number, frame: Record<string, unknown>} | {seq: number, invalid: InvalidItem}}
 * @throws {FrameError} only when the item has no usable `seq`
 */
export function decodeItem(data, allowed = null) {
  const seq = seqOf(data);
  try {
    const decoded = decodeFrame(data);
    const kind = /** @type {string} */ (decoded.frame.type);
    if (allowed !== null && !allowed.includes(kind)) {
      const call = isPositiveInteger(decoded.frame.call) ? decoded.frame.call : null;
      const reason = `${quoted(kind)} frames cannot be sent this way (only ${allowed.join(', ')})`;
      return { seq, invalid: { call, kind, reason } };
    }
    return decoded;
  } catch (error) {
    if (!(error instanceof FrameError)) throw error;
    const { call, type } = /** @type {Record<string, unknown>} */ (data);
    return {
      seq,
      invalid: {
        call: isPositiveInteger(call) ? call : null,
        kind: typeof type === 'string' ? type : null,
        reason: error.message,
      },
    };
  }
}

/**
 * The JSON text of `frame` numbered `seq`: `seq`, `type`, then the fields in the table's order
 * (an optional field only when it is neither undefined nor null).
 *
 * @param {number} seq
 * @param {Record<string, unknown>} frame
 * @returns {string}
 * @throws {FrameError} when the frame's type is unknown
 */
export function encodeFrame(seq, frame) {
  const { type } = frame;
  if (typeof type !== 'string' || !Object.hasOwn(FRAME_FIELDS, type)) {
    throw new FrameError(`unknown frame type ${String(type)}`);
  }
  /** @type {Record<string, unknown>} */
  const ordered = { seq, type };
  for (const name of FRAME_FIELDS[type]) {
    const value = frame[name];
    if (OPTIONAL.has(`${type}.${name}`) && (value === undefined || value === null)) continue;
    ordered[name] = value === undefined ? null : value;
  }
  return JSON.stringify(ordered);
}
