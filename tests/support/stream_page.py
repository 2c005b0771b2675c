"""The page side and kernel side used by the stream tests in headless Chromium.

Bytes are made on each side by a seeded generator (never passed through Playwright, which copies
request bodies) and compared by their SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  const makeBytes = (size, seed) => {
    const words = new Uint32Array(Math.ceil(size / 4));
    let x = (seed >>> 0) || 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; words[i] = x;
    }
    return new Uint8Array(words.buffer, 0, size);
  };
  const hex = async (bytes) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)),
    (b) => b.toString(16).padStart(2, '0')).join('');
  async function* chunksOf(bytes, size) {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  }
  const text = (chunks) => chunks.map((c) => new TextDecoder().decode(c));
  window.t = { makeBytes, hex, chunksOf, text, finished: 0, seen: [] };
  channel.handler = {
    async digest(stream) {
      const data = await stream.join();
      return [data.length, await hex(data), stream.received, stream.total];
    },
    produce(size, seed, chunk) {
      const bytes = makeBytes(size, seed);
      window.lastProduced = bytes;
      return chunksOf(bytes, chunk);
    },
    async limits(stream, limit) {
      const out = [];
      for await (const piece of stream.byLimit(limit)) out.push(piece);
      return text(out);
    },
    async separated(stream, separator) {
      const out = [];
      for await (const piece of stream.bySeparator(separator)) out.push(piece);
      return text(out);
    },
    async firstChunks(stream, count) {
      let seen = 0;
      for await (const chunk of stream) { seen += 1; if (seen === count) break; }
      return seen;
    },
    async joinOrError(stream) {
      try { await stream.join(); return 'complete'; } catch (e) { return [e.name, e.type, e.detail]; }
    },
    endless() {
      return (async function* () {
        try { for (let i = 0; ; i++) yield new Uint8Array(65536).fill(i & 255); }
        finally { window.t.finished += 1; }
      })();
    },
    failing(before) {
      return (async function* () {
        yield new Uint8Array(before).fill(7);
        throw new RangeError('the page producer broke');
      })();
    },
    async slowDigest(stream, delayMs) {
      const chunks = [];
      let size = 0;
      const reader = stream[Symbol.asyncIterator]();
      for (;;) {
        const { done, value } = await reader.next();
        if (done) break;
        chunks.push(await crypto.subtle.digest('SHA-256', value));
        size += value.length;
        await new Promise((r) => setTimeout(r, delayMs));
      }
      return size;
    },
  };
  return 'ready';
}"""


def seeded_chunks(size: int, seed: int, chunk: int = 1 << 20) -> list[bytes]:
    """The bytes of ``seeded_stream`` as a list (for small sizes)."""
    rnd = random.Random(seed)
    return [rnd.randbytes(min(chunk, size - at)) for at in range(0, size, chunk)]


async def seeded_stream(size: int, seed: int, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    """``size`` pseudo-random bytes from ``seed``, in chunks of ``chunk`` bytes."""
    rnd = random.Random(seed)
    for at in range(0, size, chunk):
        yield rnd.randbytes(min(chunk, size - at))


def seeded_digest(size: int, seed: int, chunk: int = 1 << 20) -> str:
    """The SHA-256 of ``seeded_stream(size, seed, chunk)``."""
    digest = hashlib.sha256()
    rnd = random.Random(seed)
    for at in range(0, size, chunk):
        digest.update(rnd.randbytes(min(chunk, size - at)))
    return digest.hexdigest()


async def size_and_digest(stream) -> tuple[int, str]:
    """The size and SHA-256 (hex) of a received stream, read to its end."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in stream:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class KernelSide:
    """Kernel handler methods the page calls with streams."""

    def __init__(self) -> None:
        self.finished = 0
        self.cancelled = asyncio.Event()

    async def digest(self, stream) -> list:
        size, digest = await size_and_digest(stream)
        return [size, digest, stream.received, stream.total]

    async def limits(self, stream, limit: int) -> list[str]:
        return [piece.decode() async for piece in stream.by_limit(limit)]

    async def separated(self, stream, separator: str) -> list[str]:
        return [piece.decode() async for piece in stream.by_separator(separator)]

    async def first_chunks(self, stream, count: int) -> int:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == count:
                break
        return seen

    async def join_or_error(self, stream) -> list | str:
        try:
            await stream.join()
        except Exception as exc:  # noqa: BLE001 (any failure is reported to the test as its name and text)
            return [type(exc).__name__, getattr(exc, 'type', ''), getattr(exc, 'detail', str(exc))]
        return 'complete'

    def produce(self, size: int, seed: int, chunk: int = 1 << 20):
        return seeded_stream(size, seed, chunk)

    def endless(self):
        async def generate():
            try:
                for i in range(10**9):
                    yield bytes([i & 255]) * 65536
            finally:
                self.finished += 1
                self.cancelled.set()

        return generate()

    def failing(self, before: int):
        async def generate():
            yield b'\x07' * before
            raise ValueError('the kernel producer broke')

        return generate()
