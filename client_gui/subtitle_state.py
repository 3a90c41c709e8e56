"""What the subtitles overlay shows: one sentence at a time (pure logic).

The latest partial of the utterance in progress is shown; its final replaces it; the
translation appears under it. A partial of a *new* utterance replaces the whole sentence, so
text never piles up. Results of utterances already replaced are ignored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from speech_client.protocol import Final, Realtime, ServerMessage, Translation

_MAX_REMEMBERED_IDS = 1024


@dataclass(frozen=True)
class SubtitleView:
    text: str = ""
    translation: str = ""
    final: bool = False


@dataclass
class SubtitleState:
    view: SubtitleView = field(default_factory=SubtitleView)
    _current: str | None = field(default=None, init=False)
    _retired: deque[str] = field(default_factory=lambda: deque(maxlen=_MAX_REMEMBERED_IDS), init=False)

    def apply(self, message: ServerMessage) -> bool:
        """Update from a result; True when what is shown changed."""
        if not isinstance(message, Realtime | Final | Translation):
            return False
        key = str(message.segment_id)
        if key in self._retired:
            return False
        before = self.view
        if isinstance(message, Translation):
            if key == self._current:
                self.view = SubtitleView(self.view.text, message.text.strip(), self.view.final)
        elif key != self._current:
            if self._current is not None:
                self._retired.append(self._current)
            self._current = key
            translation = (message.translation or "").strip()
            self.view = SubtitleView(message.text.strip(), translation, isinstance(message, Final))
        elif isinstance(message, Final):
            self.view = SubtitleView(message.text.strip(), (message.translation or "").strip(), True)
        elif not self.view.final:
            # A partial never overwrites the final of the same utterance (late delivery).
            translation = (message.translation or "").strip() or self.view.translation
            self.view = SubtitleView(message.text.strip(), translation, False)
        return self.view != before

    def clear(self) -> None:
        if self._current is not None:
            self._retired.append(self._current)
        self._current = None
        self.view = SubtitleView()
