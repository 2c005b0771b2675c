"""A page client running in node (tests/js/run_page_client.mjs), driven from a test like a
Playwright page: ``await page.evaluate(source, arg)`` runs JavaScript where the client lives, so
the functions written for browser pages in tests/support/counting.py work with it unchanged."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

RUNNER = pathlib.Path(__file__).parents[1] / 'js' / 'run_page_client.mjs'


class NodePageError(Exception):
    """The JavaScript evaluated in the node page threw, or the node process ended."""


class NodePage:
    """One node process holding one connected ``Client``; stop it with ``close``."""

    def __init__(
        self, url: str, token: str, options: dict[str, Any] | None = None, timeout: float = 60
    ) -> None:
        self.url = url
        self.token = token
        self.options = options or {}
        self.timeout = timeout
        """Seconds an ``evaluate`` (and the connection at start) may take."""
        self.transport: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    async def start(self) -> NodePage:
        self._process = await asyncio.create_subprocess_exec(
            'node',
            str(RUNNER),
            self.url,
            self.token,
            json.dumps(self.options),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 << 20,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self._stderr = asyncio.ensure_future(self._process.stderr.read())
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), self.timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise NodePageError(f'the node page did not connect within {self.timeout} s') from None
        if not line:
            raise NodePageError(f'the node page ended before connecting: {await self.stderr()}')
        self.transport = json.loads(line)['connected']
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            answer = json.loads(line)
            future = self._answers.pop(answer['id'], None)
            if future is None or future.done():
                continue
            if 'error' in answer:
                future.set_exception(NodePageError(answer['error']))
            else:
                future.set_result(answer['value'])
        for future in self._answers.values():
            if not future.done():
                future.set_exception(NodePageError('the node page ended'))

    async def evaluate(self, source: str, arg: Any = None) -> Any:
        """The value of ``source`` in the node page (a function is called with ``arg``)."""
        assert self._process is not None and self._process.stdin is not None
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[self._next] = future
        request = {'id': self._next, 'evaluate': source, 'arg': arg}
        self._process.stdin.write(json.dumps(request).encode() + b'\n')
        await self._process.stdin.drain()
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            raise NodePageError(f'no answer within {self.timeout} s to {source[:200]}') from None

    async def stderr(self) -> str:
        """What the node process wrote on stderr (once it ended)."""
        if self._stderr is None:
            return ''
        return (await self._stderr).decode(errors='replace')

    async def close(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            assert self._process.stdin is not None
            try:
                self._process.stdin.write(b'{"exit": true}\n')
                await self._process.stdin.drain()
                await asyncio.wait_for(self._process.wait(), 5)
            except (ConnectionError, asyncio.TimeoutError):
                self._process.kill()
                await self._process.wait()
        if self._reader is not None:
            await self._reader
