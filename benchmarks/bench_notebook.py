"""Speed where users are: a real JupyterLab tab, jchannel_http next to jupyter-jchannel 0.3.9.

Run it as ``python benchmarks/bench_notebook.py --predecessor-client DIR``; it prints a table
and writes ``benchmarks/results_notebook.md`` and ``benchmarks/results_notebook.png``. It is
not a test.

- The kernel runs in a Python 3.12 venv of its own (jupyter-jchannel 0.3.9 needs >= 3.12),
  made on the first run (``--venv``, ``--python``): ``jupyter-jchannel==0.3.9``, ``ipykernel``,
  ``ipywidgets`` (jupyter-jchannel imports it) and this checkout (``pip install -e``),
  registered as a kernel spec in the Jupyter server's temporary data folder. JupyterLab runs
  from this environment (``tests/support/notebook_driver.py``), in headless Chromium.
- jupyter-jchannel's page client (the npm package ``jupyter-jchannel-client`` 0.3.9, which its
  kernel side loads from unpkg) is served by the Jupyter server from ``--predecessor-client``,
  a folder holding that package's ``src/`` (a checkout of its 0.3.9 tag, or its tarball
  unpacked); without it, the tag's tarball is downloaded from GitHub once into the cache.
- One notebook, one kernel, one tab: a cell starts three servers, each with a channel open in
  the tab (``jchannel_http`` with its defaults, the same with ``transport_thread=False``, and
  ``jupyter-jchannel``), and a bare aiohttp app (the floors). The cells of each run then take
  every figure: floors first, then each library in turn
  (``benchmarks/bench_notebook_kernel.py`` says how each is timed).
- Uploads and downloads are also measured from a plain ``chromium --headless=new`` page (no
  automation protocol: Playwright copies request bodies, see ``shared/notes/benchmarking.md``);
  the stream targets are judged against those floors.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / 'tests'))

import nbformat  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from support.chromium import CHROMIUM, CHROMIUM_ARGS, LAUNCH  # noqa: E402
from support.nginx import Nginx  # noqa: E402
from support.notebook_driver import JupyterServer, NotebookTab  # noqa: E402
from support.ports import free_port  # noqa: E402

MiB = 1 << 20
KERNEL_NAME = 'jchannel-bench-py312'
PREDECESSOR = 'jupyter-jchannel 0.3.9'
OURS = 'jchannel_http'
SINGLE_LOOP = 'jchannel_http, transport_thread=False'
LANES = [OURS, SINGLE_LOOP, PREDECESSOR]
CLIENT_TARBALL = (
    'https://codeload.github.com/hashiprobr/jupyter-jchannel-client/tar.gz/refs/tags/0.3.9'
)
CACHE = Path.home() / '.cache' / 'jchannel_http-bench'
RATE_TARGET = 8.0  # calls/s, at least this times the bare WebSocket message rate
STREAM_TARGET = 0.9  # MB/s, at least this times bare fetch
LATENCY_TARGET = 1.1  # p50, at most this times the bare HTTP floor
CPU_TARGET = 0.5  # kernel CPU per call, at most this times the predecessor's


# -- the environment -------------------------------------------------------------------------


def find_python() -> str:
    for name in ('python3.12', 'python3.13'):
        found = shutil.which(name)
        if found:
            return found
    for version in sorted((Path.home() / '.pyenv' / 'versions').glob('3.1[23].*')):
        candidate = version / 'bin' / 'python'
        if candidate.exists():
            return str(candidate)
    raise SystemExit('no Python 3.12 or 3.13 found: pass --python PATH (jupyter-jchannel needs it)')


def ensure_venv(venv: Path, python: str) -> Path:
    """The venv's interpreter, with both libraries and ipykernel installed."""
    interpreter = venv / 'bin' / 'python'
    if not interpreter.exists():
        print(f'making a venv at {venv} with {python}', flush=True)
        subprocess.run([python, '-m', 'venv', str(venv)], check=True)
    probe = subprocess.run(
        [
            str(interpreter),
            '-c',
            'import jchannel, ipykernel, ipywidgets, jchannel_http;'
            'from importlib import metadata;'
            "print(metadata.version('jupyter-jchannel'), jchannel_http.__file__)",
        ],
        capture_output=True,
        text=True,
    )
    expected = str(REPO / 'jchannel_http' / '__init__.py')
    if probe.returncode != 0 or probe.stdout.split() != ['0.3.9', expected]:
        print(f'installing the libraries into {venv}', flush=True)
        subprocess.run(
            [
                str(interpreter),
                '-m',
                'pip',
                'install',
                '-q',
                'jupyter-jchannel==0.3.9',
                'ipykernel',
                'ipywidgets',
                '-e',
                str(REPO),
            ],
            check=True,
        )
    return interpreter


