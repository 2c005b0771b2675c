/**
 * The bytes of an upload read from its producer and not yet sent, in offset order: pure
 * bookkeeping, no I/O.
 */

import { joinBytes } from './bytes.js';

/**
 * @typedef {object} Piece bytes of an outgoing stream at an offset
 * @property {number} offset
 * @property {Uint8Array} bytes
 * @property {boolean} [last] whether the stream ends with this chunk
 */

export class ChunkQueue {
  /** @type {Piece[]} */
  #pieces = [];
  #bytes = 0;

  /** @returns {number} the bytes queued */
  get bytes() {
    return this.#bytes;
  }

  /**
   * Queues `bytes` at `offset` (after what is queued: the producer's order).
   *
   * @param {number} offset
   * @param {Uint8Array} bytes
   */
  push(offset, bytes) {
    if (bytes.length === 0) return;
    this.#pieces.push({ offset, bytes });
    this.#bytes += bytes.length;
  }

  /**
   * Puts back a piece that has to be sent again, in offset order.
   *
   * @param {Piece} piece
   */
  putBack(piece) {
    this.#pieces.unshift({ offset: piece.offset, bytes: piece.bytes });
    this.#pieces.sort((a, b) => a.offset - b.offset);
    this.#bytes += piece.bytes.length;
  }

  /**
   * @param {number} limit at least 1
   * @returns {Piece} the next contiguous bytes of the queue, at most `limit` of them (the queue
   *   must not be empty)
   */
  cut(limit) {
    const first = this.#pieces[0];
    if (first.bytes.length >= limit || this.#pieces.length === 1 ||
        this.#pieces[1].offset !== first.offset + first.bytes.length) {
      const bytes = this.#take(limit);
      return { offset: first.offset, bytes };
    }
    const parts = [];
    let size = 0;
    while (this.#pieces.length > 0 && size < limit) {
      if (this.#pieces[0].offset !== first.offset + size) break;
      const part = this.#take(limit - size);
      parts.push(part);
      size += part.length;
    }
    return { offset: first.offset, bytes: joinBytes(parts) };
  }

  /** @returns {Uint8Array} at most `limit` bytes from the head piece, removed from the queue */
  #take(limit) {
    const head = this.#pieces[0];
    const bytes = head.bytes.subarray(0, limit);
    if (bytes.length === head.bytes.length) {
      this.#pieces.shift();
    } else {
      this.#pieces[0] = { offset: head.offset + bytes.length, bytes: head.bytes.subarray(bytes.length) };
    }
    this.#bytes -= bytes.length;
    return bytes;
  }
}
