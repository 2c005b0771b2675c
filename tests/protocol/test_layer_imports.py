"""The pure layer stays pure: importing its tests (and the conftest above them) imports no
Playwright, so ``pytest tests/protocol`` runs without a browser stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent

IMPORT_AND_LIST = """
import importlib, json, sys
tests, folder, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [tests, folder]
import conftest
modules = sorted(p.stem for p in __import__('pathlib').Path(folder).glob('test_*.py'))
for name in [*modules, *extra]:
    importlib.import_module(name)
print(json.dumps({'modules': modules,
                  'playwright': sorted(m for m in sys.modules if m.split('.')[0] == 'playwright')}))
"""


def imported(folder: str, *extra: str) -> dict:
    """Imports every test module of ``folder`` (and ``extra`` modules) in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, '-c', IMPORT_AND_LIST, str(TESTS), str(TESTS / folder), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_protocol_tests_imports_no_playwright() -> None:
    found = imported('protocol')
    assert 'test_frames' in found['modules'] and 'test_session' in found['modules']
    assert found['playwright'] == [], f'the pure tests import {found["playwright"]}'


def test_the_check_sees_playwright_when_a_browser_fixture_is_imported() -> None:
    found = imported('protocol', 'support.browser_fixtures')
    assert 'playwright' in found['playwright']
