"""Puts one session's finals and translations in utterance order: a pure, clock-injected core.

Workers finish out of order (several STT workers, translation after STT), but a client must
get ``final 0, translation 0, final 1, ...`` and each exactly once. The gateway tells the
orderer which finals it queued (:meth:`ResultOrderer.expect_final`), adds results as they
arrive from pub/sub, and sends whatever :meth:`ResultOrderer.release` returns, in that order.

* Order: the final of utterance *i*, then its translation if the final says one is coming
  (``translation_expected``), then utterance *i+1*.
* Bounded wait: an item that has been at the head for ``wait_seconds`` while a later item is
  already waiting behind it is skipped. If it arrives later it is still delivered (late, out of
  order) rather than lost.
  ``release(now, draining=True)`` (the client sent ``end``) also skips an item that blocks
  nothing once it is ``wait_seconds`` overdue, so a session can finish.
* Exactly once: a second final or translation for the same utterance is dropped.
* Partials: :meth:`add_partial` says whether to show one; never once the utterance's final
  (or a later utterance's final) has arrived, never a partial older than one already shown.

Items are opaque (whatever the gateway wants back: bus results, protocol messages). The clock
is a number passed in, never read here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[int, str]  # (utterance index, kind)

FINAL = "final"
TRANSLATION = "translation"
TURN_END = "turn_end"  # issue 14: the marker after a turn's last final and its translation
_KIND_ORDER = {FINAL: 0, TRANSLATION: 1, TURN_END: 2}
_REMEMBERED = 4096  # delivered/skipped keys kept to recognise a late or duplicate redelivery


@dataclass(frozen=True)
class OrdererOptions:
    wait_seconds: float = 15.0  # RESULT_WAIT_SECONDS

    def __post_init__(self) -> None:
        if self.wait_seconds <= 0:
            raise ValueError("wait_seconds must be > 0")


class ResultOrderer(Generic[T]):
    """Per-session result ordering. Not thread-safe: one per connection, used from one task."""

    def __init__(self, options: OrdererOptions | None = None) -> None:
        self.options = options or OrdererOptions()
        self._pending: set[Key] = set()  # expected or arrived, not yet delivered or skipped
        self._items: dict[Key, T] = {}  # arrived, held until they are at the head
        self._delivered: OrderedDict[Key, None] = OrderedDict()
        self._skipped: OrderedDict[Key, None] = OrderedDict()
        self._head: Key | None = None
        self._head_since = 0.0
        self._max_final = -1  # highest utterance index whose final arrived or was skipped
        self._last_partial: dict[int, int] = {}
        self.skipped = 0
        self.duplicates = 0
        self.late = 0

    # ------------------------------------------------------------- inputs

    def expect_final(self, index: int, now: float) -> None:
        """A final job was queued for utterance ``index``."""
        key = (index, FINAL)
        if key not in self._delivered and key not in self._skipped:
            self._pending.add(key)
        self._update_head(now)

    def mark_sent(self, index: int, kind: str) -> None:
        """Utterance ``index``'s ``kind`` was sent by an earlier holder of the session (resume):
        a copy arriving now is a duplicate."""
        key = (index, kind)
        self._pending.discard(key)
        self._items.pop(key, None)
        self._delivered[key] = None
        if kind == FINAL:
            self._max_final = max(self._max_final, index)

    def add_final(self, index: int, item: T, now: float, translation_expected: bool = False) -> bool:
        """A final arrived; False if it is a duplicate (dropped)."""
        if not self._arrive((index, FINAL), item):
            return False
        self._max_final = max(self._max_final, index)
        tr = (index, TRANSLATION)
        if translation_expected and tr not in self._delivered and tr not in self._skipped:
            self._pending.add(tr)
        self._update_head(now)
        return True

    def add_translation(self, index: int, item: T, now: float) -> bool:
        """A translation (or an error standing in for it) arrived; False if it is a duplicate."""
        if not self._arrive((index, TRANSLATION), item):
            return False
        self._update_head(now)
        return True

    def add_turn_end(self, index: int, item: T, now: float) -> bool:
        """A turn ended with utterance ``index``'s final: ``item`` goes out right after that
        final and its translation. False if it is a duplicate."""
        if not self._arrive((index, TURN_END), item):
            return False
        self._update_head(now)
        return True

    def add_partial(self, index: int, partial_seq: int) -> bool:
        """Whether to show a partial result now (partials are not held, only filtered)."""
        if index <= self._max_final:
            return False
        if partial_seq <= self._last_partial.get(index, -1):
            return False
        self._last_partial[index] = partial_seq
        return True

    # ------------------------------------------------------------- output

    def release(self, now: float, draining: bool = False) -> list[T]:
        """Items to send now, in order. Call after every add, and at ``next_deadline()``.

        ``draining`` (the client sent ``end``): an overdue item is skipped even if nothing
        waits behind it, so the session can finish.
        """
        out: list[T] = []
        while True:
            self._update_head(now)
            head = self._head
            if head is None:
                break
            if head in self._items:
                out.append(self._items.pop(head))
                self._finish(head, self._delivered)
                continue
            overdue = now - self._head_since >= self.options.wait_seconds
            if overdue and (draining or any(k in self._items for k in self._pending)):
                log.warning("no %s for utterance %d after %.1fs: skipped", head[1], head[0],
                            now - self._head_since)
                self.skipped += 1
                if head[1] == FINAL:
                    self._max_final = max(self._max_final, head[0])
                self._finish(head, self._skipped)
                continue
            break
        return out

    def next_deadline(self) -> float | None:
        """When ``release`` could skip the item at the head (for the caller's timer)."""
        if self._head is None:
            return None
        return self._head_since + self.options.wait_seconds

    @property
    def idle(self) -> bool:
        """Nothing expected or held: every queued final (and translation) was sent or skipped."""
        return not self._pending

    def pending_finals(self) -> list[int]:
        """Utterances whose final is expected and not yet sent, in order (handed over on resume)."""
        return sorted(index for index, kind in self._pending if kind == FINAL)

    def first_unsent_final(self) -> int | None:
        """The lowest utterance whose final was expected and not sent: still awaited, or given
        up on (a resume expects it again: it may still come)."""
        unsent = [i for i, kind in self._pending if kind == FINAL]
        unsent += [i for i, kind in self._skipped if kind == FINAL]
        return min(unsent, default=None)

    @property
    def waiting_for(self) -> Key | None:
        """The (utterance index, kind) at the head of the line, if any."""
        return self._head

    # ------------------------------------------------------------- internals

    def _arrive(self, key: Key, item: T) -> bool:
        if key in self._delivered or key in self._items:
            self.duplicates += 1
            log.debug("duplicate %s for utterance %d dropped", key[1], key[0])
            return False
        if key in self._skipped:
            # Too late for its turn, but better late than lost: it goes out next.
            del self._skipped[key]
            self.late += 1
        self._pending.add(key)
        self._items[key] = item
        return True

    def _finish(self, key: Key, into: OrderedDict[Key, None]) -> None:
        self._pending.discard(key)
        into[key] = None
        while len(into) > _REMEMBERED:
            into.popitem(last=False)
        if key[1] == FINAL:
            for index in [i for i in self._last_partial if i <= key[0]]:
                del self._last_partial[index]

    def _update_head(self, now: float) -> None:
        head = min(self._pending, key=lambda k: (k[0], _KIND_ORDER[k[1]])) if self._pending else None
        if head != self._head:
            self._head = head
            self._head_since = now