def predecessor_client(folder: Path | None) -> Path:
    """The ``src/`` folder of jupyter-jchannel-client 0.3.9."""
    if folder is None:
        folder = CACHE / 'jupyter-jchannel-client-0.3.9'
        if not (folder / 'src' / 'index.js').exists():
            print(f'downloading {CLIENT_TARBALL}', flush=True)
            with urllib.request.urlopen(CLIENT_TARBALL, timeout=60) as response:
                data = response.read()
            folder.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive.getmembers():
                    parts = Path(member.name).parts
                    if len(parts) == 3 and parts[1] == 'src' and parts[2].endswith('.js'):
                        member.name = '/'.join(parts[1:])
                        archive.extract(member, folder, filter='data')
    source = folder / 'src'
    if not (source / 'index.js').exists():
        raise SystemExit(f'{source} has no index.js: pass a jupyter-jchannel-client 0.3.9 folder')
    return source


def serve_client(source: Path, target: Path) -> None:
    """Copy the client's modules where the Jupyter server serves them (``/files/jcc/``), with
    the extension its bundler used to add to each relative import."""
    target.mkdir(parents=True, exist_ok=True)
    for module in source.glob('*.js'):
        text = re.sub(r"from '(\./[\w-]+)'", r"from '\1.js'", module.read_text())
        (target / module.name).write_text(text)


def register_kernel(jupyter: JupyterServer, interpreter: Path) -> None:
    folder = jupyter.home / 'data' / 'kernels' / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        'argv': [str(interpreter), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'Python 3.12 (benchmark)',
        'language': 'python',
    }
    (folder / 'kernel.json').write_text(json.dumps(spec))


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata['kernelspec'] = {
        'name': KERNEL_NAME,
        'display_name': 'Python 3.12 (benchmark)',
        'language': 'python',
    }
    nbformat.write(notebook, path)


# -- the intermediaries ----------------------------------------------------------------------

# nginx as tests/paths/test_proxies.py runs it when it holds event streams: buffering on
# whatever the upstream asks, HTTP/1.0 to the upstream, 1 MiB body cap.
BUFFERING = """            proxy_buffering on;
            proxy_ignore_headers X-Accel-Buffering;
            proxy_buffer_size 64k;
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
            proxy_read_timeout 20s;"""


