"""Headless Chromium, and a Jupyter server with jupyter-server-proxy, for the tests of this folder."""

from support.browser_fixtures import browser, page  # noqa: F401 (fixtures)
from support.jupyter_proxy import jupyter  # noqa: F401 (a fixture)
