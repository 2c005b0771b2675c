"""Serves the browser client's ES modules as one classic script, with no build step.

The modules in ``client_js/`` follow two conventions that make this a few lines: imports are
single lines ``import { a, b } from './x.js';`` and exports are ``export`` in front of a
top-level declaration, with names unique across modules. The bundle puts the modules in
dependency order, drops the import lines and the ``export`` keywords, and wraps the result in
one function scope.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

IMPORT = re.compile(r"^import\s*\{[^}]*\}\s*from\s*'\./([\w.-]+\.js)';\s*$", re.MULTILINE)
EXPORT = re.compile(r'^export\s+(?=(async\s+)?(function|class|const|let)\b)', re.MULTILINE)
ENTRY = 'index.js'


def client_dir() -> Path:
    """Where the client's modules are: package data when installed, else the checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / 'client_js'
    return installed if (installed / ENTRY).is_file() else package.parent / 'client_js'


def _order(sources: dict[str, str]) -> list[str]:
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ValueError(f'client_js: import cycle through {name}')
        if name not in sources:
            raise ValueError(f'client_js: {name} is imported but does not exist')
        visiting.add(name)
        for dependency in IMPORT.findall(sources[name]):
            visit(dependency)
        visiting.discard(name)
        ordered.append(name)

    visit(ENTRY)
    return ordered


def bundle(directory: Path) -> str:
    """The modules under ``directory``, reachable from ``index.js``, as one script."""
    sources = {path.name: path.read_text(encoding='utf-8') for path in directory.glob('*.js')}
    parts = []
    for name in _order(sources):
        body = EXPORT.sub('', IMPORT.sub('', sources[name]))
        parts.append(f'// ---- {name}\n{body.strip()}\n')
    return "(function () {\n'use strict';\n" + '\n'.join(parts) + '})();\n'


@functools.lru_cache(maxsize=1)
def client_script() -> bytes:
    """The bundled client, built once per process."""
    return bundle(client_dir()).encode('utf-8')
