"""``python -m jchannel_http doctor URL [--token T]``: what the path to a kernel server does.

The doctor talks to a running server through whatever sits in between (a tunnel, a proxy, a
hub) with the requests the page client makes (docs/protocol.md), and answers one question per
row: is the server reachable, is the token accepted, does each transport work unbuffered, how
large a request body passes, does an HTML page (an interstitial or a login) answer instead of
the server, does a WebSocket upgrade pass (for information: jchannel_http uses none), and how
long a round trip takes. It ends with the transport the page client will choose and, for each
problem, what to change.

The doctor goes where the browser goes: through the forward proxy named by ``--proxy``, else by
``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` honoured), as a browser set up with them does.

To probe the event streams and the long-poll, the doctor connects as a page client for a few
seconds (client id ``doctor-...``) and releases the server when done. While a page is connected
those rows are skipped (the server lets one page in at a time); a kernel call waiting for a page
while the doctor runs fails with StateError once a page connects after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import secrets
import ssl
import statistics
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
import orjson

from ..protocol.wire import SERVER_TITLE

KiB = 1024
MiB = 1024 * KiB
BODY_SIZES = tuple(64 * KiB * 2**n for n in range(8))  # 64 KiB .. 8 MiB
PAGE_MARKER = b'id="jchannel-state"'  # in the HTML of GET /page
BROWSER_HEADERS = {
    'Accept': 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
    'Chrome/130.0 Safari/537.36',
}
TRANSPORTS = {'sse-get': 'GET event stream', 'sse-post': 'POST event stream', 'poll': 'long-poll'}

OK, PROBLEM, INFO, SKIPPED, ABSENT = 'ok', 'PROBLEM', 'info', 'skipped', 'n/a'


@dataclasses.dataclass
class Check:
    """One row of the report."""

    key: str
    label: str
    status: str
    detail: str
    advice: str = ''


@dataclasses.dataclass
class Report:
    """Every row, and the transport the page client will end on (None: none works)."""

    url: str
    checks: list[Check]
    transport: str | None
    note: str = ''

    def check(self, key: str) -> Check:
        return next(check for check in self.checks if check.key == key)

    @property
    def exit_status(self) -> int:
        """0 when a transport works, else 1."""
        return 0 if self.transport is not None else 1

    def render(self) -> str:
        width = max(len(check.label) for check in self.checks)
        lines = [f'jchannel_http doctor: {self.url}', '']
        if self.note:
            lines += [self.note, '']
        lines.append(f'{"check".ljust(width)}  {"result".ljust(7)}  detail')
        for check in self.checks:
            lines.append(f'{check.label.ljust(width)}  {check.status.ljust(7)}  {check.detail}')
        lines.append('')
        probed = (
            any(check.status != SKIPPED for check in self.checks if check.key in TRANSPORTS)
            or self.check('reachable').status == PROBLEM
        )
        if self.transport is not None:
            lines.append(
                f'The page client will use: {self.transport} '
                f'({TRANSPORTS.get(self.transport, self.transport)})'
            )
        elif self.check('token').status == PROBLEM:
            lines.append('The transports were not probed: the server refused the token.')
        elif probed:
            lines.append('The page client will find no working transport.')
        else:
            lines.append(
                'The transports were not probed: give the token (--token, or the page '
                'URL), and run the doctor while no page is connected.'
            )
        problems = [check for check in self.checks if check.advice]
        if problems:
            lines += ['', 'What to change:']
            lines += [f'- {check.label}: {check.advice}' for check in problems]
        return '\n'.join(lines)

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                'url': self.url,
                'transport': self.transport,
                'checks': [dataclasses.asdict(check) for check in self.checks],
            },
            option=orjson.OPT_INDENT_2,
        )


def split_page_url(url: str) -> tuple[str, str | None]:
    """The base URL and token of a URL that may be ``server.page_url`` (``.../page?token=``)."""
    parts = urlsplit(url)
    token = parse_qs(parts.query).get('token', [None])[0]
    path = parts.path
    path = path.removesuffix('/page')
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip('/'), '', '')), token


@dataclasses.dataclass
class Answer:
    """What came back for one request: enough to say who answered and how."""

    status: int
    content_type: str
    body: bytes
    final_url: str
    seconds: float

    @functools.cached_property
    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def from_server(self) -> bool:
        """Whether the server itself answered (its answers are JSON objects)."""
        return self.content_type == 'application/json' and isinstance(self.json, dict)

    @property
    def error_code(self) -> str | None:
        return self.json.get('error') if self.from_server else None

    def describe(self) -> str:
        if self.from_server and self.error_code:
            return f'HTTP {self.status} {self.error_code}: {self.json.get("message", "")}'
        if self.content_type == 'text/html':
            return (
                f'HTTP {self.status} an HTML page ({html_title(self.body)}) from {self.final_url}'
            )
        return f'HTTP {self.status} {self.content_type or "(no content type)"}'


def html_title(body: bytes) -> str:
    found = re.search(rb'<title[^>]*>(.*?)</title>', body, re.IGNORECASE | re.DOTALL)
    title = found.group(1).decode('utf-8', 'replace').strip() if found else ''
    return repr(' '.join(title.split())[:80]) if title else 'no title'


def html_advice(answer: Answer) -> str:
    """What to do about an HTML page answering instead of the server."""
    text = answer.body.lower()
    if b'ngrok' in text:
        return (
            'ngrok shows its browser warning: requests need the header '
            'ngrok-skip-browser-warning (the page client sends it); a person opening the page '
            'URL clicks "Visit Site" once'
        )
    if 'github' in answer.final_url or b'codespaces' in text:
        return (
            "GitHub Codespaces redirects a private port to its login: set the port's "
            'visibility to Public (Ports panel, right click, Port Visibility)'
        )
    if '/login' in answer.final_url or b'login' in text:
        return (
            "a login page answers: the path needs the browser's login cookie (JupyterHub, "
            'Cloudflare Access, ...): open the notebook in that browser first, or pass the '
            "cookie to the doctor with -H 'Cookie: ...'"
        )
    return 'an HTML page answers instead of the server: open the URL in a browser to see it'


class Doctor:
    """Runs every probe against ``url`` and builds the Report."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        deadline: float = 3.0,
        hold: float = 2.0,
        timeout: float = 30.0,
        proxy: str | None = None,
    ) -> None:
        self.url, token_in_url = split_page_url(url)
        if proxy is not None and not proxy.startswith(('http://', 'https://')):
            raise ValueError(
                f'the proxy {proxy!r} is not an http(s) URL: give it as http://host:port'
            )
        self.proxy = proxy
        """The forward proxy for every request; None: HTTPS_PROXY/HTTP_PROXY/NO_PROXY decide."""
        self.token = token or token_in_url
        self.headers = headers or {}
        self.deadline = deadline
        self.hold = hold
        self.timeout = timeout
        self.client = 'doctor-' + secrets.token_urlsafe(12)
        self.session: str | None = None
        self.max_body: int | None = None
        self.token_ok = False
        self.page_live = False
        self.live_transport: str | None = None
        self.post_refused = False
        self.cached = False
        """Whether a cache on the way answered from what it stored (nothing can work then)."""
        self._http: aiohttp.ClientSession | None = None

    # -- requests ---------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    def _auth(self, auth: bool = True) -> dict[str, str]:
        """The headers of the page client's requests: the token, and ngrok's warning skipped."""
        headers = {'ngrok-skip-browser-warning': '1'}
        if auth and self.token:
            headers['Authorization'] = f'Bearer {self.token}'
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        browser: bool = False,
    ) -> Answer:
        """One request as the page client makes it (as a person's browser when ``browser``)."""
        started = time.perf_counter()
        async with self.http.request(
            method,
            self.url + path,
            params=params,
            data=data,
            headers={**({} if browser else self._auth(auth)), **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as response:
            body = await response.read()
            return Answer(
                response.status,
                response.content_type,
                body,
                str(response.url),
                time.perf_counter() - started,
            )

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> Report:
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
        async with aiohttp.ClientSession(
            connector=connector, headers=self.headers, proxy=self.proxy, trust_env=True
        ) as http:
            self._http = http
            checks = [await self.reachable()]
            if checks[0].status == PROBLEM:
                return self._unreachable(checks)
            checks.append(await self.token_accepted())
            streams = [
                await self.event_stream('GET'),
                await self.event_stream('POST'),
                await self.long_poll(),
            ]
            post = await self.post_passes()
            if self.post_refused:
                streams[1] = Check(
                    'sse-post',
                    LABELS['sse-post'],
                    INFO,
                    'not usable: the path refuses POST (see below)',
                )
            checks += streams
            checks.append(await self.body_limit())
            checks.append(post)
            checks.append(await self.statuses())
            checks.append(await self.interstitial())
            checks.append(await self.websocket())
            checks.append(await self.latency())
            if self.token_ok and not self.page_live:
                await self._release()
        return Report(self.url, checks, self._choice(streams), self._note())

    def _note(self) -> str:
        notes = [self._proxy_note()]
        if self.page_live:
            notes.append(
                f'A page is connected now (transport {self.live_transport}): the '
                'transports were not probed, so as not to disturb it.'
            )
        elif self.token and not self.token_ok:
            notes.append(
                'The server refused the token, so nothing that needs it was probed: '
                f'{TOKEN_ADVICE}.'
            )
        elif self.token:
            notes.append(
                f'The doctor connected as page client {self.client} for the stream '
                'probes and has released the server.'
            )
        return '\n'.join(note for note in notes if note)

    def _proxy_note(self) -> str:
        """Which forward proxy the requests went through, if any."""
        if self.proxy is not None:
            return f'Through the forward proxy {self.proxy} (--proxy).'
        found = environment_proxy(self.url)
        return f'Through the forward proxy {found[1]} ({found[0]}).' if found else ''

    def _choice(self, streams: list[Check]) -> str | None:
        if self.page_live:
            return self.live_transport
        if self.cached:
            return None
        return next((check.key for check in streams if check.status == OK), None)

    def _unreachable(self, checks: list[Check]) -> Report:
        for key, label in ROWS[1:]:
            checks.append(Check(key, label, SKIPPED, 'the server is not reachable'))
        return Report(self.url, checks, None)

    async def _release(self) -> None:
        try:
            await self._request(
                'GET' if self.post_refused else 'POST', '/release', params={'client': self.client}
            )
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the server lets another page in after two silent heartbeats anyway

    async def _probe(self, key: str, probe: Callable[[], Awaitable[Check]]) -> Check:
        """Run ``probe``, turning a network error into a PROBLEM row."""
        try:
            return await probe()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Check(
                key,
                LABELS[key],
                PROBLEM,
                f'{type(exc).__name__}: {exc}',
                'the request failed on the way; see the detail',
            )

    # -- probes -----------------------------------------------------------------------------

    async def reachable(self) -> Check:
        key = 'reachable'
        try:
            answer = await self._request('GET', '/openapi.json', auth=False)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Check(
                key,
                LABELS[key],
                PROBLEM,
                f'no answer: {type(exc).__name__}: {exc}',
                'check the URL (server.url), that the kernel server is running, and '
                'that the tunnel or proxy in between is up; if the browser reaches it '
                'through a forward proxy, give that proxy (--proxy, or HTTPS_PROXY and '
                'HTTP_PROXY)',
            )
        document = answer.json
        if (
            answer.status == 200
            and isinstance(document, dict)
            and document.get('info', {}).get('title') == SERVER_TITLE
        ):
            return Check(
                key,
                LABELS[key],
                OK,
                f'HTTP 200 in {answer.seconds * 1000:.0f} ms '
                f'(jchannel_http {document["info"].get("version", "?")})',
            )
        advice = (
            html_advice(answer)
            if answer.content_type == 'text/html'
            else ('something else answers at this URL: check it is server.url')
        )
        return Check(
            key, LABELS[key], PROBLEM, f'not the kernel server: {answer.describe()}', advice
        )

    async def token_accepted(self) -> Check:
        key = 'token'
        if not self.token:
            return Check(
                key,
                LABELS[key],
                SKIPPED,
                'no token given (--token, or give server.page_url as the URL)',
            )

        async def probe() -> Check:
            answer = await self._request('GET', '/status')
            if answer.status == 200 and answer.from_server:
                status = answer.json
                self.token_ok = True
                self.page_live = bool(status.get('connected'))
                self.live_transport = status.get('transport')
                live = (
                    f'; a page is connected ({self.live_transport})'
                    if self.page_live
                    else '; no page is connected'
                )
                return Check(key, LABELS[key], OK, f'GET /status answered{live}')
            if answer.error_code == 'unauthorized':
                return Check(
                    key, LABELS[key], PROBLEM, 'the server refused the token (401)', TOKEN_ADVICE
                )
            return Check(
                key,
                LABELS[key],
                PROBLEM,
                answer.describe(),
                html_advice(answer) if answer.content_type == 'text/html' else 'see the detail',
            )

        return await self._probe(key, probe)

    def _not_probed(self, key: str, page_ok: bool = False) -> Check | None:
        """A SKIPPED row when ``key`` cannot be probed now, else None."""
        if not self.token:
            return Check(key, LABELS[key], SKIPPED, 'needs the token')
        if not self.token_ok:
            return Check(key, LABELS[key], SKIPPED, 'the token was not accepted')
        if self.page_live and not page_ok:
            return Check(key, LABELS[key], SKIPPED, 'a page is connected now')
        return None

    def _query(self) -> dict[str, str]:
        query = {'client': self.client}
        if self.session:
            query['session'] = self.session
        return query

    async def event_stream(self, method: str) -> Check:
        key = f'sse-{method.lower()}'
        skipped = self._not_probed(key)
        if skipped is not None:
            return skipped

        async def attempt() -> Check:
            started = time.perf_counter()
            async with self.http.request(
                method,
                self.url + '/events',
                params=self._query(),
                headers={**self._auth(), 'Accept': 'text/event-stream'},
                timeout=aiohttp.ClientTimeout(total=None),
            ) as response:
                if response.content_type != 'text/event-stream':
                    answer = Answer(
                        response.status,
                        response.content_type,
                        await response.read(),
                        str(response.url),
                        time.perf_counter() - started,
                    )
                    return self._refused(key, answer)
                hello = await self._first_event(response)
                if hello is None:
                    return Check(
                        key,
                        LABELS[key],
                        PROBLEM,
                        'buffered: the first event came only when the stream ended',
                        BUFFERING_ADVICE[key],
                    )
                self._learn(hello)
                return Check(
                    key,
                    LABELS[key],
                    OK,
                    f'first event after {(time.perf_counter() - started) * 1000:.0f} ms',
                )

        async def probe() -> Check:
            try:
                return await asyncio.wait_for(attempt(), self.deadline)
            except asyncio.TimeoutError:
                return Check(
                    key,
                    LABELS[key],
                    PROBLEM,
                    f'buffered: no event within {self.deadline:g} s (something on the '
                    'path holds the stream)',
                    BUFFERING_ADVICE[key],
                )

        return await self._probe(key, probe)

    async def _first_event(self, response: aiohttp.ClientResponse) -> dict[str, Any] | None:
        """The data of the hello event, or None if it came only with the end of the stream."""
        buffer = b''
        while b'\n\n' not in buffer:
            chunk = await response.content.readany()
            if not chunk:
                return None
            buffer += chunk
        block = buffer.split(b'\n\n', 1)[0]
        if response.content.at_eof():
            return None
        for line in block.split(b'\n'):
            if line.startswith(b'data:'):
                try:
                    data = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError:
                    return {}
                return data if isinstance(data, dict) else {}
        return {}

    def _learn(self, hello: dict[str, Any]) -> None:
        self.session = hello.get('session') or self.session
        if isinstance(hello.get('max_body'), int):
            self.max_body = hello['max_body']

    def _refused(self, key: str, answer: Answer) -> Check:
        if answer.error_code in ('not_found', 'method_not_allowed'):
            return Check(key, LABELS[key], ABSENT, 'not offered by this server')
        if answer.error_code == 'client_conflict':
            self.page_live = True
            return Check(key, LABELS[key], SKIPPED, 'a page is connected now')
        advice = html_advice(answer) if answer.content_type == 'text/html' else 'see the detail'
        return Check(key, LABELS[key], PROBLEM, answer.describe(), advice)

    async def long_poll(self) -> Check:
        key = 'poll'
        skipped = self._not_probed(key)
        if skipped is not None:
            return skipped

        async def probe() -> Check:
            if self.session is None:
                first = await self._request('GET', '/poll', params=self._query())
                if not (first.status == 200 and first.from_server):
                    return self._refused(key, first)
                self._learn(first.json)
            held = await self._request(
                'GET', '/poll', params={**self._query(), 'hold': f'{self.hold:g}'}
            )
            if not (held.status == 200 and held.from_server):
                check = self._refused(key, held)
                if check.status == PROBLEM:
                    check.advice = POLL_ADVICE
                return check
            server_hold = held.json.get('hold')
            detail = f'a poll held up to {self.hold:g} s was answered after {held.seconds:.1f} s'
            if isinstance(server_hold, (int, float)):
                detail += f'; the server holds polls up to {server_hold:g} s'
            return Check(key, LABELS[key], OK, detail)

        return await self._probe(key, probe)

    async def body_limit(self) -> Check:
        key = 'body'
        skipped = self._not_probed(key, page_ok=True)
        if skipped is not None:
            return skipped
        if self.post_refused:
            return Check(
                key,
                LABELS[key],
                INFO,
                'not used: the path refuses POST, so the page '
                'sends its messages in GET URLs of at most max_url characters',
            )

        async def probe() -> Check:
            accepted, refusal = 0, None
            for size in BODY_SIZES:
                refusal = await self._post_body(size)
                if refusal is not None:
                    break
                accepted = size
            detail = size_text(accepted) if accepted else 'none of the sizes tried'
            detail += f'; {refusal}' if refusal else ' (the most tried)'
            limit = self.max_body
            if limit is None:
                return Check(key, LABELS[key], OK, detail)
            detail += f"; the server's max_body is {size_text(limit)}"
            if refusal is None or "server's max_body" in refusal or limit <= accepted:
                return Check(key, LABELS[key], OK, detail)
            at_limit = await self._post_body(limit)
            if at_limit is None or "server's max_body" in at_limit:
                return Check(key, LABELS[key], OK, detail)
            return Check(
                key,
                LABELS[key],
                PROBLEM,
                f'{detail}, but a body of that size is refused on the path',
                "the page sends batches up to the server's max_body: raise the path's "
                'limit above it (nginx: client_max_body_size), or start the server '
                f'with max_body={accepted or BODY_SIZES[0]}',
            )

        return await self._probe(key, probe)

    async def _post_body(self, size: int) -> str | None:
        """None when a POST /messages body of ``size`` bytes reaches the server, else why not.

        The body is a valid message batch padded with spaces, naming a session that does not
        exist: the server reads all of it, then refuses the session (410) or the client (409),
        which changes nothing on the server.
        """
        head = orjson.dumps(
            {'client': self.client, 'session': 'doctor-body-probe', 'ack': 0, 'messages': []}
        )[:-1]
        body = head + b' ' * (size - len(head) - 1) + b'}'
        try:
            answer = await self._request(
                'POST', '/messages', data=body, headers={'Content-Type': 'application/json'}
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return f'{size_text(size)}: the connection failed ({type(exc).__name__})'
        if answer.from_server and answer.status < 500 and answer.status != 413:
            return None
        who = "by the server's max_body" if answer.error_code == 'too_large' else 'on the path'
        return f'{size_text(size)} refused {who} ({answer.describe()[:90]})'

    async def post_passes(self) -> Check:
        """Whether a POST reaches the server; where the path refuses it (Colab's proxy answers
        500 "Not allowed"), whether the GET form of /messages does."""
        key = 'post'
        skipped = self._not_probed(key, page_ok=True)
        if skipped is not None:
            return skipped

        async def probe() -> Check:
            batch = {
                'client': self.client,
                'session': 'doctor-post-probe',
                'ack': 0,
                'messages': [],
            }
            answer = await self._request(
                'POST',
                '/messages',
                data=orjson.dumps(batch),
                headers={'Content-Type': 'application/json'},
            )
            if answer.from_server:
                return Check(key, LABELS[key], OK, 'yes: the server answered a POST')
            self.post_refused = True
            said = answer.body[:60].decode('utf-8', 'replace').strip()
            detail = f'no: HTTP {answer.status}' + (f' {said!r}' if said else ' (empty)')
            query = {
                'client': self.client,
                'session': 'doctor-post-probe',
                'ack': '0',
                'messages': 'W10',
            }  # [] in base64url
            by_get = await self._request('GET', '/messages', params=query)
            if by_get.from_server:
                detail += '; the GET form of /messages reaches the server'
            elif by_get.status == 500 and not by_get.body:
                detail += (
                    '; the GET form of /messages gets an empty 500 (the status hidden, see below)'
                )
            else:
                detail += f'; the GET form of /messages gets {by_get.describe()}'
            return Check(
                key,
                LABELS[key],
                INFO,
                detail,
                'POST refused: the page sends its messages and upload chunks in GET '
                'requests instead (split to fit max_url) and does not use the POST '
                "event stream; send_method='get' spares it the first refusal",
            )

        return await self._probe(key, probe)

    async def statuses(self) -> Check:
        """Whether the server's error statuses reach the client (Colab's proxy turns a 4xx
        into an empty 500)."""
        key = 'statuses'

        async def probe() -> Check:
            answer = await self._request('GET', '/status', auth=False)
            if answer.from_server and answer.status == 401:
                return Check(key, LABELS[key], OK, "yes: the server's 401 arrived as it is")
            if answer.from_server and answer.status == 200:
                self.cached = True
                return Check(
                    key,
                    LABELS[key],
                    PROBLEM,
                    'a request without the token got a 200 answer of the server: a '
                    'cache on the way answers from what it stored',
                    "a cache holds the server's answers although each says "
                    'Cache-Control: no-store, so the page gets stale messages or none: '
                    'make the cache pass every request to this server (Varnish: '
                    'return (pass) in vcl_recv; nginx: no proxy_cache here; a CDN: a '
                    'bypass rule for this path)',
                )
            if answer.status == 500 and not answer.body:
                return Check(
                    key,
                    LABELS[key],
                    INFO,
                    "hidden: the server's 401 arrived as an empty 500",
                    'the path hides error statuses: after such an answer the page asks '
                    'for /status, and tells a lost server, a session that is over and '
                    'another page connected apart (in client.lastError)',
                )
            return Check(
                key, LABELS[key], INFO, f'a request without the token got {answer.describe()}'
            )

        return await self._probe(key, probe)

    async def interstitial(self) -> Check:
        key = 'interstitial'

        async def probe() -> Check:
            page = await self._request('GET', '/page', headers=BROWSER_HEADERS, browser=True)
            if page.status == 200 and PAGE_MARKER in page.body:
                return Check(key, LABELS[key], OK, 'none: the page URL shows the page')
            if page.content_type == 'text/html':
                return Check(
                    key,
                    LABELS[key],
                    INFO,
                    f'a browser opening the page URL first sees {html_title(page.body)} '
                    f'({page.final_url})',
                    html_advice(page),
                )
            return Check(
                key,
                LABELS[key],
                PROBLEM,
                f'GET /page: {page.describe()}',
                'something else answers at this URL: check it is server.url',
            )

        return await self._probe(key, probe)

    async def websocket(self) -> Check:
        key = 'websocket'
        skipped = self._not_probed(key, page_ok=True)
        if skipped is not None:
            return skipped

        async def attempt() -> aiohttp.WSMsgType:
            async with self.http.ws_connect(
                self.url + '/probe/websocket', headers=self._auth()
            ) as ws:
                return (await ws.receive()).type

        try:
            kind = await asyncio.wait_for(attempt(), self.timeout)
            if kind == aiohttp.WSMsgType.TEXT:
                return Check(key, LABELS[key], INFO, 'yes (jchannel_http does not need it)')
            return Check(key, LABELS[key], INFO, f'the upgrade passed, then {kind.name}')
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 426:
                return Check(
                    key,
                    LABELS[key],
                    INFO,
                    'no: the Upgrade header was dropped on the '
                    'way (jchannel_http does not need it)',
                )
            if exc.status in (404, 405):
                return Check(key, LABELS[key], ABSENT, 'not offered by this server')
            return Check(
                key,
                LABELS[key],
                INFO,
                f'no: HTTP {exc.status} to the upgrade (jchannel_http does not need it)',
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Check(key, LABELS[key], INFO, f'no: {type(exc).__name__}: {exc}')

    async def latency(self) -> Check:
        key = 'latency'

        async def probe() -> Check:
            path, auth = ('/status', True) if self.token_ok else ('/favicon.ico', False)
            times = []
            for _ in range(5):
                answer = await self._request('GET', path, auth=auth)
                if not 200 <= answer.status < 300:
                    # a refusal's time says nothing about the path: do not rate it
                    return Check(
                        key, LABELS[key], INFO, f'not measured: GET {path} got {answer.describe()}'
                    )
                times.append(answer.seconds * 1000)
            return Check(
                key,
                LABELS[key],
                OK,
                f'median {statistics.median(times):.0f} ms, max {max(times):.0f} ms '
                f'over {len(times)} requests (GET {path})',
            )

        return await self._probe(key, probe)


def environment_proxy(url: str) -> tuple[str, str] | None:
    """(variable, proxy) of the environment's proxy for ``url``, as aiohttp picks it, or None
    (none set, or ``NO_PROXY`` names the host)."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    return (f'{parts.scheme.upper()}_PROXY', proxy) if proxy else None


def size_text(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f'{size // MiB} MiB'
    if size >= MiB:
        return f'{size / MiB:.1f} MiB'
    return f'{size // KiB} KiB'


ROWS = (
    ('reachable', 'reachable'),
    ('token', 'token accepted'),
    ('sse-get', 'GET event stream unbuffered'),
    ('sse-post', 'POST event stream unbuffered'),
    ('poll', 'long-poll works'),
    ('body', 'largest request body accepted'),
    ('post', 'POST passes'),
    ('statuses', 'error statuses pass'),
    ('interstitial', 'interstitial or login page'),
    ('websocket', 'WebSocket upgrade passes'),
    ('latency', 'round-trip latency'),
)
LABELS = dict(ROWS)

BUFFERING_ADVICE = {
    'sse-get': (
        'a proxy holds GET event streams. nginx: proxy_buffering off for this location '
        '(or stop ignoring X-Accel-Buffering); jupyter-server-proxy: 4.4 or later; '
        'cloudflared quick tunnels always do this. Nothing to change if a transport '
        'below works.'
    ),
    'sse-post': (
        'a proxy holds POST event streams too. nginx: proxy_buffering off for this '
        'location. Nothing to change if the long-poll works.'
    ),
}
TOKEN_ADVICE = (
    'give the token of the running server: the address the kernel printed when '
    'it started (server.page_url, which carries it) or server.token; a restarted '
    'kernel has a new token unless start(token=...) fixes one'
)
POLL_ADVICE = (
    "a held request did not come back: raise the proxy's read timeout above the "
    "server's poll_hold (25 s; nginx: proxy_read_timeout 60s), or lower poll_hold"
)


def diagnose(
    url: str, token: str | None = None, headers: dict[str, str] | None = None, **options: Any
) -> Report:
    """Run the doctor against ``url`` and return its report (blocking)."""
    return asyncio.run(Doctor(url, token, headers, **options).run())
