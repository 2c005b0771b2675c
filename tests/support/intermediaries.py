"""The real programs users meet between a kernel and a browser tab, each started for one test.

Each class starts one program on free loopback ports with a generated configuration: its stock
settings plus the ones that commonly hurt, with its idle timeouts shortened so that a test can wait
twice as long in seconds (``idle`` says how long; ``idle_setting`` which setting and its default).
Each has the shape of a tunnel launcher (``await start(port) -> url``, ``await stop()``), so a
``jchannel_http.Server(tunnel=...)`` starts it once it listens and learns the URL the page uses.

``python tests/support/intermediaries.py --write-table [RESULTS.json]`` renders ``tunnel_guides/paths.md``
from the results that ``tests/paths/test_intermediaries.py`` writes when ``JCHANNEL_PATHS_RESULTS`` names
a file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TABLE = ROOT / 'tunnel_guides' / 'paths.md'
RESULTS_VARIABLE = 'JCHANNEL_PATHS_RESULTS'
NPM_CACHE = Path(os.environ.get('JCHANNEL_NPM_PREFIX', Path.home() / '.cache' / 'jchannel-npm'))
"""Where tests/run_all.sh installs configurable-http-proxy (npm --prefix), not globally."""
KERNEL_HOST = 'kernel.test'
"""A name only the forward proxy resolves: the browser and the doctor reach it only through it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def binary(name: str, *more: str) -> str:
    """The path of program ``name``; RuntimeError naming the install step when it is missing."""
    for candidate in (name, *more):
        found = shutil.which(candidate) or next(
            (
                str(Path(folder, candidate))
                for folder in ('/usr/sbin', '/usr/local/sbin')
                if Path(folder, candidate).exists()
            ),
            None,
        )
        if found:
            return found
    raise RuntimeError(f'{name} is not installed: run tests/run_all.sh, which installs it')


class Intermediary:
    """One program between the page and the kernel server: start(port) -> url, stop()."""

    name: ClassVar[str]
    """The path's name in the table."""
    does: ClassVar[str]
    """What it does to requests and responses, as configured here."""
    fix: ClassVar[str] = ''
    """The configuration line that fixes what it does wrong ('' where nothing needs fixing)."""
    idle: ClassVar[float] = 4.0
    """Seconds of silence after which it cuts a request, as configured here."""
    idle_setting: ClassVar[str]
    """Which setting ``idle`` is, and its default."""
    http2: ClassVar[bool] = False
    """Whether the browser speaks HTTP/2 to it (every request of a tab on one connection)."""
    transport: ClassVar[str] = 'sse-get'
    """The transport the page settles on through it (checked by the tests)."""
    works: ClassVar[bool] = True
    """False for a path where nothing can work: the page and the doctor must say why."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f'jchannel-{self.__class__.__name__.lower()}-'))
        os.chmod(self.tmp, 0o777)  # programs that drop root privileges write here too
        self.port = 0
        self.upstream = 0
        self.processes: list[subprocess.Popen] = []
        self.url: str | None = None

    # -- what each program defines -----------------------------------------------------------

    def commands(self) -> list[list[str]]:
        """The command lines to start, in order (configuration files written first)."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def base_url(self) -> str:
        """The server URL the page uses."""
        return f'http://127.0.0.1:{self.port}'

    def ready_ports(self) -> list[int]:
        return [self.port]

    def url_for(self, port: int) -> str:
        """The URL of a kernel server on ``port`` behind this running intermediary (for several
        servers behind one host: paths that route by path only)."""
        raise NotImplementedError(f'{self.name} serves one kernel server')

    # -- for the browser and the doctor ------------------------------------------------------

    @property
    def forward_proxy(self) -> str | None:
        """The forward proxy the browser and the doctor must use ('http://host:port'), if any."""
        return None

    @classmethod
    def chromium_args_before_launch(cls) -> list[str]:
        """Command line arguments Chromium needs for this path (made before it launches)."""
        return []

    async def login(self, context: object) -> dict[str, str]:
        """Log the browser context in where the path needs it; headers the doctor then needs."""
        return {}

    # -- the shared start/stop shape ---------------------------------------------------------

    async def start(self, port: int) -> str:
        self.upstream = port
        if not self.port:
            self.port = free_port()
        for command in self.commands():
            with open(self.tmp / f'{Path(command[0]).name}.log', 'ab') as log:
                self.processes.append(
                    subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=self.env(),
                        cwd=self.tmp,
                        start_new_session=True,
                    )
                )
        await self._wait_listening(30.0)
        self.url = self.base_url()
        return self.url

    async def _wait_listening(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        pending = list(self.ready_ports())
        while pending:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f'{self.name} exited ({process.returncode}): {self.output()[-2000:]}'
                    )
            try:
                socket.create_connection(('127.0.0.1', pending[0]), timeout=0.2).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if loop.time() > deadline:
                raise RuntimeError(
                    f'{self.name} did not listen on {pending[0]} within '
                    f'{seconds:g} s: {self.output()[-2000:]}'
                )
            await asyncio.sleep(0.1)

    def output(self) -> str:
        """Everything the programs printed and logged so far."""
        return '\n'.join(
            path.read_text(errors='replace') for path in sorted(self.tmp.glob('*.log'))
        )

    async def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        self.processes.clear()
        self.url = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        path.chmod(0o644)
        return path


