"""Headless Chromium (Debian's, driven by Playwright) as fixtures, for the conftest of each
folder whose tests use a browser (importing this module imports Playwright)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from support.chromium import LAUNCH, new_page


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**LAUNCH)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> Page:
    """A tab whose uncaught errors are collected in ``page.errors``."""
    return await new_page(browser)
