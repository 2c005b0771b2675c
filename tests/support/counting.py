"""A channel that counts each run of ``count(id)`` on both sides, to check each call ran once."""

from __future__ import annotations

import asyncio
import collections

COUNTING_PAGE = """(channel) => {
  window.channel = channel;
  window.seen = {};
  channel.handler = {
    count(id) { window.seen[id] = (window.seen[id] || 0) + 1; return id; },
  };
  return 'ready';
}"""
"""The page side of a channel whose ``count(id)`` counts, in ``window.seen``, each run per id."""


class CountingKernel:
    """The kernel side of the same: ``count(id)`` counts each run per id in ``seen``."""

    def __init__(self) -> None:
        self.seen: collections.Counter = collections.Counter()

    def count(self, call_id: int) -> int:
        self.seen[call_id] += 1
        return call_id


async def calls_both_ways(page, channel, ids: range) -> None:
    """Calls ``count(id)`` for ``ids`` each way at once (``COUNTING_PAGE``, ``CountingKernel``);
    each answer is its id."""
    kernel = asyncio.gather(*(channel.call('count', i, timeout=120) for i in ids))
    from_page = page.evaluate(
        """([start, stop]) => Promise.all(
        Array.from({length: stop - start}, (_, i) => channel.call('count', start + i)))""",
        [ids.start, ids.stop],
    )
    results, page_results = await asyncio.gather(kernel, from_page)
    assert results == list(ids) and page_results == list(ids)


async def check_each_ran_once(page, channel, count: int) -> None:
    """Each of ``count`` ids ran once on each side."""
    seen = await page.evaluate('window.seen')
    assert len(seen) == count and set(seen.values()) == {1}
    assert len(channel.handler.seen) == count and set(channel.handler.seen.values()) == {1}