# -- nothing in between: the floor ----------------------------------------------------------


class Loopback(Intermediary):
    """No intermediary: the page reaches the server on loopback. Its timings are the floor the
    other paths are compared with, measured in the same run (the machine is shared and noisy)."""

    name = 'nothing in between (loopback, the floor)'
    does = 'nothing'
    idle_setting = 'none'

    async def start(self, port: int) -> str:
        self.upstream = port
        self.url = f'http://127.0.0.1:{port}'
        return self.url


# -- Apache httpd ---------------------------------------------------------------------------

APACHE_MODULES = (
    'mpm_event',
    'authz_core',
    'mime',
    'filter',
    'deflate',
    'headers',
    'proxy',
    'proxy_http',
)


class Apache(Intermediary):
    """Apache httpd as a reverse proxy: mod_proxy_http, with mod_deflate on as Debian ships it
    (and application/json and text/event-stream added to the compressed types)."""

    name = 'Apache httpd (mod_proxy_http, mod_deflate)'
    does = (
        'compresses answers of the text types and, as added here, JSON (gzip: a small '
        "answer's Content-Length then exceeds its decoded length); passes event streams and "
        'other answers as they come; cuts a request silent for Timeout seconds'
    )
    fix = (
        'nothing to change (the page reads a whole JSON answer as whole whatever its '
        'Content-Length)'
    )
    idle_setting = 'Timeout (ProxyTimeout) 4 s here; 60 s by default'

    def commands(self) -> list[list[str]]:
        modules = '\n'.join(
            f'LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so'
            for name in APACHE_MODULES
        )
        config = self.write(
            'httpd.conf',
            f"""ServerRoot {self.tmp}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.tmp}/httpd.pid
ErrorLog {self.tmp}/error.log
LogLevel warn
User www-data
Group www-data
{modules}
TypesConfig /etc/mime.types
Include /etc/apache2/mods-available/deflate.conf
AddOutputFilterByType DEFLATE application/json
Timeout {self.idle:g}
KeepAliveTimeout 5
ThreadsPerChild 64
MaxRequestWorkers 256
ProxyPass / http://127.0.0.1:{self.upstream}/
ProxyPassReverse / http://127.0.0.1:{self.upstream}/
""",
        )
        return [[binary('apache2'), '-f', str(config), '-D', 'FOREGROUND']]

    def env(self) -> dict[str, str]:
        return {**os.environ, 'APACHE_RUN_DIR': str(self.tmp), 'APACHE_LOCK_DIR': str(self.tmp)}


# -- HAProxy --------------------------------------------------------------------------------


