"""Page -> kernel calls over GET through the stand-in of Colab's proxy, next to POST on a plain
path in the same run.

Run it as ``python benchmarks/bench_get.py``; it prints a table and writes
``benchmarks/results_get.md``. It is not a test.

Three servers run side by side: one with the library's defaults reached directly (the page
sends its batches in ``POST /messages``), one with ``send_method='get'`` reached directly (the
GET form alone), and one with the defaults through ``tests/support/colab_proxy.py`` (streaming variant:
POST refused, so the page sends in ``GET /messages``; the stand-in adds its own hop, an aiohttp
forwarder, as Colab's proxy adds one). For each, ``--runs`` times: the p50 and p99 of
sequential page -> kernel calls timed in the page with ``performance.now()``, and the rate of
``--concurrent`` calls in flight at once (``Promise.all``). Targets: GET p50 within 1.3x of POST; at least 3,000 calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / 'tests')]
import jchannel_http  # noqa: E402
from support.colab_proxy import ColabProxy  # noqa: E402

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
]
P50_TARGET = 1.3
RATE_TARGET = 3000
PAGE_SIDE = '(channel) => { window.channel = channel; return "ready"; }'


class Echo:
    def echo(self, value):
        return value


async def open_lane(browser, server: jchannel_http.Server, url: str) -> Page:
    page = await browser.new_page()
    await page.goto(f'{url}/page?token={server.token}')
    channel = await server.open(PAGE_SIDE, timeout=30)
    channel.handler = Echo()
    await page.evaluate("Promise.all(Array.from({length: 50}, (_, i) => channel.call('echo', i)))")
    return page


async def sequential(page: Page, count: int) -> list[float]:
    return await page.evaluate(
        """async (count) => {
        const times = [];
        for (let i = 0; i < count; i++) {
            const started = performance.now();
            await channel.call('echo', i);
            times.push(performance.now() - started);
        }
        return times;
    }""",
        count,
    )


async def concurrent(page: Page, count: int) -> float:
    seconds = await page.evaluate(
        """async (count) => {
        const started = performance.now();
        await Promise.all(Array.from({length: count}, (_, i) => channel.call('echo', i)));
        return (performance.now() - started) / 1000;
    }""",
        count,
    )
    return count / seconds


def met(ok: bool) -> str:
    return 'yes' if ok else '**no**'


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(runs: int, count: int, many: int) -> str:
    load_before = os.getloadavg()[0]
    proxy = await ColabProxy('streaming').start()
    figures: dict[str, dict[str, list[float]]] = {
        name: {'p50': [], 'p99': [], 'rate': []} for name in ('post', 'get-plain', 'get')
    }
    async with (
        jchannel_http.Server() as plain,
        jchannel_http.Server() as behind,
        jchannel_http.Server(send_method='get') as forced,
    ):
        proxy.proxy_port(behind.port)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            lanes = {
                'post': await open_lane(browser, plain, plain.url),
                'get-plain': await open_lane(browser, forced, forced.url),
                'get': await open_lane(browser, behind, proxy.url),
            }
            assert await lanes['get-plain'].evaluate('window.jchannelClient.sendMethod') == 'get'
            assert await lanes['get'].evaluate('window.jchannelClient.sendMethod') == 'get'
            assert await lanes['post'].evaluate('window.jchannelClient.sendMethod') == 'post'
            for _ in range(runs):
                for name, page in lanes.items():  # interleaved, so both see the same load
                    await sequential(page, count // 10)
                    times = await sequential(page, count)
                    figures[name]['p50'].append(percentile(times, 0.5))
                    figures[name]['p99'].append(percentile(times, 0.99))
                    figures[name]['rate'].append(await concurrent(page, many))
            await browser.close()
    await proxy.stop()
    best = {
        name: {'p50': min(f['p50']), 'p99': min(f['p99']), 'rate': max(f['rate'])}
        for name, f in figures.items()
    }
    ratio = best['get']['p50'] / best['post']['p50']
    plain_ratio = best['get-plain']['p50'] / best['post']['p50']

    def runs_text(name: str, what: str, unit: str) -> str:
        return '; '.join(
            f'{value:,.2f} {unit}' if unit == 'ms' else f'{value:,.0f} {unit}'
            for value in figures[name][what]
        )

    lines = [
        '# Page -> kernel over GET (through the Colab proxy stand-in) next to POST',
        '',
        'Written by `python benchmarks/bench_get.py`; rerun it to refresh this file.',
        '',
        f'- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC',
        f'- machine: nproc {os.cpu_count()}, loopback; 1-minute load average {load_before:.1f} '
        f'before, {os.getloadavg()[0]:.1f} after (other work shares this machine)',
        f'- {runs} runs of {count} sequential calls (after {count // 10} untimed) and '
        f'{many:,} calls in flight at once, per path, interleaved',
        "- POST: a server reached directly; GET, plain path: a server with send_method='get' "
        'reached directly; GET, through the stand-in: a server behind tests/support/colab_proxy.py '
        '(streaming variant, one more hop), where POST is refused and the page moves to GET',
        '',
        '| figure | POST, plain path | GET, plain path | GET, through the stand-in | ratio '
        '(plain; stand-in) | target | met (plain; stand-in) |',
        '|---|---|---|---|---|---|---|',
        f'| page -> kernel p50 / p99 | {best["post"]["p50"]:.2f} / {best["post"]["p99"]:.2f} ms '
        f'| {best["get-plain"]["p50"]:.2f} / {best["get-plain"]["p99"]:.2f} ms '
        f'| {best["get"]["p50"]:.2f} / {best["get"]["p99"]:.2f} ms '
        f'| {plain_ratio:.2f}x; {ratio:.2f}x (p50) | p50 within {P50_TARGET}x of POST '
        f'| {met(plain_ratio <= P50_TARGET)}; {met(ratio <= P50_TARGET)} |',
        f'| page -> kernel, {many:,} at once | {best["post"]["rate"]:,.0f} calls/s '
        f'| {best["get-plain"]["rate"]:,.0f} calls/s | {best["get"]["rate"]:,.0f} calls/s '
        f'| {best["get-plain"]["rate"] / best["post"]["rate"]:.2f}x; '
        f'{best["get"]["rate"] / best["post"]["rate"]:.2f}x '
        f'| at least {RATE_TARGET:,} calls/s over GET '
        f'| {met(best["get-plain"]["rate"] >= RATE_TARGET)}; '
        f'{met(best["get"]["rate"] >= RATE_TARGET)} |',
        '',
        'Every run (best taken above):',
        '',
        f'- POST p50: {runs_text("post", "p50", "ms")}; '
        f'rate: {runs_text("post", "rate", "calls/s")}',
        f'- GET, plain path, p50: {runs_text("get-plain", "p50", "ms")}; '
        f'rate: {runs_text("get-plain", "rate", "calls/s")}',
        f'- GET, through the stand-in, p50: {runs_text("get", "p50", "ms")}; '
        f'rate: {runs_text("get", "rate", "calls/s")}',
        '',
        'The GET form itself is the plain-path GET column. The stand-in column adds a hop (an '
        'aiohttp forwarder in Python, which costs more than the GET form), as Colab adds its own '
        "proxy; what Colab's hop costs is not known without an account.",
        '',
    ]
    return '\n'.join(lines)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--count', type=int, default=1000)
    parser.add_argument('--concurrent', type=int, default=10_000)
    args = parser.parse_args()
    text = asyncio.run(main(args.runs, args.count, args.concurrent))
    (Path(__file__).resolve().parent / 'results_get.md').write_text(text)
    print(text)