class Intermediaries:
    """A buffering nginx, twice: in front of a ``jchannel_http`` server of the kernel and in
    front of the bare floor app. It is started on an event loop of its own thread, since the
    notebook is driven synchronously.

    The Colab stand-in (``tests/support/colab_proxy.py``) is not among them: from a JupyterLab
    tab it is a cross-origin address, and a channel opened through it did not answer its
    ``open`` within two minutes (its refusal of a POST is a 500 without CORS headers, which a
    cross-origin page cannot read: the likely cause, not yet confirmed);
    ``benchmarks/bench_get.py`` measures that path from a page of its own origin."""

    def __init__(self, floor_port: int) -> None:
        self.floor_port = floor_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stoppers: list[Any] = []

    def run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    def start(self) -> list[dict[str, Any]]:
        self.thread.start()
        lane_port = free_port()
        nginx = self.run(Nginx(lane_port, ['1m'], BUFFERING, http_version='1.0').start())
        nginx_floor = self.run(
            Nginx(self.floor_port, ['1m'], BUFFERING, http_version='1.0').start()
        )
        self.stoppers = [nginx, nginx_floor]
        return [
            {
                'name': 'nginx, buffering',
                'port': lane_port,
                'url': nginx.url('1m'),
                'floor_url': nginx_floor.url('1m'),
                'post': True,
            },
        ]

    def stop(self) -> None:
        for stopper in self.stoppers:
            self.run(stopper.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- running the notebook --------------------------------------------------------------------


def plain_chromium(url: str, profile: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CHROMIUM, '--headless=new', *CHROMIUM_ARGS, f'--user-data-dir={profile}', url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    interpreter = ensure_venv(args.venv, args.python or find_python())
    client = predecessor_client(args.predecessor_client)
    jupyter = JupyterServer('lab')
    register_kernel(jupyter, interpreter)
    serve_client(client, jupyter.root / 'jcc')
    shutil.copyfile(HERE / 'bench_notebook_kernel.py', jupyter.root / 'bench_notebook_kernel.py')
    source = jupyter.home / 'bench.ipynb'
    write_notebook(source)
    size = args.size * MiB
    results: dict[str, Any] = {
        'runs': [],
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
    }

    def read(tag: str) -> Any:
        return json.loads((jupyter.root / f'{tag}.json').read_text())

    floor_port = free_port()
    intermediaries = Intermediaries(floor_port) if args.paths else None
    spec = intermediaries.start() if intermediaries is not None else []
    jupyter.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**LAUNCH)
            results['chromium'] = browser.version
            tab = NotebookTab(jupyter, browser, 'bench.ipynb', source).open()
            try:
                print('starting the servers in the kernel', flush=True)
                tab.run(
                    'import sys, bench_notebook_kernel as bench\n'
                    f'floor = await bench.Floor({size}).start({floor_port})\n'
                    "lanes = await bench.start_lanes('/files/jcc/index.js')\n"
                    f'paths = await bench.start_paths({spec!r})\n'
                    'await bench.connect_push(lanes, floor)\n'
                    "bench.emit('setup', {'floor': floor.url, 'python': sys.version.split()[0]})",
                    timeout=300,
                )
                results['setup'] = read('setup')
                load = [os.getloadavg()[0]]
                for run in range(1, args.runs + 1):
                    started = time.monotonic()
                    tab.run(
                        f'figures = dict(warmup={args.warmup}, sequential={args.sequential}, '
                        f'concurrent={args.concurrent}, size={size})\n'
                        f"bench.emit('run{run}', {{**await bench.measure_run(lanes, floor, "
                        "**figures), 'paths': await bench.measure_paths(paths, **figures)})",
                        timeout=3600,
                    )
                    results['runs'].append(read(f'run{run}'))
                    print(f'run {run} took {time.monotonic() - started:.0f} s', flush=True)
                    load.append(os.getloadavg()[0])
                results['load'] = load
                print('bare fetch from a plain Chromium page', flush=True)
                tab.run('floor.expect_report()')
                index = tab.start_cell("bench.emit('plain', await floor.wait_report(900))")
                profile = tempfile.mkdtemp(prefix='jchannel-bench-plain-')
                plain = plain_chromium(
                    f'{results["setup"]["floor"]}/plain?size={size}&runs={args.runs}', profile
                )
                try:
                    tab.wait_cell(index, timeout=960)
                finally:
                    os.killpg(plain.pid, signal.SIGTERM)
                    plain.wait(timeout=30)
                    shutil.rmtree(profile, ignore_errors=True)
                results['plain'] = read('plain')
                if args.profile:
                    print('profiling the kernel side of calls', flush=True)
                    tab.run(
                        "bench.emit('profile', await bench.profile_lanes("
                        f'lanes, {args.concurrent}))',
                        timeout=1800,
                    )
                    results['profile'] = read('profile')
                tab.run(
                    'for lane in [*lanes.values(), *(p.lane for p in paths.values())]:\n'
                    '    await lane.stop()\n'
                    'await floor.stop()',
                    timeout=120,
                )
            finally:
                tab.close()
                browser.close()
    finally:
        jupyter.stop()
        if intermediaries is not None:
            intermediaries.stop()
    return results


# -- the figures -----------------------------------------------------------------------------


def percentile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency(times: list[float]) -> tuple[float, float]:
    return percentile(times, 0.5), percentile(times, 0.99)


class Figures:
    """Per-run values of every figure, by lane."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.runs = results['runs']
        plain = results['plain']
        if 'error' in plain:
            raise SystemExit(f'the plain Chromium page failed: {plain["error"]}')
        self.plain = {
            'download': [got / 1e6 / (ms / 1000) for got, ms in plain['download']],
            'upload': [got / 1e6 / (ms / 1000) for got, ms in plain['upload']],
        }

    def lane(self, name: str, figure: str) -> list[Any]:
        return [run['lanes'][name][figure] for run in self.runs]

    def floor(self, figure: str) -> list[Any]:
        return [run['floor'][figure] for run in self.runs]

    def value(self, name: str, figure: str) -> list[float]:
        """One number per run: p50 for latency, calls/s, MB/s, or CPU microseconds."""
        kind, _, what = figure.partition(':')
        values = self.lane(name, kind)
        if kind.endswith('latency'):
            return [latency(times)[0 if what != 'p99' else 1] for times in values]
        if kind.endswith('rate'):
            return [v['cpu_us'] if what == 'cpu' else v['rate'] for v in values]
        return values


def spread(values: list[float], digits: int = 0) -> str:
    text = ', '.join(f'{v:,.{digits}f}' for v in values)
    return f'{statistics.median(values):,.{digits}f} ({text})'


def judge(ratios: list[float], ok: Callable[[float], bool]) -> str:
    hits = [ok(r) for r in ratios]
    return 'met' if all(hits) else '**missed**' if not any(hits) else 'met in some runs'


def rows(f: Figures) -> list[list[str]]:
    """The table: one line per figure, each library's runs, the floor, ratios and target."""
    table = []
    push = [latency(t) for t in f.floor('push_post')]
    rtt = [latency(t) for t in f.floor('fetch_rtt')]
    ws = [latency(t) for t in f.floor('ws_rtt')]
    ws_rate = f.floor('ws_rate')
    for direction, kind, floor_name, floor_p in [
        ('kernel -> page', 'k2p_latency', 'event push + POST', push),
        ('page -> kernel', 'p2k_latency', 'fetch round trip', rtt),
    ]:
        for which, index in (('p50', 0), ('p99', 1)):
            ours = f.value(OURS, f'{kind}:{which}')
            floor = [p[index] for p in floor_p]
            ratios = [o / fl for o, fl in zip(ours, floor, strict=True)]
            pred = f.value(PREDECESSOR, f'{kind}:{which}')
            target = judge(ratios, lambda r: r <= LATENCY_TARGET) if which == 'p50' else '-'
            table.append(
                [
                    f'{direction} latency {which}, ms',
                    spread(ours, 2),
                    spread(f.value(SINGLE_LOOP, f'{kind}:{which}'), 2),
                    spread(pred, 2),
                    f'{floor_name}: {spread(floor, 2)}; WebSocket: '
                    f'{spread([w[index] for w in ws], 2)}',
                    ', '.join(f'{r:.2f}x' for r in ratios),
                    ', '.join(f'{o / p:.2f}x' for o, p in zip(ours, pred, strict=True)),
                    f'<= {LATENCY_TARGET}x floor: {target}' if which == 'p50' else '-',
                ]
            )
    for direction, kind in [('kernel -> page', 'k2p_rate'), ('page -> kernel', 'p2k_rate')]:
        ours = f.value(OURS, kind)
        pred = f.value(PREDECESSOR, kind)
        ratios = [o / w for o, w in zip(ours, ws_rate, strict=True)]
        table.append(
            [
                f'{direction}, {f.results["concurrent"]:,} concurrent calls, calls/s',
                spread(ours),
                spread(f.value(SINGLE_LOOP, kind)),
                spread(pred),
                f'WebSocket messages/s: {spread(ws_rate)}',
                ', '.join(f'{r:.2f}x' for r in ratios),
                ', '.join(f'{o / p:.2f}x' for o, p in zip(ours, pred, strict=True)),
                f'>= {RATE_TARGET:g}x floor: {judge(ratios, lambda r: r >= RATE_TARGET)}',
            ]
        )
    for direction, kind, bare, plain in [
        ('kernel -> page', 'k2p_stream', 'download', 'download'),
        ('page -> kernel', 'p2k_stream', 'upload', 'upload'),
    ]:
        ours = f.value(OURS, kind)
        pred = f.value(PREDECESSOR, kind)
        floor = f.plain[plain]
        same_tab = f.floor(bare)
        ratios = [o / fl for o, fl in zip(ours, floor, strict=True)]
        tab_ratios = ', '.join(f'{o / t:.2f}x' for o, t in zip(ours, same_tab, strict=True))
        table.append(
            [
                f'{direction} stream, {f.results["size"]} MiB, MB/s',
                spread(ours),
                spread(f.value(SINGLE_LOOP, kind)),
                spread(pred),
                f'bare fetch {bare}, plain Chromium: {spread(floor)}; same tab: {spread(same_tab)}',
                ', '.join(f'{r:.2f}x' for r in ratios) + f' (same tab: {tab_ratios})',
                ', '.join(f'{o / p:.2f}x' for o, p in zip(ours, pred, strict=True)),
                f'>= {STREAM_TARGET}x plain floor: {judge(ratios, lambda r: r >= STREAM_TARGET)}',
            ]
        )
    for direction, kind in [('kernel -> page', 'k2p_rate:cpu'), ('page -> kernel', 'p2k_rate:cpu')]:
        ours = f.value(OURS, kind)
        pred = f.value(PREDECESSOR, kind)
        ratios = [o / p for o, p in zip(ours, pred, strict=True)]
        table.append(
            [
                f'{direction} kernel CPU per call, us',
                spread(ours, 1),
                spread(f.value(SINGLE_LOOP, kind), 1),
                spread(pred, 1),
                '-',
                '-',
                ', '.join(f'{r:.2f}x' for r in ratios),
                f'<= {CPU_TARGET}x predecessor: {judge(ratios, lambda r: r <= CPU_TARGET)}',
            ]
        )
    return table


def path_rows(f: Figures) -> list[list[str]]:
    """Through each intermediary: the library's figures next to bare floors through the same
    kind of intermediary (a fetch round trip, a download, an upload in 1 MiB POSTs)."""
    if not f.runs or not f.runs[0].get('paths'):
        return []
    table = []
    ws_rate = f.floor('ws_rate')
    for name in f.runs[0]['paths']:
        runs = [run['paths'][name] for run in f.runs]
        transport = runs[0]['transport']
        rtt = [latency(r['fetch_rtt'])[0] for r in runs]
        method = 'fetch round trip' + ('' if 'upload' in runs[0] else ' (GET)')
        for direction, kind in [('kernel -> page', 'k2p'), ('page -> kernel', 'p2k')]:
            ours = [latency(r[f'{kind}_latency'])[0] for r in runs]
            ratios = [o / fl for o, fl in zip(ours, rtt, strict=True)]
            table.append(
                [
                    name,
                    f'{direction} latency p50, ms ({transport})',
                    spread(ours, 2),
                    f'{method}: {spread(rtt, 2)}',
                    ', '.join(f'{r:.2f}x' for r in ratios),
                    f'<= {LATENCY_TARGET}x: {judge(ratios, lambda r: r <= LATENCY_TARGET)}',
                ]
            )
        for direction, kind in [('kernel -> page', 'k2p'), ('page -> kernel', 'p2k')]:
            ours = [r[f'{kind}_rate']['rate'] for r in runs]
            ratios = [o / w for o, w in zip(ours, ws_rate, strict=True)]
            table.append(
                [
                    name,
                    f'{direction}, {f.results["concurrent"]:,} concurrent calls, calls/s',
                    spread(ours),
                    f'direct WebSocket messages/s: {spread(ws_rate)}',
                    ', '.join(f'{r:.2f}x' for r in ratios),
                    f'>= {RATE_TARGET:g}x: {judge(ratios, lambda r: r >= RATE_TARGET)}',
                ]
            )
            cpu = [r[f'{kind}_rate']['cpu_us'] for r in runs]
            table.append(
                [name, f'{direction} kernel CPU per call, us', spread(cpu, 1), '-', '-', '-']
            )
        for direction, kind, bare in [
            ('kernel -> page', 'k2p', 'download'),
            ('page -> kernel', 'p2k', 'upload'),
        ]:
            ours = [r[f'{kind}_stream'] for r in runs]
            if bare in runs[0]:
                floor = [r[bare] for r in runs]
                ratios = [o / fl for o, fl in zip(ours, floor, strict=True)]
                floor_text = f'bare fetch {bare}: {spread(floor)}'
                ratio_text = ', '.join(f'{r:.2f}x' for r in ratios)
                met = judge(ratios, lambda r: r >= STREAM_TARGET)
            else:
                floor_text, ratio_text, met = 'none: the path refuses POST', '-', '-'
            table.append(
                [
                    name,
                    f'{direction} stream, {f.results["size"]} MiB, MB/s',
                    spread(ours),
                    floor_text,
                    ratio_text,
                    f'>= {STREAM_TARGET}x: {met}',
                ]
            )
    return table


PATH_HEADER = ['path', 'figure', f'{OURS} (median; runs)', 'floor, same path', 'ratio', 'target']


def path_table(table: list[list[str]]) -> str:
    if not table:
        return ''
    lines = ['| ' + ' | '.join(PATH_HEADER) + ' |', '|' + '---|' * len(PATH_HEADER)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table]
    return f"""## Through intermediaries

`{OURS}` with its defaults behind nginx holding event streams (buffering on whatever the
upstream asks, HTTP/1.0 upstream, 1 MiB body cap: the page settles on long-poll), in the same
tab and the same runs; each floor goes from the tab to the bare app through an nginx of the same
configuration (the upload floor in POSTs of 1 MiB, the cap). The transport the page settled on
is in brackets.

{chr(10).join(lines)}
"""


HEADER = [
    'figure',
    f'{OURS} (median; runs)',
    'transport_thread=False',
    PREDECESSOR,
    'floor, same run',
    f'{OURS} / floor',
    f'{OURS} / predecessor',
    'target',
]


def markdown_table(table: list[list[str]]) -> str:
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table]
    return '\n'.join(lines)