class HAProxy(Intermediary):
    """HAProxy in HTTP mode with the defaults of its sample configuration."""

    name = 'HAProxy'
    does = 'passes requests and answers as they come; cuts a request silent for timeout server'
    idle_setting = 'timeout server/client 4 s here; 30 s in the sample configuration'

    def commands(self) -> list[list[str]]:
        config = self.write(
            'haproxy.cfg',
            f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 5s
    timeout client {self.idle:g}s
    timeout server {self.idle:g}s
frontend kernel
    bind 127.0.0.1:{self.port}
    default_backend kernel
backend kernel
    server kernel 127.0.0.1:{self.upstream}
""",
        )
        return [[binary('haproxy'), '-db', '-f', str(config)]]


# -- Squid ----------------------------------------------------------------------------------


class Squid(Intermediary):
    """Squid as the forward proxy the browser is told to use, with a short read_timeout: the
    corporate case. The kernel server is reached by a name only Squid resolves."""

    name = 'Squid (forward proxy)'
    does = (
        "forwards the browser's requests to any host (the kernel server by a name only it "
        'resolves); passes answers as they come; cuts a request silent for read_timeout'
    )
    idle_setting = 'read_timeout 4 s here; 15 min by default'

    def commands(self) -> list[list[str]]:
        hosts = self.write('hosts', f'127.0.0.1 {KERNEL_HOST}\n')
        config = self.write(
            'squid.conf',
            f"""http_port 127.0.0.1:{self.port}
pid_filename {self.tmp}/squid.pid
cache_log {self.tmp}/cache.log
access_log none
cache deny all
cache_mem 8 MB
coredump_dir {self.tmp}
hosts_file {hosts}
http_access allow localhost
http_access deny all
read_timeout {self.idle:g} seconds
shutdown_lifetime 0 seconds
""",
        )
        return [[binary('squid'), '-N', '-f', str(config)]]

    def base_url(self) -> str:
        return f'http://{KERNEL_HOST}:{self.upstream}'

    @property
    def forward_proxy(self) -> str | None:
        return f'http://127.0.0.1:{self.port}'


# -- Traefik --------------------------------------------------------------------------------


class Traefik(Intermediary):
    """Traefik with the buffering middleware as mybinder.org has it (64 MB request bodies)."""

    name = 'Traefik with buffering (as on mybinder.org)'
    transport = 'poll'
    does = 'holds every answer until it ended, event streams included; requests up to 64 MB'
    fix = (
        'nothing to change: the page moves to long-poll and downloads end at each window; '
        'without the buffering middleware event streams pass'
    )
    idle_setting = 'entryPoints.web.transport.respondingTimeouts.idleTimeout 4 s here; 180 s'

    def commands(self) -> list[list[str]]:
        dynamic = self.write(
            'dynamic.yml',
            f"""http:
  middlewares:
    buffer:
      buffering:
        maxRequestBodyBytes: 67108864
  routers:
    kernel:
      entryPoints: [web]
      rule: PathPrefix(`/`)
      middlewares: [buffer]
      service: kernel
  services:
    kernel:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:{self.upstream}
""",
        )
        return [
            [
                binary('traefik'),
                f'--entryPoints.web.address=127.0.0.1:{self.port}',
                f'--entryPoints.web.transport.respondingTimeouts.idleTimeout={self.idle:g}s',
                f'--providers.file.filename={dynamic}',
                '--log.level=ERROR',
                '--global.checkNewVersion=false',
                '--global.sendAnonymousUsage=false',
            ]
        ]

    async def start(self, port: int) -> str:
        url = await super().start(port)
        await self._wait_routed(url)
        return url

    async def _wait_routed(self, url: str) -> None:
        """Traefik listens before its file provider's routes are in place (404 meanwhile)."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f'{url}/openapi.json') as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f'traefik did not route to the server within 10 s: {self.output()}')


# -- Caddy ----------------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key, SPKI SHA-256 base64)."""
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(
        [
            'openssl',
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-days',
            '2',
            '-subj',
            '/CN=jchannel test',
            '-addext',
            'subjectAltName=IP:127.0.0.1,DNS:localhost',
            '-keyout',
            str(key),
            '-out',
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ['openssl', 'x509', '-in', str(cert), '-pubkey', '-noout'], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ['openssl', 'pkey', '-pubin', '-outform', 'der'],
        input=public,
        check=True,
        capture_output=True,
    ).stdout
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


class Caddy(Intermediary):
    """Caddy over HTTPS, HTTP/2 to the browser, with a certificate made here (Chromium trusts
    its key by --ignore-certificate-errors-spki-list, the doctor by SSL_CERT_FILE)."""

    name = 'Caddy (HTTPS, HTTP/2)'
    does = (
        'speaks HTTP/2 to the browser (one connection for every request of the tab); '
        'passes answers as they come'
    )
    idle_setting = 'no idle timeout by default (none set here)'
    idle = 4.0
    http2 = True
    certificate: ClassVar[tuple[Path, Path, str] | None] = None

    def __init__(self, routes: list[int] | None = None) -> None:
        super().__init__()
        self.routes = routes or []
        """Ports of kernel servers served under /k<port>/ (the prefix stripped), besides ``/``."""

    def url_for(self, port: int) -> str:
        assert port in self.routes, f'no route to {port}'
        return f'https://127.0.0.1:{self.port}/k{port}'

    @classmethod
    def prepare(cls) -> tuple[Path, Path, str]:
        """The certificate every Caddy of this process uses (made once, before Chromium starts)."""
        if cls.certificate is None:
            cls.certificate = make_certificate(Path(tempfile.mkdtemp(prefix='jchannel-tls-')))
        return cls.certificate

    @classmethod
    def chromium_args_before_launch(cls) -> list[str]:
        return [f'--ignore-certificate-errors-spki-list={cls.prepare()[2]}']

    def commands(self) -> list[list[str]]:
        cert, key, _ = self.prepare()
        routes = ''.join(
            f'    handle_path /k{port}/* {{\n        reverse_proxy 127.0.0.1:{port}\n    }}\n'
            for port in self.routes
        )
        config = self.write(
            'Caddyfile',
            f"""{{
    admin off
    auto_https disable_redirects
    skip_install_trust
    storage file_system {self.tmp}/data
    log {{
        level ERROR
    }}
}}
https://127.0.0.1:{self.port} {{
    tls {cert} {key}
{routes}
    reverse_proxy 127.0.0.1:{self.upstream}
}}
""",
        )
        return [[binary('caddy'), 'run', '--config', str(config), '--adapter', 'caddyfile']]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            'HOME': str(self.tmp),
            'XDG_DATA_HOME': str(self.tmp),
            'XDG_CONFIG_HOME': str(self.tmp),
        }

    def base_url(self) -> str:
        return f'https://127.0.0.1:{self.port}'


# -- Varnish --------------------------------------------------------------------------------


class Varnish(Intermediary):
    """Varnish Cache with its built-in VCL (requests with a token in Authorization are passed)."""

    name = 'Varnish'
    does = (
        'caches what its rules allow (the server marks every answer no-store, so nothing '
        'is); streams answers; cuts an upstream silent for between_bytes_timeout'
    )
    idle_setting = 'between_bytes_timeout 4 s here; 60 s by default'

    def commands(self) -> list[list[str]]:
        return [
            [
                binary('varnishd'),
                '-F',
                '-n',
                str(self.tmp / 'varnish'),
                '-a',
                f'127.0.0.1:{self.port}',
                '-b',
                f'127.0.0.1:{self.upstream}',
                '-s',
                'malloc,64m',
                '-p',
                f'between_bytes_timeout={self.idle:g}',
                '-p',
                f'timeout_idle={self.idle:g}',
            ]
        ]


class CachingVarnish(Varnish):
    """Varnish told to cache every answer for a minute, whatever the server says: a path that
    cannot work (every long-poll and status answer comes from the cache)."""

    name = 'Varnish caching every answer'
    works = False
    does = 'answers every GET from its cache for 60 s, whatever Cache-Control says'
    fix = 'remove the forced TTL (or: if (req.url ~ "^/") { return (pass); } in vcl_recv)'

    def commands(self) -> list[list[str]]:
        vcl = self.write(
            'all.vcl',
            f'''vcl 4.1;
backend kernel {{ .host = "127.0.0.1"; .port = "{self.upstream}"; }}
sub vcl_recv {{ unset req.http.Cookie; return (hash); }}
sub vcl_backend_response {{
    set beresp.ttl = 60s;
    unset beresp.http.Cache-Control;
    return (deliver);
}}
''',
        )
        return [
            [
                binary('varnishd'),
                '-F',
                '-n',
                str(self.tmp / 'varnish'),
                '-a',
                f'127.0.0.1:{self.port}',
                '-f',
                str(vcl),
                '-s',
                'malloc,64m',
                '-p',
                f'between_bytes_timeout={self.idle:g}',
            ]
        ]


# -- Jupyter: jupyter-server-proxy alone, and a real JupyterHub -----------------------------

JUPYTER_TOKEN = 'intermediary-jupyter-token-0123'
HUB_PREFIX = '/hub-prefix/'
HUB_USER = 'alice'
OTHER_EXTENSIONS = (
    'jupyterlab',
    'nbclassic',
    'notebook',
    'jupyter_lsp',
    'jupyter_server_terminals',
    'notebook_shim',
)


def only_the_proxy() -> str:
    """jpserver_extensions with jupyter-server-proxy on and the heavy others off."""
    return repr({'jupyter_server_proxy': True, **dict.fromkeys(OTHER_EXTENSIONS, False)})


class JupyterServerProxy(Intermediary):
    """A Jupyter server with jupyter-server-proxy under a base URL, as a notebook user runs it;
    the page is at ``<base>proxy/<port>/`` (the proxy strips the prefix)."""

    name = 'jupyter-server-proxy'
    does = (
        'passes event streams as they come when Accept is exactly text/event-stream; holds '
        'every other answer until it ended (downloads included)'
    )
    fix = 'nothing to change: downloads end at each window'
    idle_setting = 'no idle timeout (a 300 s request_timeout per held answer)'
    prefix = '/user/alice/'

    def commands(self) -> list[list[str]]:
        return [
            [
                sys.executable,
                '-m',
                'jupyter_server',
                '--no-browser',
                '--allow-root',
                '--ip=127.0.0.1',
                f'--port={self.port}',
                f'--IdentityProvider.token={JUPYTER_TOKEN}',
                f'--ServerApp.base_url={self.prefix}',
                f'--ServerApp.root_dir={self.tmp}',
                f'--ServerApp.jpserver_extensions={only_the_proxy()}',
            ]
        ]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            'JUPYTER_RUNTIME_DIR': str(self.tmp),
            'JUPYTER_DATA_DIR': str(self.tmp),
        }

    def base_url(self) -> str:
        return self.url_for(self.upstream)

    def url_for(self, port: int) -> str:
        return f'http://127.0.0.1:{self.port}{self.prefix}proxy/{port}'

    async def start(self, port: int) -> str:
        url = await super().start(port)
        await self._wait_answering(
            f'http://127.0.0.1:{self.port}{self.prefix}api/status', {'token': JUPYTER_TOKEN}
        )
        return url

    async def _wait_answering(self, url: str, params: dict[str, str]) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(url, params=params) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f'{self.name} did not answer {url} within 30 s: {self.output()}')

    async def login(self, context: object) -> dict[str, str]:
        page = await context.new_page()  # type: ignore[attr-defined]
        await page.goto(
            f'http://127.0.0.1:{self.port}{self.prefix}api/status?token={JUPYTER_TOKEN}'
        )
        await page.close()
        return await cookie_header(context)


