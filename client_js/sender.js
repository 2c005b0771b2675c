import { backoffDelay } from './backoff.js';
import { TransportError, checkResponse, readJson, toTransportError } from './http.js';
import { base64urlText } from './query_form.js';
import { BATCH_ID_LENGTH, ENVELOPE_BYTES, randomId } from './wire.js';

/**
 * @typedef {object} SenderHost what the sender needs from the client
 * @property {() => boolean} active whether the client is neither stopped nor failed
 * @property {() => string} state the client's state
 * @property {(failure: TransportError, state: string) => void} handleFailure
 * @property {(frame: Record<string, any>) => void} onFrame a kernel frame an answer carried
 * @property {Path} path
 * @property {number} postTimeout seconds after which an unanswered request is abandoned
 */

/**
 * Page -> kernel frames: the outbox sent in batches, one request in flight (a POST, or GET
 * requests when the path refuses POST), retried until acknowledged; the answer acknowledges
 * the inbox cursor and carries back the kernel frames that followed.
 */
export class Sender {
  /** @type {Connection} */
  #conn;
  /** @type {SenderHost} */
  #host;
  /** @type {{id: string, text: string, have: number, lastSent: number} | null} a GET batch */
  #parts = null;
  #postAttempt = 0;
  /** whether the answer to the last POST (or GET) of frames was lost: it may have carried kernel
   * frames that only another one carries again, so another goes even with nothing to send */
  #answerLost = false;
  #flushing = false;
  /** @type {AbortController | null} */
  #postController = null;
  /** @type {AbortController | null} */
  #flushWake = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #flushTimer = undefined;

  /**
   * @param {Connection} conn
   * @param {SenderHost} host
   */
  constructor(conn, host) {
    this.#conn = conn;
    this.#host = host;
  }

  /**
   * Enqueues `frame` of session `epoch`, then sends soon.
   *
   * @param {Record<string, unknown>} frame
   * @param {number} epoch
   * @returns {Promise<void>} once the outbox took the frame; rejected when it is refused
   */
  async send(frame, epoch) {
    if (epoch !== this.#conn.epoch) return;
    await this.#conn.outbox.enqueue(frame);
    this.scheduleFlush();
  }

  /** Sends what waits, after the tasks already queued. */
  scheduleFlush() {
    if (this.#flushTimer !== undefined || !this.#host.active()) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flushLoop();
    }, 0);
  }

  /** Sends what waits now: the backoff before a retry is cut short. */
  kickFlush() {
    this.#postAttempt = 0;
    this.#flushWake?.abort();
    this.scheduleFlush();
  }

  /** The session ended: a GET batch in parts is dropped with it. */
  reset() {
    this.#parts = null;
    this.#answerLost = false;
  }

