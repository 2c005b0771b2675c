"""Shared fixtures: a real kernel server on a free loopback port, HTTP helpers, and headless
Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

import jchannel_http
from helpers import CHROMIUM, CHROMIUM_ARGS

TOKEN = 'test-token-0123456789'


@pytest.fixture
async def server() -> AsyncIterator[jchannel_http.Server]:
    server = jchannel_http.Server(token=TOKEN, heartbeat=1)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={'Authorization': f'Bearer {TOKEN}'}) as session:
        yield session


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> Page:
    """A tab whose uncaught errors are collected in ``page.errors``."""
    page = await browser.new_page()
    page.errors = []
    page.on('pageerror', lambda error: page.errors.append(error))
    return page