def profile_section(results: dict[str, Any]) -> str:
    if 'profile' not in results:
        return ''
    parts = [
        '## Kernel profile of calls\n',
        '`cProfile` in the kernel around one batch of concurrent calls each way, after the runs. '
        'From Python 3.12 on it sees every thread of the process, so own times include the '
        "waits for the GIL between the kernel's loop and the transport thread, and "
        "`time.sleep` is ipykernel's own threads idling.\n",
    ]
    for lane, texts in results['profile'].items():
        for direction, text in texts.items():
            parts.append(
                f'{results["concurrent"]:,} concurrent calls {direction}, `{lane}`:\n\n'
                f'```text\n{trim(text)}\n```\n'
            )
    return '\n'.join(parts)


def trim(text: str) -> str:
    """pstats' output without its blank and preamble lines."""
    keep = []
    for line in text.splitlines():
        if not line.strip() or 'Ordered by' in line or 'List reduced' in line:
            continue
        keep.append(line.rstrip())
    return '\n'.join(keep)


def markdown(f: Figures, table: list[list[str]], info: dict[str, str]) -> str:
    r = f.results
    return f"""# Notebook benchmark: JupyterLab, {OURS} and {PREDECESSOR}

Written by `python benchmarks/bench_notebook.py`; rerun it to refresh this file and
`results_notebook.png`.

- date: {info['date']}; machine: nproc {os.cpu_count()}, loopback, shared with other work
  (1-minute load average {info['load']})
- JupyterLab {info['jupyterlab']} in headless Chromium {r['chromium']} (Playwright); the kernel:
  Python {r['setup']['python']}, ipykernel, both libraries in the same kernel and the same tab
- {r['runs_count']} runs in one process; each run: {r['sequential']:,} sequential calls per
  latency figure after {r['warmup']} warm-up calls, {r['concurrent']:,} concurrent calls per
  throughput figure after a batch of {r['concurrent'] // 10:,}, one {r['size']} MiB stream
  each way after an 8 MiB one
- {OURS} {info['library']}

{markdown_table(table)}

Each cell: the median of the runs, then every run. Ratios are taken within one run; a target is
"met" when every run meets it.

How each figure is timed:

- kernel -> page latency: in the kernel, around `await channel.call('echo', i)`; its floor, in
  the same tab: an event pushed on a bare `text/event-stream` read with `fetch`, answered by a
  bare `fetch` POST;
- page -> kernel latency: in the page, `performance.now()` around
  `await channel.call('echo', i)` (a kernel handler method); its floor: a bare `fetch` POST
  round trip. The bare WebSocket round trip is shown for comparison;
- throughput: `asyncio.gather` of {r['concurrent']:,} `channel.call` in the kernel, and
  `Promise.all` of as many in the page; the floor: {r['concurrent']:,} messages sent at once
  on a bare WebSocket and echoed by a bare aiohttp handler (messages/s);
- kernel CPU per call: `time.process_time()` of the kernel process (every thread) around the
  same batch of concurrent calls, divided by the number of calls (page -> kernel: the page asks
  the kernel for `process_time()` before and after its batch);
- streams: kernel -> page `channel.call_with_stream` of 1 MiB chunks into a page method that
  reads to the end, page -> kernel `channel.callWithStream` of 1 MiB chunks into a kernel
  method that reads to the end, both timed in the page; the floors: a bare `fetch` download and
  upload of the same bytes, from a plain `chromium --headless=new` page (no automation
  protocol) and from the notebook's tab (driven by Playwright, like the libraries' figures).
- `jupyter-jchannel`'s page client comes from `jupyter-jchannel-client` 0.3.9's modules served
  by the Jupyter server; its bootstrap runs in a plain HTML output rather than its
  `ipywidgets.Output` (the widget extension is not part of this JupyterLab). Its kernel side is
  unchanged.

![notebook benchmark](results_notebook.png)

{path_table(path_rows(f))}
{profile_section(r)}"""


