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
        self.parent_header: dict = {}


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


class ParentStream:
    """ipykernel 7's stream: the parent of each write is the context's, unless a thread sets one."""

    def __init__(self) -> None:
        self.parent: dict = {'msg_id': 'the cell that ran start()'}
        self.writes: list[tuple[str, str]] = []

    def set_thread_parent(self, parent: dict) -> tuple[dict]:
        token = (self.parent,)
        self.parent = parent
        return token

    def reset_thread_parent(self, token: tuple[dict]) -> None:
        (self.parent,) = token

    def write(self, text: str) -> int:
        self.writes.append((self.parent['msg_id'], text))
        return len(text)


def test_warnings_go_to_the_running_cell_not_the_one_that_started_the_task(monkeypatch) -> None:
    shell = Shell()
    stream = ParentStream()
    monkeypatch.setattr('sys.stderr', stream)
    logger = logging.getLogger('jchannel_http.test_cell_log_parent')
    logger.propagate = False
    handler = CellLog(shell)
    logger.addHandler(handler)
    try:
        shell.parent_header = {'msg_id': 'cell 3'}
        shell.events.trigger('pre_run_cell')
        shell.parent_header = {'msg_id': 'the cell that ran start()'}  # a task's own context
        logger.warning('while cell 3 runs')
        shell.events.trigger('post_run_cell')
        logger.warning('while none runs')
        shell.parent_header = {'msg_id': 'cell 4'}
        shell.events.trigger('pre_run_cell')
        assert [cell for cell, _ in stream.writes] == ['cell 3', 'cell 4']
        assert 'while cell 3 runs' in stream.writes[0][1]
        assert 'while none runs' in stream.writes[1][1]
        assert stream.parent == {'msg_id': 'the cell that ran start()'}  # put back after each
    finally:
        logger.removeHandler(handler)
