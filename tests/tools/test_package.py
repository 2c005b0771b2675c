"""The public surface: exported names, the log line outside a notebook, the bundled client."""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import jchannel_http
from jchannel_http.http.bundle import bundle, client_dir


def test_all_is_sorted_and_complete() -> None:
    assert jchannel_http.__all__ == sorted(jchannel_http.__all__)
    public = {
        name
        for name, value in vars(jchannel_http).items()
        if not name.startswith('_')
        and callable(value)
        and getattr(value, '__module__', '').startswith('jchannel_http')
    }
    assert public <= set(jchannel_http.__all__)
    for name in jchannel_http.__all__:
        assert hasattr(jchannel_http, name)


def test_start_outside_a_notebook_prints_one_line_with_the_page_url() -> None:
    code = (
        'import asyncio, jchannel_http\n'
        'async def main():\n'
        '    server = await jchannel_http.start(token="tok-123")\n'
        '    print("URL", server.page_url, flush=True)\n'
        '    await server.stop()\n'
        'asyncio.run(main())\n'
    )
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=60, check=True
    )
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


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist, built from this checkout as a release would be."""
    out = tmp_path_factory.mktemp('dist')
    done = subprocess.run(
        [sys.executable, '-m', 'build', '--outdir', str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return next(out.glob('jchannel_http-*.whl')), next(out.glob('jchannel_http-*.tar.gz'))


def test_the_wheel_ships_every_module_the_client_and_the_license(dists: tuple[Path, Path]) -> None:
    names = set(zipfile.ZipFile(dists[0]).namelist())
    package = ROOT / 'jchannel_http'
    for module in package.rglob('*.py'):
        if '__pycache__' not in module.parts:
            assert f'jchannel_http/{module.relative_to(package).as_posix()}' in names, module
    for module in client_dir().glob('*.js'):
        assert f'jchannel_http/client_js/{module.name}' in names
    assert 'jchannel_http/client_js/package.json' in names
    assert 'jchannel_http/py.typed' in names
    info = f'jchannel_http-{jchannel_http.__version__}.dist-info'
    assert f'{info}/licenses/LICENSE' in names
    assert not [name for name in names if name.startswith('tests/')]
    metadata = email.parser.Parser().parsestr(
        zipfile.ZipFile(dists[0]).read(f'{info}/METADATA').decode()
    )
    assert metadata['Name'] == 'jchannel-http'
    assert metadata['Version'] == jchannel_http.__version__
    assert metadata['License-Expression'] == 'MIT'
    assert metadata['License-File'] == 'LICENSE'
    assert 'Typing :: Typed' in metadata.get_all('Classifier', [])
    entry_points = zipfile.ZipFile(dists[0]).read(f'{info}/entry_points.txt').decode()
    assert 'jchannel-http = jchannel_http.__main__:main' in entry_points


def test_the_sdist_carries_what_its_tests_and_docs_need(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[1]) as archive:
        names = {name.split('/', 1)[1] for name in archive.getnames() if '/' in name}
    for needed in (
        'LICENSE',
        'CHANGELOG.md',
        'README.md',
        'mkdocs.yml',
        'pyproject.toml',
        'setup.py',
        'jchannel_http/py.typed',
        'tests/conftest.py',
        'tests/support/fake_page.py',
        'tests/run_all.sh',
        'docs/protocol.md',
        'tunnel_guides/colab.md',
    ):
        assert needed in names, needed
    for folder in (
        'tests/js',
        'tests/fixtures',
        'tests/compat',
        'benchmarks',
        'client_js',
        'examples',
    ):
        tracked = [
            path
            for path in (ROOT / folder).rglob('*')
            if path.is_file() and '__pycache__' not in path.parts
        ]
        assert tracked, folder
        for path in tracked:
            assert path.relative_to(ROOT).as_posix() in names, path
    assert not [name for name in names if '__pycache__' in name or name.endswith('.pyc')]


def test_version_is_printed_by_the_module_and_the_script() -> None:
    done = subprocess.run(
        [sys.executable, '-m', 'jchannel_http', '--version'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == f'jchannel_http {jchannel_http.__version__}'
    from jchannel_http.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(['--version'])
    assert exit_info.value.code == 0
