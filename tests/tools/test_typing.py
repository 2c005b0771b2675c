"""The public API's types, as user code sees them: ``typing_usage.py`` passes ``mypy --strict``
(each ``assert_type`` in it names an exact type, so a method typed ``Any`` again fails), and a
misuse that precise types catch is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USAGE = Path(__file__).with_name('typing_usage.py')

MISUSE = """
import jchannel_http

async def misuse(channel: jchannel_http.Channel) -> None:
    total = await channel.call('add', 1, 2) + 1
    stream = await channel.pipe(b'not a stream')
    await channel.echo(1).join()
    jchannel_http.Server(tunnel=3)
"""


def mypy(tmp_path: Path, source: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` over ``source`` alone, with the project's settings for the package (its
    third-party modules without types), the package read from this checkout."""
    target = tmp_path / source.name
    if source != target:
        shutil.copy(source, target)
    return subprocess.run(
        [
            sys.executable,
            '-m',
            'mypy',
            '--strict',
            '--config-file',
            str(ROOT / 'pyproject.toml'),
            '--cache-dir',
            str(tmp_path / 'cache'),
            '--no-error-summary',
            str(target),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_public_api_types_pass_mypy_strict(tmp_path: Path) -> None:
    done = mypy(tmp_path, USAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'assert_type' in USAGE.read_text()


def test_misuse_of_results_is_reported(tmp_path: Path) -> None:
    misuse = tmp_path / 'misuse.py'
    misuse.write_text(MISUSE)
    done = mypy(tmp_path, misuse)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ': error:' in line]
    assert any(':5:' in line and '[operator]' in line for line in errors), errors
    assert any(':6:' in line and '[arg-type]' in line for line in errors), errors
    assert any(':7:' in line and '[attr-defined]' in line for line in errors), errors
    assert any(':8:' in line and '[arg-type]' in line for line in errors), errors
