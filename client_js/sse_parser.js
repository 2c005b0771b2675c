/**
 * @typedef {object} ServerSentEvent
 * @property {string} type the event type ('message' unless an `event` field named one)
 * @property {string} data the data lines joined with '\n'
 * @property {string} id the last event id seen on the stream
 */

/**
 * @typedef {object} ParserCallbacks
 * @property {(event: ServerSentEvent) => void} [onEvent] called for every dispatched event
 * @property {(text: string) => void} [onComment] called with the text of every comment line
 * @property {(milliseconds: number) => void} [onRetry] called for every valid `retry` field
 */

/**
 * @typedef {object} EventStreamParser
 * @property {(text: string) => void} feed parses the next chunk of decoded text
 * @property {() => void} reset forgets all state, as for a new stream
 */

const DIGITS = /^[0-9]+$/;
const DEFAULT_MAX_BUFFER = 16 * 1024 * 1024;

/**
 * Creates an incremental parser for the WHATWG `text/event-stream` format.
 *
 * Chunks may split the text anywhere, including between the '\r' and '\n' of one line end.
 *
 * @param {ParserCallbacks} callbacks
 * @param {{maxBuffer?: number}} [options] maxBuffer bounds, in characters, the text held while
 *   an event is incomplete (the unfinished line plus the data collected so far); beyond it `feed`
 *   throws, and the parser should be reset
 * @returns {EventStreamParser}
 */
export function createParser(callbacks, { maxBuffer = DEFAULT_MAX_BUFFER } = {}) {
  const { onEvent = ignoreValue, onComment = ignoreValue, onRetry = ignoreValue } = callbacks;
  let started = false;
  let skipNewline = false;
  let partial = [];
  let partialLength = 0;
  let eventType = '';
  let data = '';
  let lastEventId = '';
  const lineEnd = /\r\n|\r|\n/g;

  function reset() {
    started = false;
    skipNewline = false;
    partial = [];
    partialLength = 0;
    eventType = '';
    data = '';
    lastEventId = '';
  }

  function dispatch() {
    if (data !== '') {
      onEvent({ type: eventType || 'message', data: data.slice(0, -1), id: lastEventId });
    }
    eventType = '';
    data = '';
  }

  function applyField(field, value) {
    if (field === 'event') {
      eventType = value;
    } else if (field === 'data') {
      data += value + '\n';
    } else if (field === 'id') {
      if (!value.includes('\0')) lastEventId = value;
    } else if (field === 'retry') {
      if (DIGITS.test(value)) onRetry(Number(value));
    }
  }

  function processLine(line) {
    if (line === '') {
      dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      onComment(stripSpace(line.slice(1)));
    } else if (colon > 0) {
      applyField(line.slice(0, colon), stripSpace(line.slice(colon + 1)));
    } else {
      applyField(line, '');
    }
  }

  function takeLine(tail) {
    if (partialLength === 0) return tail;
    partial.push(tail);
    const line = partial.join('');
    partial = [];
    partialLength = 0;
    return line;
  }

  function feed(text) {
    if (text === '') return;
    let start = 0;
    if (!started) {
      started = true;
      if (text.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (skipNewline) {
      skipNewline = false;
      if (text.charCodeAt(start) === 10) start += 1;
    }
    for (;;) {
      const match = nextLineEnd(lineEnd, text, start);
      if (match === null) break;
      const line = takeLine(text.slice(start, match.index));
      start = match.index + match[0].length;
      skipNewline = match[0] === '\r' && start === text.length;
      processLine(line);
    }
    if (start < text.length) {
      partial.push(text.slice(start));
      partialLength += text.length - start;
    }
    if (partialLength + data.length > maxBuffer) {
      throw new Error(`event stream: more than ${maxBuffer} characters without a complete event`);
    }
  }

  return { feed, reset };
}

function nextLineEnd(pattern, text, from) {
  pattern.lastIndex = from;
  return pattern.exec(text);
}

function stripSpace(value) {
  return value.charCodeAt(0) === 32 ? value.slice(1) : value;
}

function ignoreValue() {}
