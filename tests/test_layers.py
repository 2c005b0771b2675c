"""The package's layers, read from its sources: every import points down, none forms a cycle.

Each module's imports are read with ``ast`` (those inside functions and ``if TYPE_CHECKING:``
blocks too), so the rules hold for what a reader sees, not only for what runs at import time.
The order is the one docs/architecture.md draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = 'jchannel_http'
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ('bottom', ('_version', 'errors', 'values')),
    ('protocol', ('protocol',)),
    ('options', ('options',)),
    ('kernel', ('kernel',)),
    ('http', ('http',)),
    ('notebook', ('notebook',)),
    ('tunnels', ('tunnels',)),
    ('server', ('server',)),
    ('compat', ('types', 'channel')),
    ('tools', ('tools',)),
    ('public', ('', '__main__')),
]
"""Each group of modules, with the first part of their name below the package."""

RANK = {
    'bottom': 0,
    'protocol': 1,
    'options': 2,
    'kernel': 3,
    'http': 4,
    'notebook': 4,
    'tunnels': 4,
    'server': 5,
    'compat': 6,
    'tools': 6,
    'public': 7,
}
"""A module imports only from lower ranks, or from its own group. http, notebook and tunnels
share a rank and do not import one another: only the server knows them all."""

NO_IO_IN_PROTOCOL = {'asyncio', 'aiohttp', 'aiohttp_sse', 'time'}
"""What the protocol core never imports: it does no I/O and reads no clock."""


def module_name(path: Path) -> str:
    """The dotted name of the module at ``path``."""
    parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found = {module_name(path): path for path in ROOT.rglob('*.py')}
    assert len(found) > 30, f'the package sources were not found under {ROOT}'
    return found


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every module ``name`` imports (inside the package: resolved; outside: the top name),
    with the line of the import."""
    is_package = path.name == '__init__.py'
    package = name if is_package else name.rpartition('.')[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[: len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target == '__future__':
                continue
            for alias in node.names:
                submodule = f'{target}.{alias.name}'
                found.append((submodule if submodule in known else target, node.lineno))
    return found


def group_of(name: str) -> str:
    """The layer group of module ``name`` (a failure for a module no group claims)."""
    below = name[len(PACKAGE) + 1 :] if name != PACKAGE else ''
    head = below.split('.')[0]
    for group, heads in LAYERS:
        if head in heads:
            return group
    pytest.fail(f'{name} belongs to no layer: add it to LAYERS in tests/test_layers.py')


def graph() -> dict[str, list[tuple[str, int]]]:
    """The imports of every module: inside the package only, and everything for protocol/."""
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def inside(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + '.')


def test_every_import_points_down() -> None:
    wrong = []
    for name, targets in graph().items():
        group = group_of(name)
        for target, line in targets:
            if not inside(target):
                continue
            if target == PACKAGE and name != PACKAGE:
                wrong.append(f'{name}:{line} imports the package root (import the module itself)')
                continue
            other = group_of(target)
            if other != group and RANK[other] >= RANK[group]:
                wrong.append(f'{name}:{line} ({group}) imports {target} ({other})')
    assert wrong == []


def test_the_protocol_core_does_no_io() -> None:
    wrong = [
        f'{name}:{line} imports {target}'
        for name, targets in graph().items()
        if group_of(name) == 'protocol'
        for target, line in targets
        if target.split('.')[0] in NO_IO_IN_PROTOCOL
    ]
    assert wrong == []


def test_no_import_cycle() -> None:
    edges = {
        name: sorted({target for target, _ in targets if inside(target) and target != name})
        for name, targets in graph().items()
    }
    done: set[str] = set()
    path: list[str] = []
    cycles: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            cycles.append(' -> '.join([*path[path.index(name) :], name]))
            return
        if name in done:
            return
        path.append(name)
        for target in edges.get(name, []):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(edges):
        visit(name)
    assert cycles == []


def test_the_reader_sees_imports_inside_functions_and_blocks(tmp_path: Path) -> None:
    """The rules would miss what they cannot see: a lazy import counts like any other."""
    source = tmp_path / 'lazy.py'
    source.write_text(
        'def later():\n    from ..server import Server\nif False:\n    import asyncio\n'
    )
    found = imports_of(f'{PACKAGE}.protocol.lazy', source, {f'{PACKAGE}.server'})
    assert sorted(found) == [('asyncio', 4), (f'{PACKAGE}.server', 2)]
