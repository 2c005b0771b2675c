"""A cloudflared quick tunnel: ``tunnel='cloudflared'``."""

from __future__ import annotations

import asyncio
import atexit
import collections
import os
import re
import shutil
import signal

import aiohttp

from ..errors import TunnelError
from .probe import PROBE_INTERVAL, free_port, probe_session, wait_until_answers

BANNER_URL = re.compile(r'\|\s+(https://[^\s|]+)\s+\|')  # the URL line of the quick-tunnel box
CLOUDFLARED_INSTALL = (
    'install cloudflared (Debian/Ubuntu: the cloudflared .deb from its GitHub releases; macOS: '
    'brew install cloudflared; Windows: winget install --id Cloudflare.cloudflared) and put it '
    'on PATH, or pass cloudflared_path="/path/to/cloudflared"'
)


class CloudflaredLauncher:
    """A cloudflared quick tunnel: ``cloudflared tunnel --url http://127.0.0.1:<port>``.

    The public URL is read from the metrics endpoint (``GET /quicktunnel``) or from the box
    cloudflared prints on stderr, whichever comes first; ``start`` returns once that URL
    answers with this server's ``/openapi.json``. ``stop`` ends the process (SIGTERM, then
    SIGKILL after ``grace`` seconds); so does the end of this Python process, if ``stop`` was
    not called (a kernel shut down with the server running).
    """

    name = 'cloudflared'

    def __init__(self, path: str | None = None, timeout: float = 30.0, grace: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self.grace = grace
        self.url: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._banner: asyncio.Future[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=15)

    @property
    def pid(self) -> int | None:
        """The cloudflared process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _binary(self) -> str:
        if self.path is not None:
            if not (os.path.isfile(self.path) and os.access(self.path, os.X_OK)):
                raise TunnelError(
                    f'cloudflared_path={self.path!r} is not an executable file: '
                    + CLOUDFLARED_INSTALL
                )
            return self.path
        found = shutil.which('cloudflared')
        if found is None:
            raise TunnelError(
                "tunnel='cloudflared' needs the cloudflared binary, which is not "
                'on PATH: ' + CLOUDFLARED_INSTALL
            )
        return found

    async def start(self, port: int) -> str:
        binary = self._binary()
        metrics = free_port()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        self._banner = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                binary,
                'tunnel',
                '--no-autoupdate',
                '--url',
                f'http://127.0.0.1:{port}',
                '--metrics',
                f'127.0.0.1:{metrics}',
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise TunnelError(
                f'cannot run {binary}: {exc.strerror or exc}; ' + CLOUDFLARED_INSTALL
            ) from exc
        atexit.register(self._terminate_at_exit)
        self._reader = asyncio.create_task(self._read_output(self._process.stderr))
        try:
            async with probe_session() as http:
                url = await self._public_url(http, metrics, deadline)
                await wait_until_answers(
                    http, url, deadline, self.timeout, 'cloudflared is running but the tunnel'
                )
        except BaseException:
            await self.stop()
            raise
        self.url = url
        return url

    async def _read_output(self, stream: asyncio.StreamReader | None) -> None:
        """Keep the last lines of stderr (and drain it, so cloudflared never blocks on it)."""
        if stream is None:
            return
        while line := await stream.readline():
            text = line.decode('utf-8', 'replace').rstrip()
            self._output.append(text)
            found = BANNER_URL.search(text)
            if found and self._banner is not None and not self._banner.done():
                self._banner.set_result(found.group(1))

    def _last_output(self) -> str:
        lines = '\n'.join(f'    {line}' for line in self._output)
        return f'; its last output:\n{lines}' if lines else ' (it printed nothing)'

    async def _public_url(self, http: aiohttp.ClientSession, metrics: int, deadline: float) -> str:
        assert self._process is not None and self._banner is not None
        loop = asyncio.get_running_loop()
        while True:
            if self._banner.done():
                return self._banner.result()
            hostname = await _quicktunnel_hostname(http, metrics)
            if hostname:
                return hostname if hostname.startswith('https://') else f'https://{hostname}'
            if self._process.returncode is not None:
                if self._reader is not None:
                    await asyncio.wait({self._reader}, timeout=1)
                raise TunnelError(
                    f'cloudflared exited with status {self._process.returncode} '
                    f'before giving a URL{self._last_output()}'
                )
            if loop.time() >= deadline:
                raise TunnelError(
                    f'cloudflared gave no public URL within {self.timeout:g} s (neither on its '
                    'metrics endpoint nor on stderr): check that this machine reaches the '
                    f'internet over HTTPS, or raise tunnel_timeout{self._last_output()}'
                )
            await asyncio.wait({self._banner}, timeout=PROBE_INTERVAL)

    def _terminate_at_exit(self) -> None:
        if self._process is not None and self._process.returncode is None:
            try:
                os.kill(self._process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    async def stop(self) -> None:
        atexit.unregister(self._terminate_at_exit)
        process, self._process = self._process, None
        if process is not None:
            try:
                process.terminate()
                await asyncio.wait_for(process.wait(), self.grace)
            except ProcessLookupError:
                pass  # it had exited already
            except asyncio.TimeoutError:
                process.kill()
            await process.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            await asyncio.wait({reader}, timeout=1)
            reader.cancel()


async def _quicktunnel_hostname(http: aiohttp.ClientSession, metrics: int) -> str:
    """The hostname cloudflared's metrics endpoint reports ('' while it has none)."""
    try:
        async with http.get(f'http://127.0.0.1:{metrics}/quicktunnel') as response:
            if response.status != 200:
                return ''
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return ''
    hostname = body.get('hostname') if isinstance(body, dict) else None
    return hostname if isinstance(hostname, str) else ''
