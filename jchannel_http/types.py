"""jupyter-jchannel's ``jchannel.types``, for code that imports its names from there.

``from jchannel_http.types import StateError, FrontendError, MetaGenerator`` gives the same
classes as ``from jchannel_http import ...``.
"""

from __future__ import annotations

from .errors import FrontendError, JChannelError, StateError
from .kernel.meta_generator import MetaGenerator

__all__ = ['FrontendError', 'JChannelError', 'MetaGenerator', 'StateError']
