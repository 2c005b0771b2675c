"""A kernel server under the common 1,024 descriptor limit, for the connection flood test.

Prints its port, then opens a channel once a page connects; its handler reports the process's
open descriptors, opens files, and calls the page back.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys

import jchannel_http

PAGE_SIDE = r"""(channel) => {
  window.channel = channel;
  channel.handler = { twice(x) { return 2 * x; } };
}"""


class Handler:
    def __init__(self) -> None:
        self.channel: jchannel_http.Channel | None = None

    def descriptors(self) -> int:
        return len(os.listdir('/proc/self/fd'))

    def open_files(self, count: int) -> int:
        files = [open(os.devnull, 'rb') for _ in range(count)]  # noqa: SIM115 (held open at once on purpose)
        for file in files:
            file.close()
        return len(files)

    async def ask_page(self, x: int) -> int:
        assert self.channel is not None
        answer = await self.channel.call('twice', x, timeout=10)
        assert isinstance(answer, int)
        return answer

    def guard(self) -> dict:
        return server.connections.status()


async def main() -> None:
    global server
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    server = jchannel_http.Server(token=sys.argv[1], heartbeat=1, head_timeout=3)
    await server.start()
    print(server.port, flush=True)
    channel = await server.open(PAGE_SIDE, timeout=60)
    handler = Handler()
    handler.channel = channel
    channel.handler = handler
    print('open', flush=True)
    await asyncio.sleep(300)  # the test ends the process


server: jchannel_http.Server
asyncio.run(main())
