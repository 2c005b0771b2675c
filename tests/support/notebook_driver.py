"""Real Jupyter frontends for the notebook tests: a Jupyter server in a subprocess, and a notebook
tab in headless Chromium whose cells the tests append, run and read.

JupyterLab 4 and Notebook 7 expose their application as ``window.jupyterapp`` (with
``expose_app_in_browser``); NbClassic exposes ``window.Jupyter``. Cells are appended through
those objects and run through the frontend's own run command, exactly as Shift+Enter would;
their outputs are read from the DOM, errors from the cell's output model.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import nbformat
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError

from support.ports import free_port

CELL_TIMEOUT = 90.0
LOAD_TIMEOUT = 90.0


class CellError(AssertionError):
    """A cell raised: the exception's name, message and traceback."""


class JupyterServer:
    """``python -m <app>`` on a free loopback port with a token, in a temporary root."""

    APPS: ClassVar[dict[str, str]] = {
        'lab': 'jupyterlab',
        'notebook7': 'notebook',
        'nbclassic': 'nbclassic',
    }

    def __init__(self, frontend: str) -> None:
        self.frontend = frontend
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self._home = tempfile.TemporaryDirectory(prefix='jchannel-jupyter-')
        self.home = Path(self._home.name)
        self.root = self.home / 'notebooks'
        self.root.mkdir()
        self.log_path = self.home / 'jupyter.log'
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def start(self) -> JupyterServer:
        env = dict(os.environ)
        for name, folder in [
            ('JUPYTER_CONFIG_DIR', 'config'),
            ('JUPYTER_DATA_DIR', 'data'),
            ('JUPYTER_RUNTIME_DIR', 'runtime'),
            ('IPYTHONDIR', 'ipython'),
            ('JUPYTERLAB_SETTINGS_DIR', 'settings'),
            ('JUPYTERLAB_WORKSPACES_DIR', 'workspaces'),
        ]:
            env[name] = str(self.home / folder)
        app = self.APPS[self.frontend]
        command = [
            sys.executable,
            '-m',
            app,
            '--no-browser',
            '--ServerApp.open_browser=False',
            '--ServerApp.ip=127.0.0.1',
            f'--ServerApp.port={self.port}',
            '--ServerApp.port_retries=0',
            f'--IdentityProvider.token={self.token}',
            f'--ServerApp.root_dir={self.root}',
            '--ServerApp.allow_root=True',
            '--LanguageServerManager.autodetect=False',
        ]
        if app == 'jupyterlab':
            command.append('--LabApp.expose_app_in_browser=True')
        elif app == 'notebook':
            command.append('--JupyterNotebookApp.expose_app_in_browser=True')
        log = self.log_path.open('w')
        self._process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f'{app} exited at start:\n{self.log_tail()}')
            try:
                self.api('GET', '/api/status')
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f'{app} did not answer within 60 s:\n{self.log_tail()}')

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._home.cleanup()

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors='replace')[-size:]

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f'{self.url}{path}', method=method, headers={'Authorization': f'token {self.token}'}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, cells: Sequence[str] = ()) -> Path:
        notebook = nbformat.v4.new_notebook()
        notebook.metadata['kernelspec'] = {
            'name': 'python3',
            'display_name': 'Python 3',
            'language': 'python',
        }
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = self.root / name
        nbformat.write(notebook, path)
        return path

    def read_notebook(self, name: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / name, as_version=4)

    def shutdown_kernels(self) -> None:
        for session in self.api('GET', '/api/sessions'):
            self.api('DELETE', f'/api/sessions/{session["id"]}')

    def notebook_url(self, name: str, workspace: str) -> str:
        if self.frontend == 'lab':
            return f'{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}'
        if self.frontend == 'notebook7':
            return f'{self.url}/notebooks/{name}?token={self.token}'
        return f'{self.url}/nbclassic/notebooks/{name}?token={self.token}'


# -- the page side: one script per frontend family ------------------------------------------------

