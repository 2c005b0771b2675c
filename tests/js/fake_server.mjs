import { Inbox } from '../../client_js/session.js';

const encoder = new TextEncoder();

/**
 * @param {number} status
 * @param {unknown} body
 * @returns {Response}
 */
export function jsonResponse(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * @param {number} status
 * @returns {Response}
 */
export function htmlResponse(status) {
  return new Response('<!doctype html><p>Click to continue</p>', {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8' },
  });
}

/**
 * One event stream opened by the client, driven by the test.
 */
export class FakeStream {
  #controller;

  /**
   * @param {URL} url
   * @param {RequestInit} init
   */
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.cursor = Number(url.searchParams.get('cursor'));
    this.session = url.searchParams.get('session');
    this.closed = false;
    this.body = new ReadableStream({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.closed = true;
      },
    });
    init.signal?.addEventListener('abort', () => this.#finish(() => this.#controller.error(init.signal.reason)));
  }

  /** @param {string} text */
  send(text) {
    if (!this.closed) this.#controller.enqueue(encoder.encode(text));
  }

  /** @param {Record<string, unknown>} fields */
  hello(fields = {}) {
    const hello = { session: 's1', cursor: this.cursor, ack: 0, heartbeat: 5, max_body: 1 << 20, ...fields };
    this.send(`event: hello\nid: ${hello.cursor}\ndata: ${JSON.stringify(hello)}\n\n: ${'.'.repeat(2048)}\n\n`);
  }

  /** @param {Record<string, unknown>} frame */
  frame(frame) {
    this.send(`id: ${frame.seq}\ndata: ${JSON.stringify(frame)}\n\n`);
  }

  end() {
    this.#finish(() => this.#controller.close());
  }

  #finish(action) {
    if (this.closed) return;
    this.closed = true;
    action();
  }
}

/**
 * One long-poll request made by the client, answered by the test (or by `FakeServer#onPoll`).
 */
export class FakePoll {
  /**
   * @param {URL} url
   * @param {RequestInit} init
   */
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.cursor = Number(url.searchParams.get('cursor'));
    this.session = url.searchParams.get('session');
    this.hold = url.searchParams.get('hold');
    this.answered = false;
    this.reply = deferred();
  }

  /**
   * @param {Record<string, unknown>[]} frames
   * @param {Record<string, unknown>} [fields] more or other fields of the answer
   */
  answer(frames = [], fields = {}) {
    this.answered = true;
    const body = { session: 's1', cursor: this.cursor, ack: 0, heartbeat: 5, max_body: 1 << 20, hold: 25 };
    this.reply.resolve(jsonResponse(200, { ...body, ...fields, frames }));
  }
}

/**
 * A scriptable stand-in for the kernel server, used as the client's `fetch`.
 *
 * By default every event stream starts with a hello for session 's1' and every POST is processed
 * by an in-order kernel inbox and answered with its cursor.
 */
export class FakeServer {
  constructor({ autoHello = true, session = 's1' } = {}) {
    this.autoHello = autoHello;
    this.session = session;
    /** @type {Record<string, unknown>} more fields for the automatic hello */
    this.helloFields = {};
    /** @type {{url: URL, init: RequestInit}[]} */
    this.requests = [];
    /** @type {FakeStream[]} */
    this.streams = [];
    /** @type {FakePoll[]} */
    this.polls = [];
    /** @type {{body: any, init: RequestInit}[]} */
    this.posts = [];
    /** @type {{url: URL, init: RequestInit}[]} */
    this.releases = [];
    /** @type {any[]} the page frames the kernel processed, in order */
    this.received = [];
    this.kernelInbox = new Inbox();
    /** @type {any[]} kernel frames that a POST asking for them (`carry`) gets back, after its ack */
    this.carryable = [];
    this.postsInFlight = 0;
    this.maxPostsInFlight = 0;
    /** @type {(stream: FakeStream, index: number) => Response | Promise<Response>} */
    this.onEvents = (stream) => this.openStream(stream);
    /** @type {(poll: FakePoll, index: number) => Response | Promise<Response>} */
    this.onPoll = (poll) => this.holdPoll(poll);
    /** @type {(body: any, index: number) => Response | Promise<Response>} */
    this.onMessages = (body) => this.processMessages(body);
    /** @type {{url: URL, init: RequestInit}[]} the probes (`GET /status`) the client sent */
    this.statusRequests = [];
    /** @type {Map<string, string>} the parts held of GET batches, by batch id */
    this.parts = new Map();
    this.partRequests = [];
    /** @type {(index: number) => Response | Promise<Response>} answers them; at once by default */
    this.onStatus = () => jsonResponse(200, { connected: true, transport: null });
    this.fetch = (resource, init = {}) => this.#handle(new URL(resource), init);
  }

