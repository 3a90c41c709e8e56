"""Partial translations (optional): which part of a growing partial transcript is worth
translating, and when.

A partial transcript changes as more audio arrives; translating every version would waste
the model and make the subtitle flicker. The stable prefix is the run of words the last
``agreement`` partials of an utterance agree on ("local agreement"); it is offered for
translation only when it has grown by ``min_new_words`` and at most once every
``min_interval_seconds`` per session. Pure and synchronous: the shell feeds it partials and
sends what it returns to the manager like any other item.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartialOptions:
    """Rate limit and stability rules for partial translations."""

    min_interval_seconds: float = 1.0
    min_new_words: int = 2
    agreement: int = 2
    max_sessions: int = 10_000


@dataclass(slots=True)
class _Utterance:
    segment_id: str
    recent: deque[list[str]]
    emitted_words: int = 0


@dataclass(slots=True)
class _Session:
    utterance: _Utterance | None = None
    last_emit: float | None = None


def stable_prefix(versions: list[list[str]]) -> list[str]:
    """The words every version starts with."""
    if not versions:
        return []
    prefix: list[str] = []
    for words in zip(*versions, strict=False):
        if any(w != words[0] for w in words):
            break
        prefix.append(words[0])
    return prefix


class PartialTranslationGate:
    """Decides, per session, which partial prefix to translate now (or nothing)."""

    def __init__(
        self, options: PartialOptions | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options or PartialOptions()
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def offer(self, session_id: str, segment_id: str, text: str, now: float | None = None) -> str | None:
        """Feed one partial; returns the stable prefix to translate, or None to skip."""
        now = self._clock() if now is None else now
        session = self._session(session_id)
        utterance = session.utterance
        if utterance is None or utterance.segment_id != segment_id:
            utterance = _Utterance(segment_id, deque(maxlen=max(1, self.options.agreement)))
            session.utterance = utterance
        utterance.recent.append(text.split())
        if len(utterance.recent) < max(1, self.options.agreement):
            return None
        prefix = stable_prefix(list(utterance.recent))
        if len(prefix) - utterance.emitted_words < self.options.min_new_words:
            return None
        if session.last_emit is not None and now - session.last_emit < self.options.min_interval_seconds:
            return None
        utterance.emitted_words = len(prefix)
        session.last_emit = now
        return " ".join(prefix)

    def finish(self, session_id: str, segment_id: str) -> None:
        """The final of the utterance arrived: its partial state is no longer needed."""
        session = self._sessions.get(session_id)
        if (
            session is not None
            and session.utterance is not None
            and session.utterance.segment_id == segment_id
        ):
            session.utterance = None

    def forget(self, session_id: str) -> None:
        """The session ended."""
        self._sessions.pop(session_id, None)

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session()
            while len(self._sessions) > self.options.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return session
