const DEFAULT_MAX_MESSAGES = 10000;
const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_AHEAD = 10000;
const SEQ_HEAD_BYTES = '{"seq":,'.length + String(Number.MAX_SAFE_INTEGER).length;

/**
 * @typedef {object} OutboxEntry
 * @property {number} seq
 * @property {string} json the frame as JSON text, `seq` included
 * @property {number} bytes the UTF-8 length of `json`
 */

/**
 * @typedef {object} PreparedFrame
 * @property {Record<string, unknown>} frame
 * @property {string} rest the frame's JSON text without its opening brace
 * @property {number} restBytes the UTF-8 length of `rest`
 */

/**
 * @typedef {object} Waiter
 * @property {PreparedFrame} prepared
 * @property {(seq: number) => void} resolve
 * @property {(error: Error) => void} reject
 */

/**
 * The frames sent in one direction and not yet acknowledged, numbered 1, 2, 3, ...
 *
 * `push` always accepts a frame; `enqueue` waits until the frame fits (see `hasRoom`; first come,
 * first served), and nothing is ever dropped before it is acknowledged.
 */
export class Outbox {
  /** @type {OutboxEntry[]} */
  #entries = [];
  /** @type {Waiter[]} */
  #waiting = [];
  #bytes = 0;
  #lastSeq = 0;
  #acked = 0;

  /**
   * @param {{maxMessages?: number, maxBytes?: number, maxFrameBytes?: number}} [options]
   *   maxMessages and maxBytes bound the outbox (see `hasRoom`); a frame whose JSON text is longer
   *   than maxFrameBytes is refused with a RangeError
   */
  constructor({
    maxMessages = DEFAULT_MAX_MESSAGES,
    maxBytes = DEFAULT_MAX_BYTES,
    maxFrameBytes = Infinity,
  } = {}) {
    /** @type {number} */
    this.maxMessages = maxMessages;
    /** @type {number} */
    this.maxBytes = maxBytes;
    /** @type {number} */
    this.maxFrameBytes = maxFrameBytes;
  }

  /** @returns {number} the number of frames not yet acknowledged */
  get size() {
    return this.#entries.length;
  }

  /** @returns {number} the UTF-8 size of the frames not yet acknowledged */
  get bytes() {
    return this.#bytes;
  }

  /** @returns {number} the last sequence number assigned (0 before the first frame) */
  get lastSeq() {
    return this.#lastSeq;
  }

  /** @returns {number} the highest sequence number acknowledged */
  get acked() {
    return this.#acked;
  }

  /** @returns {number} the number of `enqueue` calls waiting for room */
  get waiting() {
    return this.#waiting.length;
  }

