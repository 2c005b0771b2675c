"""Serving under the server URL's path prefix, for proxies that keep it.

A tunnel's URL (``https://host/some/prefix/``) is known only once its launcher has returned, after
the application was built, so the prefix is read at each request rather than fixed with the routes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    # The TypedDict that AbstractResource.get_info() returns; aiohttp names it only privately.
    from aiohttp.web_urldispatcher import _InfoDict


@functools.lru_cache(maxsize=8)
def path_of(url: str) -> str:
    """The path prefix of ``url`` without its trailing slash ('' for none)."""
    return URL(url).path.rstrip('/')


def strip_prefix(path: str, prefix: str) -> str:
    """``path`` without ``prefix`` when it carries it."""
    if prefix and path.startswith(prefix + '/'):
        return path[len(prefix) :]
    return path


class UnderPrefix(web.AbstractResource):
    """Every route again under the prefix that ``prefix()`` gives now. Registered last, it is
    tried after every route, so a path without the prefix never reaches it."""

    def __init__(self, router: web.UrlDispatcher, prefix: Callable[[], str]) -> None:
        super().__init__()
        self._router = router
        self._prefix = prefix

    @property
    def canonical(self) -> str:
        return '/'

    async def resolve(self, request: web.Request) -> tuple[Any, set[str]]:
        prefix = self._prefix()
        if not prefix or not request.path.startswith(prefix + '/'):
            return None, set()
        found = await self._router.resolve(request.clone(rel_url=request.path[len(prefix) :]))
        if found.http_exception is not None:
            return None, set(getattr(found.http_exception, 'allowed_methods', ()))
        return found, set()

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError('the routes under the prefix have no URLs of their own')

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError('the server is not mounted under another application')

    def get_info(self) -> _InfoDict:
        return {'prefix': self._prefix()}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Any]:
        return iter(())