def chart(f: Figures, path: Path, info: dict[str, str]) -> None:
    import matplotlib  # only when a chart is written

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    colors = {OURS: '#2f6fb0', SINGLE_LOOP: '#7fa7d1', PREDECESSOR: '#d08a2c', 'floor': '#9a9a9a'}
    figure, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    directions = ['kernel -> page', 'page -> kernel']

    def short(value: float) -> str:
        return f'{value:,.0f}' if value >= 20 else f'{value:.2g}'

    def bars(ax: Any, title: str, values: dict[str, list[float]], unit: str, log: bool) -> None:
        width = 0.8 / len(values)
        for offset, (name, pair) in enumerate(values.items()):
            xs = [i + (offset - (len(values) - 1) / 2) * width for i in range(2)]
            drawn = ax.bar(xs, pair, width, label=name, color=colors.get(name, colors['floor']))
            ax.bar_label(drawn, fmt=short, fontsize=7)
        ax.set_xticks(range(2), directions)
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale('log')

    def median(name: str, figure_key: str) -> float:
        return statistics.median(f.value(name, figure_key))

    lanes = {name: name for name in LANES}
    bars(
        axes[0][0],
        'sequential latency, p50 (lower is better)',
        {
            **{
                label: [median(n, 'k2p_latency:p50'), median(n, 'p2k_latency:p50')]
                for label, n in lanes.items()
            },
            'floor: bare HTTP': [
                statistics.median(latency(t)[0] for t in f.floor('push_post')),
                statistics.median(latency(t)[0] for t in f.floor('fetch_rtt')),
            ],
        },
        'ms',
        False,
    )
    ws_rate = statistics.median(f.floor('ws_rate'))
    bars(
        axes[0][1],
        f'{f.results["concurrent"]:,} concurrent calls (higher is better; log)',
        {
            **{label: [median(n, 'k2p_rate'), median(n, 'p2k_rate')] for label, n in lanes.items()},
            'floor: bare WebSocket msgs/s': [ws_rate, ws_rate],
        },
        'calls/s',
        True,
    )
    axes[0][1].axhline(RATE_TARGET * ws_rate, color='#c0392b', linestyle='--', linewidth=1)
    axes[0][1].text(
        -0.45, RATE_TARGET * ws_rate * 1.08, f'target {RATE_TARGET:g}x', color='#c0392b', fontsize=8
    )
    bars(
        axes[1][0],
        f'{f.results["size"]} MiB stream (higher is better)',
        {
            **{
                label: [median(n, 'k2p_stream'), median(n, 'p2k_stream')]
                for label, n in lanes.items()
            },
            'floor: bare fetch, plain Chromium': [
                statistics.median(f.plain['download']),
                statistics.median(f.plain['upload']),
            ],
        },
        'MB/s',
        False,
    )
    bars(
        axes[1][1],
        'kernel CPU per call (lower is better)',
        {
            label: [median(n, 'k2p_rate:cpu'), median(n, 'p2k_rate:cpu')]
            for label, n in lanes.items()
        },
        'microseconds',
        False,
    )
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc='lower center', ncol=3, fontsize=9, frameon=False)
    figure.suptitle(
        f'JupyterLab in headless Chromium, {info["date"]}, nproc {os.cpu_count()}, '
        f'median of {f.results["runs_count"]} runs',
        fontsize=12,
    )
    figure.tight_layout(rect=(0, 0.07, 1, 0.96))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def library_version() -> str:
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ''
    return f'commit {commit}'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--python', help='the interpreter of the kernel venv (3.12 or later)')
    parser.add_argument(
        '--venv',
        type=Path,
        default=CACHE / 'venv-py312',
        help=f'the kernel venv, made when missing (default {CACHE / "venv-py312"})',
    )
    parser.add_argument(
        '--predecessor-client',
        type=Path,
        help='a folder holding jupyter-jchannel-client 0.3.9 (its src/); default: download it',
    )
    parser.add_argument('--runs', type=int, default=2, help='runs of every figure (default 2)')
    parser.add_argument(
        '--sequential', type=int, default=500, help='timed calls per latency figure (default 500)'
    )
    parser.add_argument('--warmup', type=int, default=50, help='untimed calls first (default 50)')
    parser.add_argument(
        '--concurrent', type=int, default=10_000, help='calls in flight at once (default 10000)'
    )
    parser.add_argument('--size', type=int, default=64, help='MiB per stream (default 64)')
    parser.add_argument(
        '--no-profile', dest='profile', action='store_false', help='skip the kernel profile'
    )
    parser.add_argument(
        '--no-paths',
        dest='paths',
        action='store_false',
        help='skip the figures through a buffering nginx',
    )
    parser.add_argument('--no-write', action='store_true', help='print only')
    parser.add_argument(
        '--from-json', type=Path, help='only write the report from a results file of a past run'
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.sequential < 1 or args.concurrent < 10 or args.size < 8:
        parser.error('--runs, --sequential positive; --concurrent >= 10; --size >= 8')
    return args


def main(args: argparse.Namespace) -> int:
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
    else:
        results = measure(args)
        results.update(
            runs_count=args.runs,
            sequential=args.sequential,
            warmup=args.warmup,
            concurrent=args.concurrent,
            size=args.size,
        )
        raw = Path(tempfile.gettempdir()) / 'jchannel_http-bench-notebook.json'
        raw.write_text(json.dumps(results))
        print(f'raw figures in {raw}')
    from importlib import metadata

    load = results.get('load', [])
    info = {
        'date': results['date'],
        'load': ' -> '.join(f'{v:.1f}' for v in load),
        'jupyterlab': metadata.version('jupyterlab'),
        'library': library_version(),
        'host': platform.node(),
    }
    figures = Figures(results)
    table = rows(figures)
    print(markdown_table(table))
    print(path_table(path_rows(figures)))
    if 'profile' in results:
        print(profile_section(results))
    if not args.no_write:
        (HERE / 'results_notebook.md').write_text(markdown(figures, table, info))
        chart(figures, HERE / 'results_notebook.png', info)
        print(f'wrote {HERE / "results_notebook.md"} and {HERE / "results_notebook.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main(parse_args()))
