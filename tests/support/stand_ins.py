"""Putting the stand-ins of tests/fixtures in place: the fake cloudflared and google.colab.

Real cloudflared, ngrok and Colab cannot be reached from CI, so the tunnel tests run their code
paths against local emulations (see tests/fixtures/bin/cloudflared and
tests/fixtures/google/colab/output.py with tests/support/colab_proxy.py for what each emulates).
"""

from __future__ import annotations

import os
import ssl
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from support.colab_proxy import ColabProxy

FIXTURES = Path(__file__).resolve().parent.parent / 'fixtures'


@dataclass
class FakeCloudflared:
    """The fake cloudflared is first on PATH, with an HTTPS certificate this process trusts."""

    ca_file: Path
    monkeypatch: pytest.MonkeyPatch

    def set(self, name: str, value: str) -> None:
        """Set one of the fake's knobs (FAKE_CLOUDFLARED_...)."""
        self.monkeypatch.setenv(f'FAKE_CLOUDFLARED_{name}', value)

    def session(self, **options: Any) -> aiohttp.ClientSession:
        """A client session that trusts the fake's certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), **options)


def process_gone(pid: int) -> bool:
    """Whether no process (not even an unreaped one) has this id."""
    return not os.path.exists(f'/proc/{pid}')


def install_fake_cloudflared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflared:
    """Put the fake cloudflared first on PATH, with a certificate trusted by OpenSSL here."""
    ca = trustme.CA()
    cert = ca.issue_cert('127.0.0.1')
    cert.private_key_pem.write_to_path(str(tmp_path / 'key.pem'))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / 'cert.pem'))
    ca.cert_pem.write_to_path(str(tmp_path / 'ca.pem'))
    path = os.pathsep.join(
        [str(FIXTURES / 'bin'), os.path.dirname(sys.executable), os.environ.get('PATH', '')]
    )
    monkeypatch.setenv('PATH', path)  # the fake's `#!/usr/bin/env python3` is this Python
    monkeypatch.setenv('FAKE_CLOUDFLARED_CERT', str(tmp_path / 'cert.pem'))
    monkeypatch.setenv('FAKE_CLOUDFLARED_KEY', str(tmp_path / 'key.pem'))
    monkeypatch.setenv('SSL_CERT_FILE', str(tmp_path / 'ca.pem'))
    return FakeCloudflared(tmp_path / 'ca.pem', monkeypatch)


def install_fake_colab(monkeypatch: pytest.MonkeyPatch, proxy: ColabProxy) -> types.ModuleType:
    """Make the stand-in google.colab importable until the test ends, its proxyPort() answering
    the address of ``proxy`` (a started stand-in of Colab's proxy); return its ``output``."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    for name in ('google', 'google.colab', 'google.colab.output'):
        monkeypatch.setitem(sys.modules, name, None)  # what was there comes back afterwards
        del sys.modules[name]
    from google.colab import output

    output.evaluated.clear()
    output.blocked.clear()
    monkeypatch.setattr(output, 'proxy_port', proxy.proxy_port)
    return output
