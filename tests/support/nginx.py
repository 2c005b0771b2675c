"""An nginx reverse proxy on a free loopback port, started by a test with a generated config."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from support.ports import free_port

CONFIG = """daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{servers}
}}
"""

SERVER = """    server {{
        listen 127.0.0.1:{port};
        client_max_body_size {body_cap};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version {http_version};
            proxy_set_header Connection "";
{directives}
        }}
    }}
"""


class Nginx:
    """nginx in the foreground, one listener per body cap, all proxying to ``upstream``.

    ``directives`` are added to every ``location`` block (buffering, timeouts, ...);
    ``http_version`` is the one spoken to the upstream (nginx's own default is 1.0).
    """

    def __init__(
        self, upstream: int, body_caps: list[str], directives: str = '', http_version: str = '1.1'
    ) -> None:
        self.upstream = upstream
        self.directives = directives
        self.http_version = http_version
        self.ports = {cap: free_port() for cap in body_caps}
        self._tmp = tempfile.TemporaryDirectory(prefix='jchannel-nginx-')
        self._process: subprocess.Popen | None = None

    async def start(self) -> Nginx:
        binary = shutil.which('nginx') or '/usr/sbin/nginx'
        tmp = Path(self._tmp.name)
        servers = ''.join(
            SERVER.format(
                port=port,
                body_cap=cap,
                upstream=self.upstream,
                directives=self.directives,
                http_version=self.http_version,
            )
            for cap, port in self.ports.items()
        )
        config = tmp / 'nginx.conf'
        config.write_text(CONFIG.format(tmp=tmp, servers=servers))
        self._process = subprocess.Popen(
            [binary, '-c', str(config), '-p', str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(100):
            if self._process.poll() is not None:
                raise RuntimeError(f'nginx exited: {self._process.communicate()[1].decode()}')
            try:
                for port in self.ports.values():
                    socket.create_connection(('127.0.0.1', port), timeout=0.2).close()
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError('nginx did not start listening within 5 s')

    def refused_bodies(self) -> int:
        """How many requests nginx refused with 413 so far (from its error log)."""
        log = Path(self._tmp.name) / 'error.log'
        text = log.read_text() if log.exists() else ''
        return text.count('client intended to send too large body')

    def url(self, cap: str) -> str:
        return f'http://127.0.0.1:{self.ports[cap]}'

    async def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._tmp.cleanup()
