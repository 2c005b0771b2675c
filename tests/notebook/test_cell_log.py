"""Warnings reach the running cell at once, or the next cell that runs (with a fake shell)."""

from __future__ import annotations

import logging

from jchannel_http.notebook.cell_log import HELD, CellLog


class Events:
    def __init__(self) -> None:
        self.callbacks: dict[str, list] = {}

    def register(self, name: str, callback) -> None:
        self.callbacks.setdefault(name, []).append(callback)

    def trigger(self, name: str) -> None:
        for callback in self.callbacks.get(name, []):
            callback(None)


class Shell:
    def __init__(self) -> None:
        self.events = Events()


def test_warnings_wait_for_the_next_cell_while_none_runs(capsys) -> None:
    shell = Shell()
    logger = logging.getLogger('jchannel_http.test_cell_log')
    logger.propagate = False
    handler = CellLog(shell)
    logger.addHandler(handler)
    try:
        logger.warning('during the cell')
        assert capsys.readouterr().err == 'jchannel_http.test_cell_log: WARNING: during the cell\n'
        shell.events.trigger('post_run_cell')
        for index in range(HELD + 3):
            logger.warning('idle %d', index)
        logger.info('not shown')
        assert capsys.readouterr().err == ''
        shell.events.trigger('pre_run_cell')
        shown = capsys.readouterr().err
        assert shown.startswith('jchannel_http: while no cell ran (3 earlier ones were not kept):')
        assert 'idle 2\n' not in shown and 'idle 3\n' in shown and f'idle {HELD + 2}\n' in shown
        assert shown.count('WARNING') == HELD
        shell.events.trigger('pre_run_cell')
        assert capsys.readouterr().err == ''  # shown once
    finally:
        logger.removeHandler(handler)
