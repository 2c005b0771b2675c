"""The GET form of what a page sends: frames and upload chunks encoded in a URL's query.

Some paths between the page and the kernel refuse POST (Colab's proxy answers ``500 Not
allowed``). There the page sends the same batches and chunks in ``GET`` requests instead, each
URL at most ``max_url`` characters long:

- a batch of frames is the UTF-8 JSON array of its frames in unpadded base64url: in one request as
  ``messages=<text>``, or, when it does not fit, in parts
  ``batch=<id>&offset=<o>&total=<t>&part=<text>``
  (``offset`` and ``total`` count base64url characters), sent one after the other;
- an upload chunk is its bytes in base64url, as ``data=<text>``.

``PartAssembly`` keeps the parts of the one batch a page is sending; the batch is processed, as a
POSTed one would be, once its last part arrived. Sequence numbers make every frame count once
however often a part is sent again.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from ..errors import ProtocolError

BASE64URL = re.compile(r'[A-Za-z0-9_-]*')
BATCH_ID = re.compile(r'[A-Za-z0-9_-]{1,64}')
COUNT = re.compile(r'[0-9]{1,16}')


def decode_base64url(text: str, name: str) -> bytes:
    """The bytes of unpadded base64url ``text`` (query parameter ``name``), or ProtocolError."""
    if not BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ProtocolError(f'{name} must be unpadded base64url')
    try:
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f'{name} must be unpadded base64url: {exc}') from exc


def encoded_limit(max_body: int) -> int:
    """The most base64url characters of a batch whose JSON is at most ``max_body`` bytes."""
    return (max_body * 4 + 2) // 3


def _count(value: str | None, name: str) -> int:
    if value is None or not COUNT.fullmatch(value):
        raise ProtocolError(f'{name} must be a non-negative integer of at most 16 digits')
    return int(value)


class PartAssembly:
    """The parts of the batch the current page is sending over GET, one batch at a time."""

    def __init__(self, max_body: int) -> None:
        self.limit = encoded_limit(max_body)
        self.batch: str | None = None
        self.owner: tuple[str, str] | None = None
        self.total = 0
        self.text: list[str] = []
        self.have = 0
        self._done: tuple[str, tuple[str, str], int, str] | None = None
        """The batch taken last (id, owner, total, text): its last part sent again (the answer
        was lost) gets it whole again, rather than ``have`` 0 and the batch from its start."""

    def add(self, owner: tuple[str, str], query: Mapping[str, str]) -> str | None:
        """Take one part (``batch``, ``offset``, ``total``, ``part`` of ``query``) of the batch of
        ``owner`` (client id, session id). Return the whole base64url text once complete, else
        None; ``have`` then says how many characters are held (the page goes on from there)."""
        get = query.get
        batch = get('batch')
        if batch is None or not BATCH_ID.fullmatch(batch):
            raise ProtocolError('batch must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -')
        offset = _count(get('offset'), 'offset')
        total = _count(get('total'), 'total')
        part = get('part', '')
        if not BASE64URL.fullmatch(part):
            raise ProtocolError('part must be base64url')
        if total > self.limit:
            raise ProtocolError(f'a batch of {total} characters is larger than max_body allows')
        if offset + len(part) > total:
            raise ProtocolError('part goes beyond total')
        done = self._done
        if done is not None and done[:3] == (batch, owner, total) and offset + len(part) == total:
            self.have = total
            return done[3]
        if (batch, owner) != (self.batch, self.owner) or total != self.total:
            self._reset()
            if offset != 0:
                return None  # a part of a batch no longer held: the page starts it again
            self.batch, self.owner, self.total = batch, owner, total
            self.text, self.have = [], 0
        if offset <= self.have < offset + len(part):
            fresh = part[self.have - offset :]
            self.text.append(fresh)
            self.have += len(fresh)
        if self.have < self.total:
            return None
        text = ''.join(self.text)
        self._done = (batch, owner, total, text)
        self._reset()
        self.have = len(text)
        return text

    def _reset(self) -> None:
        self.batch, self.owner, self.total, self.text, self.have = None, None, 0, [], 0
