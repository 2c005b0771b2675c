"""Tunnel launchers: give the kernel server an address that the browser can reach.

A launcher is any object with ``async start(port) -> url`` and ``async stop()``. ``resolve()``
turns the ``tunnel=`` argument of ``start()`` into one:

===========================  ==================================================================
``None``                     no launcher: the browser uses ``http://host:port``
``'cloudflared'``            a cloudflared quick tunnel (``CloudflaredLauncher``)
``'ngrok'``                  the ngrok Python SDK (``NgrokLauncher``)
``'colab'``                  Google Colab's proxy of kernel ports (``ColabLauncher``)
``'jupyter-server-proxy'``   ``<base>proxy/<port>`` on the notebook's own server
``'auto'``                   what fits this environment (``choose_auto``), logged with the reason
any other object             used as it is, when it has ``start`` and ``stop``
===========================  ==================================================================

Every launcher raises TunnelError saying what is missing and how to fix it, and leaves nothing
running when ``start`` fails. ``open_tunnel`` and ``close_tunnel`` are what the server calls.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import dataclasses
import importlib.util
import inspect
import logging
import os
import re
import shutil
import signal
import socket
import ssl
from typing import Any, Protocol

import aiohttp
import orjson

from ..errors import JChannelError, TunnelError
from ..kernel.rpc import calls_in_flight
from ..protocol.wire import SERVER_TITLE

log = logging.getLogger('jchannel_http')

NAMES = ('auto', 'cloudflared', 'colab', 'jupyter-server-proxy', 'ngrok')
PROBE_INTERVAL = 0.25


class Launcher(Protocol):
    """What ``start(tunnel=...)`` accepts besides the names in ``NAMES``."""

    async def start(self, port: int) -> str:
        """Make the server listening on 127.0.0.1:``port`` reachable; return the URL to use."""

    async def stop(self) -> None:
        """Undo ``start``: end processes, close listeners. Called once, also after a failure."""


# -- cloudflared ----------------------------------------------------------------------------

BANNER_URL = re.compile(r'\|\s+(https://[^\s|]+)\s+\|')  # the URL line of the quick-tunnel box
CLOUDFLARED_INSTALL = (
    'install cloudflared (Debian/Ubuntu: the cloudflared .deb from its GitHub releases; macOS: '
    'brew install cloudflared; Windows: winget install --id Cloudflare.cloudflared) and put it '
    'on PATH, or pass cloudflared_path="/path/to/cloudflared"'
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


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
        self._reader: asyncio.Task | None = None
        self._banner: asyncio.Future[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=15)

    @property
    def pid(self) -> int | None:
        """The cloudflared process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _binary(self) -> str:
        if self.path is not None:
            if not (os.path.isfile(self.path) and os.access(self.path, os.X_OK)):
                raise TunnelError(f'cloudflared_path={self.path!r} is not an executable file: '
                                  + CLOUDFLARED_INSTALL)
            return self.path
        found = shutil.which('cloudflared')
        if found is None:
            raise TunnelError("tunnel='cloudflared' needs the cloudflared binary, which is not "
                              'on PATH: ' + CLOUDFLARED_INSTALL)
        return found

    async def start(self, port: int) -> str:
        binary = self._binary()
        metrics = free_port()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        self._banner = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                binary, 'tunnel', '--no-autoupdate', '--url', f'http://127.0.0.1:{port}',
                '--metrics', f'127.0.0.1:{metrics}',
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise TunnelError(f'cannot run {binary}: {exc.strerror or exc}; '
                              + CLOUDFLARED_INSTALL) from exc
        atexit.register(self._terminate_at_exit)
        self._reader = asyncio.create_task(self._read_output(self._process.stderr))
        try:
            async with _probe_session() as http:
                url = await self._public_url(http, metrics, deadline)
                await _wait_until_answers(http, url, deadline, self.timeout,
                                          'cloudflared is running but the tunnel')
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

    async def _public_url(self, http: aiohttp.ClientSession, metrics: int,
                          deadline: float) -> str:
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
                raise TunnelError(f'cloudflared exited with status {self._process.returncode} '
                                  f'before giving a URL{self._last_output()}')
            if loop.time() >= deadline:
                raise TunnelError(
                    f'cloudflared gave no public URL within {self.timeout:g} s (neither on its '
                    'metrics endpoint nor on stderr): check that this machine reaches the '
                    f'internet over HTTPS, or raise tunnel_timeout{self._last_output()}')
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


