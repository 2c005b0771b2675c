"""Which way hands each kernel frame to the page: the one rule, in one place.

Three ways carry kernel -> page frames: an event stream, a long-poll, and the answer to a page's
``POST /messages`` that asks for frames (``"carry": true``). Each frame travels by one way only,
the first that hands it out, and that way delivers it again if it was lost:

- a stream or a poll hands out frames in order; the page gets them again by resuming from its
  cursor, so ``streamed`` (the last frame they handed out) is all they need to remember;
- a POST's answer carries frames no stream or poll handed out; its answer may be lost, so the
  frames it carried stay ``carried`` until acknowledged, and the next POST carries them again
  while streams and polls skip them.

``Delivery`` holds that state for one session; the caller (``kernel.link``) owns the session and
the waiting. It never awaits, so what it decides cannot be overtaken.
"""

from __future__ import annotations

from typing import Any

from .session import Entry, Session


class Delivery:
    """The way each frame of one session takes: by stream (or poll), or by a POST's answer."""

    def __init__(self) -> None:
        self.carried: set[int] = set()
        """Frames carried back in answers to POSTs and not yet acknowledged: a POST sends them
        again (its answer may have been lost); streams and polls skip them."""
        self.streamed = 0
        """The last frame a stream or a poll handed out: the page gets those again by resuming,
        so a POST carries only later ones."""

    def for_stream(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a stream or a poll hands out: the ones no POST carried."""
        if not self.carried:
            return entries
        return [entry for entry in entries if entry.seq not in self.carried]

    def for_post(self, entries: list[Entry]) -> list[Entry]:
        """Of ``entries``, those a POST's answer carries: the ones it carried before (that
        answer may have been lost) and the ones no stream or poll handed out yet."""
        return [
            entry for entry in entries if entry.seq > self.streamed or entry.seq in self.carried
        ]

    def handed_out(self, entries: list[Entry], by_post: bool) -> None:
        """``entries`` are on their way to the page, in a POST's answer or else by a stream or
        a poll."""
        if not entries:
            return
        if by_post:
            self.carried.update(entry.seq for entry in entries)
        else:
            self.streamed = max(self.streamed, entries[-1].seq)

    def acknowledged(self, upto: int) -> None:
        """The page holds every frame up to ``upto``: none of them is carried again."""
        if self.carried:
            self.carried = {seq for seq in self.carried if seq > upto}

    def post_after(self, cursor: int) -> int:
        """After which frame a POST from ``cursor`` waits for new ones: frames a stream or a
        poll handed out are theirs."""
        return max(cursor, self.streamed)


def first_entries(entries: list[Entry], limit: int) -> list[Entry]:
    """The oldest entries whose frames total at most ``limit`` bytes, and at least one."""
    total = 0
    for count, entry in enumerate(entries):
        total += len(entry.data)
        if total > limit and count > 0:
            return entries[:count]
    return entries


def with_frames(head: bytes, entries: list[Entry]) -> bytes:
    """The JSON object ``head`` (encoded, ``{...}``) with ``frames`` added: the entries' frames
    as they were encoded."""
    return head[:-1] + b',"frames":[' + b','.join(e.data for e in entries) + b']}'


def hello_fields(
    session: Session, cursor: int, heartbeat: float, max_body: int, max_url: int
) -> dict[str, Any]:
    """What a page learns when it (re)connects: the session and the bounds it must respect."""
    return {
        'session': session.id,
        'cursor': cursor,
        'ack': session.inbox.cursor,
        'heartbeat': heartbeat,
        'max_body': max_body,
        'max_url': max_url,
    }