  /** @returns {FakeStream} the newest event stream */
  get stream() {
    return this.streams[this.streams.length - 1];
  }

  /**
   * @param {FakeStream} stream
   * @returns {Response}
   */
  openStream(stream) {
    this.streams.push(stream);
    if (this.autoHello) {
      stream.hello({ session: this.session, ack: this.kernelInbox.cursor, ...this.helloFields });
    }
    return new Response(stream.body, { headers: { 'content-type': 'text/event-stream' } });
  }

  /**
   * Keeps `poll` until the test answers it; a poll without a session is answered at once.
   *
   * @param {FakePoll} poll
   * @returns {Promise<Response>}
   */
  holdPoll(poll) {
    this.polls.push(poll);
    if (poll.session === null) poll.answer([], { session: this.session, ack: this.kernelInbox.cursor });
    return poll.reply.promise;
  }

  /** @returns {FakePoll} the newest poll */
  get poll() {
    return this.polls[this.polls.length - 1];
  }

  /**
   * @param {any} body
   * @returns {Response}
   */
  processMessages(body) {
    for (const frame of body.messages) this.received.push(...this.kernelInbox.receive(frame.seq, frame));
    if (!body.carry) return jsonResponse(200, { ack: this.kernelInbox.cursor });
    const frames = this.carryable.filter((frame) => frame.seq > body.ack);
    return jsonResponse(200, { ack: this.kernelInbox.cursor, frames });
  }

  /**
   * @param {string} type
   * @returns {any[]} the frames of that type the kernel processed
   */
  receivedOfType(type) {
    return this.received.filter((frame) => frame.type === type);
  }

  async #handle(url, init) {
    this.requests.push({ url, init });
    const path = url.pathname.split('/').pop();
    if (path === 'events') {
      return abortable(this.onEvents(new FakeStream(url, init), this.requests.length - 1), init.signal);
    }
    if (path === 'poll') {
      return abortable(this.onPoll(new FakePoll(url, init), this.requests.length - 1), init.signal);
    }
    if (path === 'status') {
      this.statusRequests.push({ url, init });
      return abortable(this.onStatus(this.statusRequests.length - 1), init.signal);
    }
    if (path === 'release') {
      this.releases.push({ url, init });
      return jsonResponse(200, {});
    }
    const method = init.method ?? 'GET';
    let body;
    if (method === 'GET') {
      const query = url.searchParams;
      let text = query.get('messages');
      if (text === null) {
        const id = query.get('batch');
        const offset = Number(query.get('offset'));
        const held = this.parts.get(id) ?? '';
        const part = query.get('part');
        const have = offset <= held.length ? held + part.slice(held.length - offset) : '';
        this.partRequests.push({ id, offset, length: part.length, url });
        if (have.length < Number(query.get('total'))) {
          this.parts.set(id, have);
          return jsonResponse(200, { ack: this.kernelInbox.cursor, have: have.length });
        }
        this.parts.delete(id);
        text = have;
      }
      const json = Buffer.from(text, 'base64url').toString('utf8');
      body = {
        client: query.get('client'), session: query.get('session'), ack: Number(query.get('ack')),
        messages: JSON.parse(json), carry: true,
      };
    } else {
      body = JSON.parse(init.body);
    }
    this.posts.push({ body, init, method, url });
    this.postsInFlight += 1;
    this.maxPostsInFlight = Math.max(this.maxPostsInFlight, this.postsInFlight);
    try {
      return await abortable(this.onMessages(body, this.posts.length - 1), init.signal);
    } finally {
      this.postsInFlight -= 1;
    }
  }
}

function abortable(value, signal) {
  if (!signal) return value;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(value).then(resolve, reject);
  });
}

/**
 * @returns {{promise: Promise<any>, resolve: (value: any) => void, reject: (error: any) => void}}
 */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