# -- waiting for an address to answer -------------------------------------------------------

def _probe_session() -> aiohttp.ClientSession:
    """A client session for probes, trusting what OpenSSL trusts now (SSL_CERT_FILE too)."""
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(), ttl_dns_cache=None,
                                     use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=5, sock_connect=3),
                                 headers={'ngrok-skip-browser-warning': '1'})


async def _wait_until_answers(http: aiohttp.ClientSession, url: str, deadline: float,
                              timeout: float, what: str) -> None:
    """Return once ``url/openapi.json`` is this kind of server's; TunnelError at ``deadline``."""
    loop = asyncio.get_running_loop()
    last = 'no answer yet'
    while True:
        try:
            async with http.get(f'{url}/openapi.json') as response:
                body = await response.read()
                if response.status == 200 and _is_description(body):
                    return
                last = f'HTTP {response.status} {response.content_type}'
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last = f'{type(exc).__name__}: {exc}'
        if loop.time() >= deadline:
            raise TunnelError(f'{what} at {url} did not reach this server within {timeout:g} s '
                              f'(last attempt: {last}); raise tunnel_timeout, or run '
                              f'python -m jchannel_http doctor {url} to see where it breaks')
        await asyncio.sleep(PROBE_INTERVAL)


def _is_description(body: bytes) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get('info', {}).get('title') == SERVER_TITLE


# -- ngrok ----------------------------------------------------------------------------------

class NgrokLauncher:
    """An ngrok tunnel made by the ngrok Python SDK (``pip install ngrok``).

    The authtoken comes from ``NGROK_AUTHTOKEN``. ``options`` go to ``ngrok.forward`` as they
    are (for example ``domain='name.ngrok.app'``).
    """

    name = 'ngrok'

    def __init__(self, timeout: float = 30.0, **options: Any) -> None:
        self.timeout = timeout
        self.options = options
        self.url: str | None = None
        self._ngrok: Any = None
        self._closing: set[asyncio.Future] = set()

    async def start(self, port: int) -> str:
        try:
            import ngrok
        except ImportError as exc:
            raise TunnelError("tunnel='ngrok' needs the ngrok package, which is not installed: "
                              'pip install ngrok') from exc
        if not os.environ.get('NGROK_AUTHTOKEN'):
            raise TunnelError(
                "tunnel='ngrok' needs an authtoken in NGROK_AUTHTOKEN, which is not set: copy "
                'yours from the ngrok dashboard (Your Authtoken) and set it before start(), '
                "e.g. os.environ['NGROK_AUTHTOKEN'] = '...' or %env NGROK_AUTHTOKEN=...")
        self._ngrok = ngrok
        forwarding = asyncio.ensure_future(asyncio.to_thread(
            ngrok.forward, f'127.0.0.1:{port}', authtoken_from_env=True, **self.options))
        try:
            listener = await asyncio.wait_for(asyncio.shield(forwarding), self.timeout)
        except asyncio.TimeoutError:
            forwarding.add_done_callback(self._close_late)
            raise TunnelError(f'ngrok gave no URL within {self.timeout:g} s: check that this '
                              'machine reaches the internet, or raise tunnel_timeout') from None
        except asyncio.CancelledError:
            forwarding.add_done_callback(self._close_late)
            raise
        except Exception as exc:
            raise TunnelError(f'ngrok refused to open the tunnel: {exc} (check NGROK_AUTHTOKEN '
                              'and your account limits)') from exc
        self.url = listener.url()
        return self.url

    def _close_late(self, forwarding: asyncio.Future) -> None:
        """Close a listener that arrived after start() gave up waiting for it."""
        if not forwarding.cancelled() and forwarding.exception() is None:
            closing = asyncio.ensure_future(asyncio.to_thread(self._ngrok.disconnect,
                                                              forwarding.result().url()))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        url, self.url = self.url, None
        if url is not None:
            await asyncio.to_thread(self._ngrok.disconnect, url)