  /**
   * The client stopped or failed: the request in flight is abandoned.
   *
   * @param {Error} reason
   */
  stop(reason) {
    this.#postController?.abort(reason);
    this.#flushWake?.abort();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  /**
   * @param {unknown} ack an acknowledgement from the server
   * @throws {TransportError} unless it is a sequence number the page sent
   */
  checkAck(ack) {
    if (!Number.isSafeInteger(ack) || ack < 0) {
      throw new TransportError('retry', `the server sent an invalid ack: ${JSON.stringify(ack)}`);
    }
    const sent = this.#conn.outbox.lastSeq;
    if (ack > sent) {
      const beyond = `acknowledged frame ${ack}, beyond the last one sent (${sent})`;
      throw new TransportError('resync', `the server ${beyond}`);
    }
  }

  #needsFlush() {
    const conn = this.#conn;
    if (!this.#host.active() || conn.session === null || conn.hidden) return false;
    return conn.outbox.size > 0 || conn.inbox.cursor > conn.ackSent || this.#answerLost;
  }

  async #flushLoop() {
    if (this.#flushing) return;
    this.#flushing = true;
    const host = this.#host;
    try {
      while (this.#needsFlush()) {
        const method = this.#conn.sendMethod === 'get' ? 'GET' : 'POST';
        let failure = await (method === 'GET' ? this.#getOnce() : this.#postOnce());
        this.#answerLost = failure !== null;
        if (failure === null) host.path.passed();
        if (failure === null || !host.active()) continue;
        if (failure.action === 'check') failure = await host.path.explain(failure, method);
        else if (failure.action !== 'refused') host.path.passed();
        if (!host.active()) continue;
        if (failure.cutAt !== null && host.path.shrinkAnswers(failure)) continue;
        if (failure.action === 'refused') {
          failure = host.path.refusedPost(failure, false);
          if (this.#conn.sendMethod === 'get') continue;
        }
        host.handleFailure(failure, host.state());
        if (host.active()) await this.#sleepBeforePost();
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #sleepBeforePost() {
    const wake = new AbortController();
    this.#flushWake = wake;
    await this.#conn.sleep(backoffDelay(this.#postAttempt++, this.#conn.random), wake.signal);
    this.#flushWake = null;
  }

  async #postOnce() {
    const conn = this.#conn;
    const epoch = conn.epoch;
    const cursor = conn.inbox.cursor;
    const messages = conn.outbox.batch(conn.maxBody - ENVELOPE_BYTES);
    const lastSent = conn.outbox.acked + messages.length;
    // The answer carries back the kernel frames after `cursor` (waiting briefly for a
    // handler's result or the kernel's next call): a call and its answer take one request.
    const body =
      `{"client":${JSON.stringify(conn.id)},"session":${JSON.stringify(conn.session)},` +
      `"ack":${cursor},"messages":[${messages.join(',')}],"carry":true}`;
    const controller = new AbortController();
    const seconds = this.#host.postTimeout;
    const timeout = new TransportError('retry', `no answer to a POST within ${seconds} s`);
    const timer = setTimeout(() => controller.abort(timeout), seconds * 1000);
    this.#postController = controller;
    try {
      const bytes = conn.answerBytes === null ? '' : `?bytes=${conn.answerBytes}`;
      const response = await conn.fetch(`${conn.url}/messages${bytes}`, {
        method: 'POST',
        headers: conn.headers({ 'Content-Type': 'application/json' }),
        body,
        signal: controller.signal,
      });
      await checkResponse(response, 'application/json', conn.url, 'call');
      const answer = await readJson(response, controller.signal);
      if (epoch !== conn.epoch) return null;
      this.#answered(answer, lastSent, cursor);
      return null;
    } catch (error) {
      if (epoch !== conn.epoch) return null;
      const failure = toTransportError(controller.signal.aborted ? controller.signal.reason : error);
      return failure.action === 'shrink' ? this.#bodyRefused(body, messages.length, failure) : failure;
    } finally {
      clearTimeout(timer);
      this.#postController = null;
    }
  }

  /**
   * A POST refused for its size (413): a proxy in between takes less than the server's
   * max_body, or the server itself. Sending the same body again would be refused forever, so
   * later bodies stay under half of this one: a batch of several frames goes again in smaller
   * batches, and later frames too large for the path are refused when sent (RangeError). A
   * single frame that large can never pass: the session starts over (its waiting calls fail
   * with the reason), since the frame's number cannot be skipped.
   *
   * @param {string} body the refused body
   * @param {number} frames how many frames it carried
   * @param {TransportError} failure
   * @returns {TransportError}
   */
  #bodyRefused(body, frames, failure) {
    const conn = this.#conn;
    const size = new TextEncoder().encode(body).length;
    conn.pathBodyCap = Math.max(2 * ENVELOPE_BYTES, Math.min(conn.pathBodyCap, Math.floor(size / 2)));
    conn.maxBody = Math.min(conn.maxBody, conn.pathBodyCap);
    conn.outbox.maxFrameBytes = conn.maxBody - ENVELOPE_BYTES;
    const bound = `later requests stay under ${conn.maxBody} bytes`;
    if (frames > 1) {
      this.#postAttempt = 0;
      return new TransportError('retry', `a ${size}-byte POST was refused (413); ${bound}`, 413);
    }
    const detail = `a message of ${size} bytes is larger than the path to the kernel lets through`;
    return new TransportError('resync', `${detail} (413): ${failure.message}; ${bound}`, 413);
  }

  /**
   * The GET form of `#postOnce`: the batch in the query, in parts when it does not fit in one
   * URL of `maxUrl` characters, sent one after the other. The batch stays the same until its last
   * part is answered, so a part sent again is the same; sequence numbers do the rest.
   *
   * @returns {Promise<TransportError | null>}
   */
  async #getOnce() {
    const conn = this.#conn;
    const epoch = conn.epoch;
    const cursor = conn.inbox.cursor;
    if (this.#parts === null) {
      const messages = conn.outbox.batch(conn.maxBody - ENVELOPE_BYTES);
      const text = base64urlText(`[${messages.join(',')}]`);
      this.#parts = { id: randomId(BATCH_ID_LENGTH), text, have: 0, lastSent: conn.outbox.acked + messages.length };
    }
    const parts = this.#parts;
    const params = new URLSearchParams({ client: conn.id, session: conn.session, ack: String(cursor) });
    if (conn.answerBytes !== null) params.set('bytes', String(conn.answerBytes));
    const base = `${conn.url}/messages?${params}`;
    for (;;) {
      let url = `${base}&messages=${parts.text}`;
      if (parts.have > 0 || conn.room(url) < 0) {
        const head = `${base}&batch=${parts.id}&offset=${parts.have}&total=${parts.text.length}&part=`;
        const room = conn.room(head);
        if (room < 64) return new TransportError('stop', `maxUrl (${conn.maxUrl}) leaves no room for a message`);
        url = head + parts.text.slice(parts.have, parts.have + room);
      }
      const controller = new AbortController();
      const seconds = this.#host.postTimeout;
      const timeout = new TransportError('retry', `no answer to a GET within ${seconds} s`);
      const timer = setTimeout(() => controller.abort(timeout), seconds * 1000);
      this.#postController = controller;
      try {
        const response = await conn.fetch(url, {
          headers: conn.headers(), cache: 'no-store', signal: controller.signal,
        });
        await checkResponse(response, 'application/json', conn.url, 'call');
        const answer = await readJson(response, controller.signal);
        if (epoch !== conn.epoch) return null;
        if (!Array.isArray(answer?.frames)) {
          this.checkAck(answer?.ack);
          conn.outbox.ack(answer.ack);
          if (!Number.isSafeInteger(answer.have) || answer.have < 0 || answer.have > parts.text.length) {
            throw new TransportError('retry', 'the answer to a part of a batch has no valid have');
          }
          parts.have = answer.have;
          this.#postAttempt = 0; // the path answered: a later failure is a first one again
          continue;
        }
        this.#parts = null;
        this.#answered(answer, parts.lastSent, cursor);
        return null;
      } catch (error) {
        if (epoch !== conn.epoch) return null;
        const failure = toTransportError(controller.signal.aborted ? controller.signal.reason : error);
        // a URL carries no body to cut down: a 413 here cannot pass by itself
        return failure.action === 'shrink' ? new TransportError('stop', failure.message, failure.status) : failure;
      } finally {
        clearTimeout(timer);
        this.#postController = null;
      }
    }
  }

  /**
   * Takes the kernel frames an answer carried back. If that answer is lost, the request is
   * sent again with the same cursor and they come back again, so they are never lost.
   *
   * @param {{frames?: unknown}} answer
   */
  /**
   * The server answered a whole batch: its acknowledgement, the page's own that went with it,
   * and the frames it carried back.
   *
   * @param {any} answer the answer's JSON
   * @param {number} lastSent the last sequence number the batch held
   * @param {number} cursor the page's cursor that the batch acknowledged
   */
  #answered(answer, lastSent, cursor) {
    this.#applyAck(answer, lastSent);
    this.#conn.ackSent = Math.max(this.#conn.ackSent, cursor);
    this.#postAttempt = 0;
    this.#onCarried(answer);
  }

  #onCarried(answer) {
    if (!Array.isArray(answer.frames)) {
      throw new TransportError('retry', 'the answer to a POST has no frames array');
    }
    for (const frame of answer.frames) this.#host.onFrame(frame);
  }

  #applyAck(answer, lastSent) {
    const ack = answer?.ack;
    this.checkAck(ack);
    this.#conn.outbox.ack(ack);
    if (this.#conn.outbox.acked < lastSent) {
      const gap = `acknowledged frame ${ack} of the ${lastSent} sent`;
      throw new TransportError('retry', `the server only ${gap}`);
    }
  }
}
