"""The library's warnings, shown in the notebook.

A kernel handler runs when the page calls it, usually while no cell runs. What it writes then
(a warning with its traceback, through ``logging``'s last-resort handler) goes out with the last
cell's message id, and the frontends drop output for a cell that has finished. ``CellLog`` writes
a warning at once while a cell runs, and otherwise holds it and writes it at the start of the
next cell the user runs, so the notebook's author sees every failure of their handlers.
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
            sys.stderr.write(text + '\n')
            return
        if len(self.held) >= HELD:
            self.held.pop(0)
            self.dropped += 1
        self.held.append(text)

    def _cell_starts(self, *info: object) -> None:
        self.running = True
        if not self.held:
            return
        held, self.held = self.held, []
        dropped, self.dropped = self.dropped, 0
        more = f' ({dropped} earlier ones were not kept)' if dropped else ''
        sys.stderr.write(f'jchannel_http: while no cell ran{more}:\n' + '\n'.join(held) + '\n')

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
