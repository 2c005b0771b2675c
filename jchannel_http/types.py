"""jupyter-jchannel's ``jchannel.types``, for code that imports its names from there, and the
type aliases of the public API.

``from jchannel_http.types import StateError, FrontendError, MetaGenerator`` gives the same
classes as ``from jchannel_http import ...``. For annotations:

- ``JsonValue``: a value as it arrives from the page (what ``JSON.parse`` can give);
- ``CallResult``: what a task of ``Channel.call``/``open``/``call_with_stream`` gives, a
  ``JsonValue`` or, when the page method returned a stream, a ``MetaGenerator``;
- ``ByteStream``: what ``call_with_stream`` and ``pipe`` send (an async iterable of bytes-like
  chunks: an async generator, a MetaGenerator, a ``Source``);
- ``ProgressCallback``: what receives ``Progress`` snapshots.
"""

from __future__ import annotations

from .errors import FrontendError, JChannelError, StateError
from .kernel.channel import CallResult
from .kernel.meta_generator import MetaGenerator
from .kernel.progress import ByteChunk, ByteStream, ProgressCallback
from .values import JsonValue

__all__ = [
    'ByteChunk',
    'ByteStream',
    'CallResult',
    'FrontendError',
    'JChannelError',
    'JsonValue',
    'MetaGenerator',
    'ProgressCallback',
    'StateError',
]