_LAB = {
    'ready': """() => {
        const app = window.jupyterapp;
        const panel = app && app.shell.currentWidget;
        const kernel = panel && panel.sessionContext && panel.sessionContext.session
            && panel.sessionContext.session.kernel;
        return Boolean(panel && panel.content && panel.content.model && kernel
            && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
    }""",
    'append': """(code) => {
        const panel = window.jupyterapp.shell.currentWidget;
        const notebook = panel.content;
        const index = notebook.model.cells.length;
        notebook.model.sharedModel.insertCell(index, { cell_type: 'code', source: code });
        notebook.activeCellIndex = index;
        notebook.deselectAll();
        window.jchannelTestRuns = window.jchannelTestRuns || {};
        window.jchannelTestRuns[index] = 'running';
        window.jupyterapp.commands.execute('notebook:run-cell').then(
            () => { window.jchannelTestRuns[index] = 'done'; },
            (error) => { window.jchannelTestRuns[index] = 'failed: ' + error; });
        return index;
    }""",
    'done': """(index) => (window.jchannelTestRuns || {})[index] !== 'running'
        && window.jupyterapp.shell.currentWidget.content.widgets[index].model.executionCount
           !== null""",
    'outputs': """(index) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
        return cell.model.outputs.toJSON();
    }""",
    'area': """(index) => window.jupyterapp.shell.currentWidget.content.widgets[index]
        .outputArea.node""",
    'save': """async () => {
        await window.jupyterapp.commands.execute('docmanager:save');
        return !window.jupyterapp.shell.currentWidget.context.model.dirty;
    }""",
    'restart': """async () => {
        const context = window.jupyterapp.shell.currentWidget.sessionContext;
        await context.session.kernel.restart();
    }""",
    'run_all': """() => {
        window.jupyterapp.commands.execute('notebook:run-all-cells');
        return window.jupyterapp.shell.currentWidget.content.widgets.length;
    }""",
    'code': """(index) => window.jupyterapp.shell.currentWidget.content.widgets[index].model.type
        === 'code\'""",
}

_CLASSIC = {
    'ready': """() => Boolean(window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded
        && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()
        && Jupyter.notebook.kernel.info_reply && Jupyter.notebook.kernel.info_reply.status)""",
    'append': """(code) => {
        const notebook = Jupyter.notebook;
        const cell = notebook.insert_cell_at_bottom('code');
        cell.set_text(code);
        const index = notebook.find_cell_index(cell);
        notebook.select(index);
        cell.execute();
        return index;
    }""",
    'done': """(index) => {
        const number = Jupyter.notebook.get_cell(index).input_prompt_number;
        return typeof number === 'number';
    }""",
    'outputs': '(index) => Jupyter.notebook.get_cell(index).output_area.toJSON()',
    'area': '(index) => Jupyter.notebook.get_cell(index).output_area.element[0]',
    'save': """async () => {
        await Jupyter.notebook.save_notebook();
        return !Jupyter.notebook.dirty;
    }""",
    'restart': """() => new Promise((resolve) => {
        Jupyter.notebook.events.one('kernel_ready.Kernel', () => resolve());
        Jupyter.notebook.kernel.restart();
    })""",
    'run_all': """() => {
        Jupyter.notebook.execute_all_cells();
        return Jupyter.notebook.ncells();
    }""",
    'code': "(index) => Jupyter.notebook.get_cell(index).cell_type === 'code'",
}

_TEXT = """(area) => {
    const copy = area.cloneNode(true);
    for (const node of copy.querySelectorAll('script, .jp-OutputPrompt, .prompt')) node.remove();
    return copy.textContent;
}"""


