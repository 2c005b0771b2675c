"""The public surface: exported names, the log line outside a notebook, the bundled client."""

from __future__ import annotations

import re
import subprocess
import sys

import jchannel_http
from jchannel_http.http.bundle import bundle, client_dir


def test_all_is_sorted_and_complete() -> None:
    assert jchannel_http.__all__ == sorted(jchannel_http.__all__)
    public = {name for name, value in vars(jchannel_http).items()
              if not name.startswith('_') and callable(value)
              and getattr(value, '__module__', '').startswith('jchannel_http')}
    assert public <= set(jchannel_http.__all__)
    for name in jchannel_http.__all__:
        assert hasattr(jchannel_http, name)


def test_start_outside_a_notebook_prints_one_line_with_the_page_url() -> None:
    code = ('import asyncio, jchannel_http\n'
            'async def main():\n'
            '    server = await jchannel_http.start(token="tok-123")\n'
            '    print("URL", server.page_url, flush=True)\n'
            '    await server.stop()\n'
            'asyncio.run(main())\n')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60, check=True)
    found = re.search(r'URL (\S+)', done.stdout)
    assert found is not None, done.stdout
    page_url = found.group(1)
    assert page_url.endswith('/page?token=tok-123')
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and page_url in lines[0]


def test_bundle_is_one_classic_script_in_dependency_order() -> None:
    script = bundle(client_dir())
    assert not re.search(r'^\s*(import|export)\b', script, re.MULTILINE)
    assert script.startswith('(function () {') and script.rstrip().endswith('})();')
    order = re.findall(r'^// ---- (\S+)$', script, re.MULTILINE)
    assert order[-1] == 'index.js'
    assert order.index('session.js') < order.index('client.js')


def test_the_wheel_ships_the_client(tmp_path) -> None:
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent.parent
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '-q', '-w', str(tmp_path), str(root)], check=True, timeout=300,
                   capture_output=True)
    wheel = next(tmp_path.glob('jchannel_http-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    for module in client_dir().glob('*.js'):
        assert f'jchannel_http/client_js/{module.name}' in names
    assert 'jchannel_http/py.typed' in names  # type checkers read the package's annotations
