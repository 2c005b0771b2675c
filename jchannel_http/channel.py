"""``jchannel_http.channel``: jupyter-jchannel's module name for ``Channel`` (``jchannel.channel``).

The class lives in ``kernel/channel.py``; this module keeps the predecessor's import working.
"""

from __future__ import annotations

from .kernel.channel import Channel

__all__ = ['Channel']
