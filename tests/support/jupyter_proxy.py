"""A real Jupyter server with the real jupyter-server-proxy under a hub-like prefix, as a
fixture (``jupyter``: its origin) for the tests of paths through it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator

import aiohttp
import pytest

from support.ports import free_port

JUPYTER_TOKEN = 'jupyter-token-0123456789'
PREFIX = '/user/alice/'


@pytest.fixture
async def jupyter() -> AsyncIterator[str]:
    """A real Jupyter server with jupyter-server-proxy under PREFIX, token auth; its origin."""
    port = free_port()
    root = tempfile.TemporaryDirectory(prefix='jchannel-jupyter-')
    others = (
        'jupyterlab',
        'nbclassic',
        'notebook',
        'jupyter_lsp',
        'jupyter_server_terminals',
        'notebook_shim',
    )  # not needed: off, for a faster start
    only_the_proxy = repr({'jupyter_server_proxy': True, **dict.fromkeys(others, False)})
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': root.name, 'JUPYTER_DATA_DIR': root.name}
    process = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'jupyter_server',
            '--no-browser',
            '--allow-root',
            '--ip=127.0.0.1',
            f'--port={port}',
            f'--IdentityProvider.token={JUPYTER_TOKEN}',
            f'--ServerApp.base_url={PREFIX}',
            f'--ServerApp.root_dir={root.name}',
            f'--ServerApp.jpserver_extensions={only_the_proxy}',
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    origin = f'http://127.0.0.1:{port}'
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                if process.poll() is not None:
                    raise RuntimeError(f'jupyter exited: {process.communicate()[1].decode()}')
                try:
                    async with http.get(
                        f'{origin}{PREFIX}api/status', params={'token': JUPYTER_TOKEN}
                    ) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError('jupyter did not answer within 30 s')
        yield origin
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        root.cleanup()