# -- Google Colab ---------------------------------------------------------------------------

EVAL_JS_SLICE = 2.0
"""Most seconds one ``eval_js`` may block the kernel's event loop; a longer wait is asked again."""
IDLE_POLL = 0.05


class ColabLauncher:
    """Colab's own proxy of a kernel port: ``google.colab.kernel.proxyPort(<port>)``.

    The URL is asked of the notebook's page with ``google.colab.output.eval_js``, which blocks the
    kernel's event loop until the page answers; it works only while the notebook is open in a
    tab. So the wait is cut in slices of at most ``EVAL_JS_SLICE`` seconds (the loop runs between
    them), ``timeout`` seconds in all, and no slice starts while a call of any server of this
    process is in flight (its page would see a silent kernel meanwhile).
    """

    name = 'colab'

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.url: str | None = None

    async def start(self, port: int) -> str:
        try:
            from google.colab import output
        except ImportError as exc:
            raise TunnelError("tunnel='colab' works only in Google Colab (google.colab cannot be "
                              "imported here): elsewhere use tunnel='cloudflared' or 'ngrok'"
                              ) from exc
        script = f'google.colab.kernel.proxyPort({int(port)})'
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        url = None
        while not url:
            while calls_in_flight() and loop.time() < deadline:
                await asyncio.sleep(IDLE_POLL)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                url = output.eval_js(script, timeout_sec=min(EVAL_JS_SLICE, remaining))
            except Exception as exc:
                raise TunnelError(f'the notebook page refused {script}: {exc}') from exc
            if not url:
                await asyncio.sleep(IDLE_POLL)  # let the loop run between slices
        if not url:
            raise TunnelError(f'the notebook page did not answer {script} within '
                              f'{self.timeout:g} s: run the cell in a tab where the notebook '
                              'is open, or raise tunnel_timeout')
        if not isinstance(url, str) or not url.startswith(('https://', 'http://')):
            raise TunnelError(f'{script} answered {url!r}, which is not a URL')
        self.url = url
        return url

    async def stop(self) -> None:
        self.url = None  # the proxy stops answering once the server's port is closed


# -- jupyter-server-proxy -------------------------------------------------------------------

def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class JupyterServerProxyLauncher:
    """The notebook server's own ``<base>proxy/<port>`` (the jupyter-server-proxy extension).

    The URL has no scheme or host: the page resolves it against the notebook's address, and
    Jupyter authenticates it with its cookie. ``base`` defaults to ``JUPYTERHUB_SERVICE_PREFIX``
    (JupyterHub and Binder set it), else ``/``; pass the server's ``base_url`` when it has one.
    """

    name = 'jupyter-server-proxy'

    def __init__(self, base: str | None = None) -> None:
        self.base = base
        self.url: str | None = None

    async def start(self, port: int) -> str:
        if not _installed('jupyter_server_proxy'):
            raise TunnelError(
                "tunnel='jupyter-server-proxy' needs the jupyter-server-proxy extension, which "
                'is not installed: pip install jupyter-server-proxy in the environment of the '
                "Jupyter server, then restart that server (or use tunnel='cloudflared')")
        base = self.base or os.environ.get('JUPYTERHUB_SERVICE_PREFIX') or '/'
        base = '/' + base.strip('/') + '/' if base.strip('/') else '/'
        self.url = f'{base}proxy/{int(port)}'
        return self.url

    async def stop(self) -> None:
        self.url = None  # the proxy answers 502 once the server's port is closed


