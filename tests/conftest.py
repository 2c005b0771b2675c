"""What every layer of the tests shares: ``tests/`` on ``sys.path`` (so ``from support... import``
works from every folder), a real kernel server on a free loopback port and an HTTP session holding
its token. Playwright's fixtures live in the conftest of each folder that uses a browser, so the
pure layers never import it."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.kernel_server import TOKEN, http, server  # noqa: E402,F401 (fixtures)

LAYERS = ('protocol', 'kernel', 'http', 'browser', 'notebook', 'tools', 'paths', 'compat')
"""The folders of tests/, each also a marker (``-m 'not browser'``); see pyproject.toml."""


def pytest_collection_modifyitems(items: list) -> None:
    """Marks each test with the layer its folder names."""
    import pytest

    for item in items:
        parts = Path(item.path).resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
