"""Loading the client into the notebook tab that runs the kernel's cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .frames import dumps

if TYPE_CHECKING:
    from .server import Server


def in_notebook() -> bool:
    """Whether this code runs in an IPython kernel attached to a frontend."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, 'kernel', None) is not None


def bootstrap_js(server: 'Server') -> str:
    """JavaScript that loads ``<url>/client.js`` once and starts the client for the server."""
    url = dumps(server.url).decode()
    options = dumps({'token': server.token}).decode()
    return (
        '(async () => {\n'
        '  const url = ' + url + ';\n'
        '  if (!globalThis.jchannel) {\n'
        '    await new Promise((resolve, reject) => {\n'
        "      const script = document.createElement('script');\n"
        "      script.src = url + '/client.js';\n"
        '      script.onload = resolve;\n'
        "      script.onerror = () => reject(new Error('jchannel_http: cannot load ' + script.src));\n"
        '      document.head.appendChild(script);\n'
        '    });\n'
        '  }\n'
        '  await globalThis.jchannel.start(url, ' + options + ');\n'
        '})().catch((error) => console.error(error));\n'
    )


def show_client(server: 'Server') -> None:
    """Display the bootstrap in the running cell's output."""
    from IPython.display import Javascript, display

    display(Javascript(bootstrap_js(server)))
