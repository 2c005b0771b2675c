"""Headless Chromium: Debian's binary and the flags every launch uses."""

from __future__ import annotations

CHROMIUM = '/usr/bin/chromium'
"""Debian's chromium, which tests/run_all.sh installs."""
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
"""Without the networking flags Chromium keeps trying hosts it cannot reach."""