class NotebookTab:
    """One notebook open in one Chromium tab of a frontend, driven cell by cell."""

    def __init__(
        self, jupyter: JupyterServer, browser: Browser, name: str, source: Path | None = None
    ) -> None:
        """A tab for notebook ``name``: a copy of ``source``, or a new empty notebook."""
        self.jupyter = jupyter
        self.name = name
        self.workspace = f'w{secrets.token_hex(6)}'
        self.scripts = _CLASSIC if jupyter.frontend == 'nbclassic' else _LAB
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        if source is None:
            jupyter.write_notebook(name)
        else:
            shutil.copyfile(source, jupyter.root / name)

    def open(self) -> NotebookTab:
        self._watch(self.page)
        self.page.goto(self.jupyter.notebook_url(self.name, self.workspace))
        self.wait_ready()
        return self

    def _watch(self, page: Page) -> None:
        page.on('request', lambda request: self.requests.append(request.url))
        page.on('dialog', lambda dialog: dialog.accept())

    def wait_ready(self) -> None:
        self.page.wait_for_function(self.scripts['ready'], timeout=LOAD_TIMEOUT * 1000)

    def close(self) -> None:
        self.context.close()

    # -- cells ------------------------------------------------------------------------------

    def start_cell(self, code: str) -> int:
        """Append a cell with ``code`` and run it; return its index at once."""
        return self.page.evaluate(self.scripts['append'], code)

    def wait_cell(self, index: int, timeout: float = CELL_TIMEOUT) -> str:
        """Wait until cell ``index`` has run; its output text, or CellError if it raised."""
        self.page.wait_for_function(self.scripts['done'], arg=index, timeout=timeout * 1000)
        outputs = self.page.evaluate(self.scripts['outputs'], index)
        for output in outputs:
            if output.get('output_type') == 'error':
                trace = '\n'.join(output.get('traceback', []))
                raise CellError(f'{output["ename"]}: {output["evalue"]}\n{trace}')
        return self.output_text(index)

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> str:
        """Run ``code`` in a new cell; its output text (scripts left out)."""
        return self.wait_cell(self.start_cell(code), timeout)

    def run_all(self, timeout: float = CELL_TIMEOUT) -> list[str]:
        """Run every cell of the notebook in order; the output text of each code cell."""
        count = self.page.evaluate(self.scripts['run_all'])
        code = [index for index in range(count) if self.page.evaluate(self.scripts['code'], index)]
        return [self.wait_cell(index, timeout) for index in code]

    def output_text(self, index: int) -> str:
        area = self.page.evaluate_handle(self.scripts['area'], index)
        return self.page.evaluate(_TEXT, area)

    def wait_text(
        self,
        selector: str,
        predicate: Callable[[str], bool],
        what: str,
        timeout: float = CELL_TIMEOUT,
    ) -> str:
        """Poll the text of the elements matching ``selector`` until ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        texts: list[str] = []
        while time.monotonic() < deadline:
            texts = self.page.eval_on_selector_all(
                selector, '(nodes) => nodes.map((node) => node.textContent)'
            )
            if any(predicate(text) for text in texts):
                return next(text for text in texts if predicate(text))
            self.page.wait_for_timeout(200)
        raise AssertionError(f'no {what} within {timeout} s; texts seen: {texts}')

    # -- the notebook as a whole ------------------------------------------------------------

    def save(self) -> nbformat.NotebookNode:
        assert self.page.evaluate(self.scripts['save']) is True
        return self.jupyter.read_notebook(self.name)

    def reload(self) -> None:
        """Reload the tab; ``requests`` then lists only the reloaded page's requests."""
        self.requests.clear()
        self.page.reload()
        self.wait_ready()

    def reopen_after_crash(self) -> None:
        """Crash the renderer of the tab, then open the notebook again in a new tab."""
        crashed = self.page
        session = self.context.new_cdp_session(crashed)
        with crashed.expect_event('crash', timeout=LOAD_TIMEOUT * 1000):
            try:
                session.send('Page.crash', timeout=1000)
            except PlaywrightError:  # a crashed page never answers
                pass
        self.page = self.context.new_page()
        self.requests.clear()
        self._watch(self.page)
        self.page.goto(self.jupyter.notebook_url(self.name, self.workspace))
        self.wait_ready()
        crashed.close()

    def restart_kernel(self) -> None:
        """Restart the kernel through the frontend; returns once the new kernel is up."""
        self.page.evaluate(self.scripts['restart'])


def saved_outputs_html(notebook: nbformat.NotebookNode) -> str:
    """Every HTML and JavaScript output of a saved notebook, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get('outputs', []):
            data = output.get('data', {})
            for mime in ('text/html', 'application/javascript'):
                value = data.get(mime, '')
                parts.append(''.join(value) if isinstance(value, list) else value)
    return '\n'.join(parts)
