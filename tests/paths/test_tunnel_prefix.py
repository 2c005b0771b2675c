"""A tunnel launcher whose URL carries a path prefix that its proxy keeps.

The launcher starts nginx for the server's port and returns ``http://127.0.0.1:N/some/prefix/``;
nginx passes ``/some/prefix/...`` on unchanged. The prefix is known only once the launcher
returned, after the server's routes were made."""

from __future__ import annotations

import aiohttp

import jchannel_http
from support.counting import COUNTING_PAGE, CountingKernel, calls_both_ways, check_each_ran_once
from support.kernel_server import TOKEN
from support.nginx import Nginx

PREFIX = '/some/prefix'


class PrefixKeepingLauncher:
    """nginx in front of the server's port, reached under ``PREFIX``, which it keeps."""

    def __init__(self) -> None:
        self.nginx: Nginx | None = None

    async def start(self, port: int) -> str:
        self.nginx = await Nginx(port, ['1m'], directives='proxy_buffering off;').start()
        return f'{self.nginx.url("1m")}{PREFIX}/'

    async def stop(self) -> None:
        if self.nginx is not None:
            await self.nginx.stop()


async def test_a_launcher_url_with_a_kept_prefix_is_served_under_it(page) -> None:
    launcher = PrefixKeepingLauncher()
    async with jchannel_http.Server(token=TOKEN, tunnel=launcher, heartbeat=2) as server:
        assert server.url.endswith(PREFIX)
        headers = {'Authorization': f'Bearer {TOKEN}'}
        async with aiohttp.ClientSession(headers=headers) as http:
            for path in ('/openapi.json', '/status', '/client.js'):
                async with http.get(server.url + path) as response:
                    assert response.status == 200, path
            assert launcher.nginx is not None  # started by the launcher's start()
            async with http.get(f'{launcher.nginx.url("1m")}/elsewhere{PREFIX}/status') as response:
                assert response.status == 404
        await page.goto(server.page_url)
        channel = await server.open(COUNTING_PAGE, timeout=15)
        channel.handler = CountingKernel()
        await calls_both_ways(page, channel, range(50))
        await check_each_ran_once(page, channel, 50)
        assert page.errors == []
