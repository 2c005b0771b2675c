"""Headless Chromium for the tests of this folder."""

from support.browser_fixtures import browser, page  # noqa: F401 (fixtures)