async def cookie_header(context: object) -> dict[str, str]:
    """The context's cookies as a Cookie header (for the doctor)."""
    cookies = await context.cookies()  # type: ignore[attr-defined]
    return {'Cookie': '; '.join(f'{c["name"]}={c["value"]}' for c in cookies)} if cookies else {}


class JupyterHub(Intermediary):
    """A real JupyterHub under a path prefix: configurable-http-proxy in front, a dummy
    authenticator, a local user server with jupyter-server-proxy; the page is at
    ``<prefix>user/alice/proxy/<port>/`` as on Binder."""

    name = 'JupyterHub (configurable-http-proxy, jupyter-server-proxy)'
    does = (
        "configurable-http-proxy passes everything as it comes; the user server's "
        'jupyter-server-proxy holds every answer but event streams until it ended'
    )
    fix = 'nothing to change: downloads end at each window'
    idle_setting = 'no idle timeout by default (configurable-http-proxy --timeout unset)'

    def commands(self) -> list[list[str]]:
        proxy = NPM_CACHE / 'node_modules' / '.bin' / 'configurable-http-proxy'
        if not proxy.exists():
            raise RuntimeError(
                f'configurable-http-proxy is not installed in {NPM_CACHE}: run '
                'tests/run_all.sh, which installs it there'
            )
        self.hub_port, self.api_port = free_port(), free_port()
        config = self.write(
            'jupyterhub_config.py',
            f"""
c.JupyterHub.bind_url = 'http://127.0.0.1:{self.port}{HUB_PREFIX}'
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.api_port}'
c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]
c.JupyterHub.authenticator_class = 'dummy'
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = 'simple'
c.Spawner.cmd = [{sys.executable!r}, '-m', 'jupyterhub.singleuser']
c.Spawner.args = ['--allow-root', {'--ServerApp.jpserver_extensions=' + only_the_proxy()!r}]
c.Spawner.default_url = '/api/status'
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.JupyterHub.db_url = 'sqlite:///{self.tmp}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '{self.tmp}/cookie_secret'
c.JupyterHub.pid_file = '{self.tmp}/jupyterhub.pid'
c.JupyterHub.cleanup_servers = True
""",
        )
        return [[binary('jupyterhub'), '-f', str(config), '--log-level=WARN']]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}',
            'HOME': str(self.tmp),
        }

    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.port}{HUB_PREFIX}user/{HUB_USER}/proxy/{self.upstream}'

    async def start(self, port: int) -> str:
        url = await super().start(port)
        await self._spawn()
        return url

    async def _spawn(self) -> None:
        """Log in as alice and start her server (the browser logs in again by itself)."""
        import aiohttp

        hub = f'http://127.0.0.1:{self.port}{HUB_PREFIX}hub'
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for _ in range(300):
                try:
                    async with http.get(f'{hub}/login') as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f'JupyterHub did not answer within 30 s: {self.output()}')
            xsrf = next((c.value for c in http.cookie_jar if c.key == '_xsrf'), '')
            async with http.post(
                f'{hub}/login', data={'username': HUB_USER, 'password': 'x', '_xsrf': xsrf}
            ) as response:
                await response.read()
            async with http.get(f'{hub}/spawn') as response:  # no options form: starts it
                await response.read()
            status = f'http://127.0.0.1:{self.port}{HUB_PREFIX}user/{HUB_USER}/api/status'
            for _ in range(600):
                async with http.get(status, allow_redirects=False) as response:
                    if response.status in (200, 403):  # her server answers (403: no cookie
                        return  # of its own yet), not the hub
                await asyncio.sleep(0.1)
        raise RuntimeError(
            f"JupyterHub did not start alice's server within 60 s: {self.output()[-3000:]}"
        )

    async def login(self, context: object) -> dict[str, str]:
        page = await context.new_page()  # type: ignore[attr-defined]
        hub = f'http://127.0.0.1:{self.port}{HUB_PREFIX}hub'
        await page.goto(f'{hub}/login')
        await page.fill('input[name=username]', HUB_USER)
        await page.fill('input[name=password]', 'x')
        await page.click('[type=submit]')
        await page.wait_for_load_state()
        # a page (not an API) of her server: the hub's OAuth sets her server's own cookie
        await page.goto(f'{self.base_url()}/openapi.json')
        await page.close()
        return await cookie_header(context)


