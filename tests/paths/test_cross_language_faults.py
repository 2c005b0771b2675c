"""The real pair under faults: the kernel server (``jchannel_http.Server``, aiohttp) and the real
page client (client_js, in node with its own fetch) talk through a ``FaultProxy`` that drops,
duplicates, delays and cuts requests and answers, event streams included.

Round after round, each side calls the other's ``count(id)`` for fresh ids, both ways at once
(``calls_both_ways``): every call must come back once with its own id, and at the end every id
must have run exactly once on the side it was sent to (``check_each_ran_once``), in one session.

The seed is random and printed; ``JCHANNEL_SEED=<n>`` replays its choices (the transport, the
send method and the fault of each request in the order requests arrive; timing is not
replayed). ``JCHANNEL_FAULT_SECONDS=<s>`` runs longer than the default budget.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import jchannel_http
from support.counting import COUNTING_PAGE, CountingKernel, calls_both_ways, check_each_ran_once
from support.kernel_server import TOKEN
from support.node_page import NodePage, NodePageError
from support.proxies import FaultProxy

SEED = int(os.environ.get('JCHANNEL_SEED') or random.SystemRandom().randrange(2**32))
BUDGET = float(os.environ.get('JCHANNEL_FAULT_SECONDS') or 20)
MAX_ROUND_CALLS = 50
"""Most calls each way in one round (each round draws its number from the seed)."""
MIN_CALLS = 2000
"""Calls each way made whatever the budget."""
ROUND_LIMIT = 90.0
"""Most seconds a round may take (a round is some hundred milliseconds without faults)."""


async def test_kernel_and_node_page_call_each_other_exactly_once_through_faults() -> None:
    choices = random.Random(SEED)
    transport = choices.choice(['sse-get', 'sse-post', 'poll'])
    send_method = choices.choice(['post', 'post', 'get'])
    print(
        f'seed {SEED}: transport {transport}, send method {send_method} '
        f'(replay with JCHANNEL_SEED={SEED})'
    )
    started = time.monotonic()
    async with jchannel_http.Server(
        token=TOKEN, heartbeat=5, send_method=send_method, body_timeout=2
    ) as server:
        proxy = await FaultProxy(server.port, seed=choices.randrange(2**32)).start()
        proxy.calm = True  # the page connects and the channel opens undisturbed
        page = await NodePage(
            proxy.url, TOKEN, {'transport': transport, 'sendMethod': send_method}
        ).start()
        try:
            channel = await server.open(COUNTING_PAGE, timeout=15)
            channel.handler = CountingKernel()
            session = server.status()['session']
            proxy.calm = False
            rounds = calls = 0
            slowest = 0.0
            while calls < MIN_CALLS or time.monotonic() - started < BUDGET:
                ids = range(calls + 1, calls + 1 + choices.randint(1, MAX_ROUND_CALLS))
                round_started = time.monotonic()
                try:
                    await asyncio.wait_for(calls_both_ways(page, channel, ids), ROUND_LIMIT)
                    slowest = max(slowest, time.monotonic() - round_started)
                    if (
                        os.environ.get('JCHANNEL_FAULT_TRACE')
                        and time.monotonic() - round_started > 2
                    ):
                        for entry in proxy.log:
                            if entry[0] >= round_started - 0.5:
                                print(
                                    f'{entry[0] - round_started:7.3f} {entry[1]} {entry[2][:60]} {entry[2][-60:]} {entry[3]}'
                                )
                except Exception as exc:
                    proxy.calm = True
                    raise AssertionError(
                        f'seed {SEED}: round {rounds + 1} failed: {exc!r}; '
                        f'faults {dict(proxy.counts)}; kernel '
                        f'{server.status()}; page {await _page_state(page)}; '
                        f'last requests {proxy.requests[-8:]}'
                    ) from exc
                rounds += 1
                calls = ids.stop - 1
            proxy.calm = True
            await check_each_ran_once(page, channel, calls)
            assert server.status()['session'] == session, f'seed {SEED}: a new session began'
            await _connected(page)
            faults = dict(sorted(proxy.counts.items()))
            assert len(faults) == len(FaultProxy.RATES), f'seed {SEED}: faults {faults}'
            print(
                f'seed {SEED}: {rounds} rounds, {calls} calls each way in '
                f'{time.monotonic() - started:.1f} s (slowest round {slowest:.1f} s) through '
                f'{len(proxy.requests)} requests; '
                f'faults {faults}'
            )
        finally:
            await page.close()
            await proxy.stop()


async def _page_state(page: NodePage) -> object:
    """What the node page's client says of itself, for a failure's message."""
    page.timeout = 5
    try:
        return await page.evaluate(
            '({state: jchannelClient.state, transport: '
            'jchannelClient.transport, lastError: '
            'String(jchannelClient.lastError), stats: jchannelClient.stats})'
        )
    except (NodePageError, ConnectionError) as exc:  # the page is stuck or gone: say so
        return repr(exc)


async def _connected(page: NodePage) -> None:
    """Wait (a bounded time: past the longest backoff, 30 s) for the node page, maybe between
    two attempts, to connect."""
    for _ in range(400):
        if await page.evaluate('jchannelClient.state') == 'connected':
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f'seed {SEED}: the page is not connected: {await _page_state(page)}')
