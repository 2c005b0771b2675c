"""The library's warnings, shown in the notebook.

A kernel handler runs when the page calls it, usually while no cell runs. What it writes then
(a warning with its traceback, through ``logging``'s last-resort handler) goes out with the last
cell's message id, and the frontends drop output for a cell that has finished. Under ipykernel 7
the output of a task goes with the cell that started the task (the one that ran ``start()``),
which has finished too. ``CellLog`` writes a warning at once, with the running cell's message id,
while a cell runs, and otherwise holds it and writes it at the start of the next cell the user
runs, so the notebook's author sees every failure of their handlers where they are looking.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

HELD = 50
"""Most warnings held while no cell runs; older ones are counted, not kept."""

_installed: CellLog | None = None


class CellLog(logging.Handler):
    """Writes the records of a logger to the running cell, or to the next cell that runs."""

    def __init__(self, shell: Any) -> None:
        super().__init__(logging.WARNING)
        self.shell = shell
        self.cell: object = getattr(shell, 'parent_header', None)  # the running cell's request
        self.setFormatter(logging.Formatter('%(name)s: %(levelname)s: %(message)s'))
        self.running = True  # installed by start(), in a running cell
        self.held: list[str] = []
        self.dropped = 0
        shell.events.register('pre_run_cell', self._cell_starts)
        shell.events.register('post_run_cell', self._cell_ended)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 (logging.Handler's rule: a failed record goes to handleError)
            self.handleError(record)
            return
        if self.running:
            self._write(text + '\n')
            return
        if len(self.held) >= HELD:
            self.held.pop(0)
            self.dropped += 1
        self.held.append(text)

    def _cell_starts(self, *info: object) -> None:
        self.running = True
        # Read here, in the cell's own context: under ipykernel 7 the parent is a context
        # variable, so a task started by an earlier cell still sees that cell's.
        self.cell = getattr(self.shell, 'parent_header', None)
        if not self.held:
            return
        held, self.held = self.held, []
        dropped, self.dropped = self.dropped, 0
        more = f' ({dropped} earlier ones were not kept)' if dropped else ''
        self._write(f'jchannel_http: while no cell ran{more}:\n' + '\n'.join(held) + '\n')

    def _write(self, text: str) -> None:
        """Write to the running cell's output: ipykernel's stream takes the parent per write."""
        stream = sys.stderr
        parent = self.cell
        set_parent = getattr(stream, 'set_thread_parent', None)
        reset_parent = getattr(stream, 'reset_thread_parent', None)
        if not parent or set_parent is None or reset_parent is None:
            stream.write(text)
            return
        token = set_parent(parent)
        try:
            stream.write(text)
        finally:
            reset_parent(token)

    def _cell_ended(self, *info: object) -> None:
        self.running = False


def install(logger: logging.Logger) -> None:
    """Show ``logger``'s warnings in the notebook, unless logging was set up to show them."""
    global _installed
    if _installed is not None or logger.hasHandlers():
        return
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, 'events'):
        return
    _installed = CellLog(shell)
    logger.addHandler(_installed)