PATHS: tuple[type[Intermediary], ...] = (
    Loopback,
    Apache,
    HAProxy,
    Squid,
    Traefik,
    Caddy,
    Varnish,
    CachingVarnish,
    JupyterServerProxy,
    JupyterHub,
)


# -- the table ------------------------------------------------------------------------------


def render(results: dict[str, dict]) -> str:
    """tunnel_guides/paths.md from the results the tests wrote."""
    lines = [
        '# What each intermediary does, measured',
        '',
        'Generated by `python tests/support/intermediaries.py --write-table` from a run of',
        f'`{RESULTS_VARIABLE}=results.json pytest tests/paths/test_intermediaries.py` (do not edit by '
        'hand). Each program ran here, on loopback, in its stock configuration plus the settings '
        'named, with its idle timeout shortened (column "idle") so that the test waits twice as '
        'long; headless Chromium and the kernel server on the same machine (2 cores).',
        '',
        '| path | what it does to requests and responses | transport chosen | calls both ways '
        '| 300 concurrent each way | 16 MiB to the page | 16 MiB to the kernel | after 2 x idle '
        '| doctor says | what fixes it |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for cls in PATHS:
        result = results.get(cls.__name__)
        if result is None:
            lines.append(f'| {cls.name} | {cls.does} | not run | | | | | | | {cls.fix} |')
            continue
        transport = result.get('transport', '?')
        says = result.get('says_so')
        if isinstance(says, dict) and says.get('page'):
            transport += f' (the page shows "{says["page"]}")'
        cells = [
            cls.name,
            cls.does,
            transport,
            _mark(result, 'calls'),
            _mark(result, 'concurrent'),
            _mark(result, 'download', 'seconds'),
            _mark(result, 'upload', 'seconds'),
            _mark(result, 'idle', 'waited'),
            result.get('doctor', ''),
            cls.fix or '-',
        ]
        lines.append('| ' + ' | '.join(str(cell).replace('|', '/') for cell in cells) + ' |')
    lines += ['', 'Idle timeouts as configured here:', '']
    lines += [f'- {cls.name}: {cls.idle_setting}' for cls in PATHS]
    extra = results.get('connections')
    if extra:
        lines += [
            '',
            'Connections per host: three servers in one tab, each with a long upload '
            'and a download running, calls still flowing:',
            '',
        ]
        lines += [f'- {name}: {text}' for name, text in sorted(extra.items())]
    return '\n'.join(lines) + '\n'


def _mark(result: dict, key: str, detail: str = '') -> str:
    check = result.get(key)
    if not isinstance(check, dict):
        return 'not run'
    text = 'passed' if check.get('passed') else f'FAILED: {check.get("error", "")[:120]}'
    if check.get('passed') and detail and detail in check:
        value = check[detail]
        text += f' ({value:.1f} s' if isinstance(value, float) else f' ({value}'
        text += f'; floor {check["floor"]:.1f} s)' if check.get('floor') else ')'
    return text


def main(argv: list[str]) -> int:
    if not argv or argv[0] != '--write-table':
        print(
            'usage: python tests/support/intermediaries.py --write-table [RESULTS.json]',
            file=sys.stderr,
        )
        return 2
    source = Path(argv[1] if len(argv) > 1 else os.environ.get(RESULTS_VARIABLE, 'results.json'))
    if not source.exists():
        print(
            f'{source} does not exist: run {RESULTS_VARIABLE}={source} python -m pytest '
            'tests/paths/test_intermediaries.py first',
            file=sys.stderr,
        )
        return 1
    TABLE.write_text(render(json.loads(source.read_text())))
    print(f'wrote {TABLE}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