  /**
   * Whether a frame of `bytes` UTF-8 bytes (`seq` included) fits: always into an empty outbox
   * (one large frame can always go), else while fewer than maxMessages frames are held and the
   * held bytes plus `bytes` stay within maxBytes (docs/protocol.md, "Sessions").
   *
   * @param {number} [bytes]
   * @returns {boolean}
   */
  hasRoom(bytes = 0) {
    if (this.#entries.length === 0) return true;
    return this.#entries.length < this.maxMessages && this.#bytes + bytes <= this.maxBytes;
  }

  /**
   * Appends a frame at once, whatever the bounds, and sets its `seq`.
   *
   * @param {Record<string, unknown>} frame
   * @returns {number} the sequence number assigned
   * @throws {TypeError} when the frame cannot be serialized as JSON
   * @throws {RangeError} when the frame is longer than maxFrameBytes
   */
  push(frame) {
    return this.#commit(this.#prepare(frame));
  }

  /**
   * Appends a frame as soon as there is room and no earlier `enqueue` is still waiting.
   *
   * @param {Record<string, unknown>} frame
   * @returns {Promise<number>} the sequence number assigned; rejected at once when the frame cannot
   *   be serialized or is too long, and with the reason given to `reset` if the outbox is reset
   *   first
   */
  enqueue(frame) {
    let prepared;
    try {
      prepared = this.#prepare(frame);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#waiting.length === 0 && this.hasRoom(this.#sizeOf(prepared))) {
      return Promise.resolve(this.#commit(prepared));
    }
    return new Promise((resolve, reject) => this.#waiting.push({ prepared, resolve, reject }));
  }

  /**
   * Drops every frame up to `seq`, which the other side has processed.
   *
   * @param {number} seq a cumulative acknowledgement; values below `acked` are ignored
   * @throws {RangeError} when `seq` is not an integer >= 0 or is above the last sequence number
   */
  ack(seq) {
    if (!Number.isSafeInteger(seq) || seq < 0) {
      throw new RangeError(`invalid acknowledgement ${seq}`);
    }
    if (seq > this.#lastSeq) {
      throw new RangeError(`ack ${seq} is beyond the last frame sent (${this.#lastSeq})`);
    }
    if (seq <= this.#acked) return;
    this.#acked = seq;
    let count = 0;
    while (count < this.#entries.length && this.#entries[count].seq <= seq) {
      this.#bytes -= this.#entries[count].bytes;
      count += 1;
    }
    this.#entries.splice(0, count);
    this.#admitWaiting();
  }

  /**
   * The JSON texts of the oldest frames whose total size, with the commas between them, fits in
   * `maxBytes`; at least one frame when the outbox is not empty.
   *
   * @param {number} [maxBytes]
   * @returns {string[]}
   */
  batch(maxBytes = Infinity) {
    const texts = [];
    let total = 0;
    for (const entry of this.#entries) {
      const cost = entry.bytes + (texts.length > 0 ? 1 : 0);
      if (texts.length > 0 && total + cost > maxBytes) break;
      texts.push(entry.json);
      total += cost;
    }
    return texts;
  }

  /**
   * Forgets every frame and numbering, as for a new session; waiting `enqueue` calls are rejected.
   *
   * @param {Error} [reason]
   */
  reset(reason = new Error('the outbox was reset')) {
    const waiting = this.#waiting;
    this.#entries = [];
    this.#waiting = [];
    this.#bytes = 0;
    this.#lastSeq = 0;
    this.#acked = 0;
    for (const waiter of waiting) waiter.reject(reason);
  }

  /**
   * @param {Record<string, unknown>} frame
   * @returns {PreparedFrame}
   */
  #prepare(frame) {
    const { seq, ...fields } = frame;
    const text = JSON.stringify(fields);
    if (typeof text !== 'string' || !text.startsWith('{"')) {
      throw new TypeError('a frame must be a JSON object with at least one field');
    }
    const rest = text.slice(1);
    const restBytes = utf8Length(rest);
    if (restBytes + SEQ_HEAD_BYTES > this.maxFrameBytes) {
      const size = restBytes + 1;
      throw new RangeError(`a frame of ${size} bytes exceeds the limit of ${this.maxFrameBytes}`);
    }
    return { frame, rest, restBytes };
  }

  /**
   * @param {PreparedFrame} prepared
   * @returns {number}
   */
  #commit({ frame, rest, restBytes }) {
    const seq = this.#lastSeq + 1;
    const head = `{"seq":${seq},`;
    this.#lastSeq = seq;
    frame.seq = seq;
    const entry = { seq, json: head + rest, bytes: head.length + restBytes };
    this.#entries.push(entry);
    this.#bytes += entry.bytes;
    return seq;
  }

  /**
   * @param {PreparedFrame} prepared
   * @returns {number} the UTF-8 length of the frame's JSON text if numbered next
   */
  #sizeOf({ restBytes }) {
    return `{"seq":${this.#lastSeq + 1},`.length + restBytes;
  }

  #admitWaiting() {
    let admitted = 0;
    while (admitted < this.#waiting.length
      && this.hasRoom(this.#sizeOf(this.#waiting[admitted].prepared))) {
      const { prepared, resolve } = this.#waiting[admitted];
      resolve(this.#commit(prepared));
      admitted += 1;
    }
    this.#waiting.splice(0, admitted);
  }
}

/**
 * The receiving side's reorder buffer: hands out each sequence number exactly once, in order.
 *
 * @template [T=unknown] the type of the frames
 */
export class Inbox {
  /** @type {Map<number, T>} */
  #held = new Map();
  #cursor = 0;

  /**
   * @param {{maxAhead?: number}} [options] a frame numbered beyond cursor + 1 + maxAhead is
   *   refused, so at most maxAhead frames are held (docs/protocol.md, "Sessions")
   */
  constructor({ maxAhead = DEFAULT_MAX_AHEAD } = {}) {
    /** @type {number} */
    this.maxAhead = maxAhead;
  }

  /** @returns {number} the highest sequence number up to which every frame was handed out */
  get cursor() {
    return this.#cursor;
  }

  /** @returns {number} the number of frames held until a gap is filled */
  get held() {
    return this.#held.size;
  }

  /**
   * Takes in a frame and returns the frames that are now deliverable, in order.
   *
   * @param {number} seq
   * @param {T} frame
   * @returns {T[]} empty for duplicates and for frames held until a gap is filled
   * @throws {RangeError} when `seq` is not a positive integer or is beyond cursor + 1 + maxAhead
   */
  receive(seq, frame) {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new RangeError(`invalid sequence number ${seq}`);
    }
    if (seq <= this.#cursor || this.#held.has(seq)) return [];
    if (seq > this.#cursor + 1 + this.maxAhead) {
      const limit = `(limit ${this.maxAhead} ahead)`;
      throw new RangeError(`frame ${seq} is too far ahead of cursor ${this.#cursor} ${limit}`);
    }
    if (seq > this.#cursor + 1) {
      this.#held.set(seq, frame);
      return [];
    }
    const ready = [frame];
    this.#cursor = seq;
    while (this.#held.has(this.#cursor + 1)) {
      this.#cursor += 1;
      ready.push(this.#held.get(this.#cursor));
      this.#held.delete(this.#cursor);
    }
    return ready;
  }

  /** Forgets everything, as for a new session. */
  reset() {
    this.#held.clear();
    this.#cursor = 0;
  }
}

/**
 * @param {string} text
 * @returns {number} the length of `text` encoded as UTF-8
 */
export function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 2;
      i += 1;
    } else if (code >= 0x800) {
      bytes += 2;
    } else if (code >= 0x80) {
      bytes += 1;
    }
  }
  return bytes;
}

function isLowSurrogate(code) {
  return code >= 0xdc00 && code <= 0xdfff;
}