# -- choosing -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AutoChoice:
    """What ``tunnel='auto'`` chose and why; ``doubtful`` when the page may not reach it."""

    launcher: Launcher | None
    reason: str
    doubtful: bool = False

    @property
    def name(self) -> str:
        return getattr(self.launcher, 'name', 'no tunnel')


def choose_auto(timeout: float = 30.0) -> AutoChoice:
    """The launcher that fits this environment: Colab, then JupyterHub/Binder, else none."""
    if _installed('google.colab'):
        return AutoChoice(ColabLauncher(timeout),
                          'google.colab can be imported, so this is Google Colab')
    prefix = os.environ.get('JUPYTERHUB_SERVICE_PREFIX')
    if prefix and _installed('jupyter_server_proxy'):
        return AutoChoice(JupyterServerProxyLauncher(),
                          f'JUPYTERHUB_SERVICE_PREFIX={prefix} (JupyterHub or Binder) and '
                          'jupyter-server-proxy is installed')
    if prefix:
        return AutoChoice(None, (
            f'JUPYTERHUB_SERVICE_PREFIX={prefix} (JupyterHub or Binder) but jupyter-server-proxy '
            'is not installed, so the browser probably cannot reach this server: pip install '
            "jupyter-server-proxy and restart the Jupyter server, or use tunnel='cloudflared'"),
            doubtful=True)
    return AutoChoice(None, 'neither Google Colab nor JupyterHub/Binder: the browser reaches '
                            'the server at host:port')


def resolve(tunnel: object, timeout: float = 30.0,
            cloudflared_path: str | None = None) -> Launcher | None:
    """The launcher for a ``tunnel=`` value (see the module docstring), or None for none."""
    if tunnel is None:
        return None
    if isinstance(tunnel, str):
        if tunnel == 'auto':
            choice = choose_auto(timeout)
            log.log(logging.WARNING if choice.doubtful else logging.INFO,
                    "tunnel='auto' chose %s: %s", choice.name, choice.reason)
            return choice.launcher
        if tunnel == 'cloudflared':
            return CloudflaredLauncher(cloudflared_path, timeout)
        if tunnel == 'ngrok':
            return NgrokLauncher(timeout)
        if tunnel == 'colab':
            return ColabLauncher(timeout)
        if tunnel == 'jupyter-server-proxy':
            return JupyterServerProxyLauncher()
        raise ValueError(f'unknown tunnel {tunnel!r}: use None, one of {list(NAMES)}, or an '
                         'object with async start(port) -> url and async stop()')
    if callable(getattr(tunnel, 'start', None)) and callable(getattr(tunnel, 'stop', None)):
        return tunnel  # type: ignore[return-value]
    raise TypeError(f'tunnel={tunnel!r} is neither a name in {list(NAMES)} nor an object with '
                    'async start(port) -> url and async stop()')


async def open_tunnel(launcher: Launcher, port: int) -> str:
    """Start ``launcher`` for ``port`` and return its URL without a trailing slash.

    On any failure the launcher is stopped before the error propagates; errors that are not the
    library's own become TunnelError, keeping the cause.
    """
    try:
        url = await launcher.start(port)
        if not isinstance(url, str) or not url.startswith(('http://', 'https://', '/')):
            raise TunnelError(f'the tunnel launcher {launcher!r} returned {url!r}: start(port) '
                              'must return an http(s) URL or an absolute path')
    except BaseException as exc:
        await close_tunnel(launcher)
        if isinstance(exc, JChannelError) or not isinstance(exc, Exception):
            raise
        raise TunnelError(f'the tunnel launcher {launcher!r} failed to start: {exc}') from exc
    return url.rstrip('/')


async def close_tunnel(launcher: Launcher) -> None:
    """Stop ``launcher``; an error it raises is logged, not propagated."""
    try:
        result = launcher.stop()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.warning('the tunnel launcher %r failed to stop', launcher, exc_info=True)
