"""Voice typing with smart replacement: from revised partials and finals to keystrokes.

Pure logic, no keyboard and no Qt. A :class:`TypingBuffer` remembers what it has typed into
the focused application. Each new partial or final of an utterance gives the text that
*should* be on screen; the buffer answers with the keystrokes that get there from what *is*
on screen: a number of backspaces for the part that changed and the new suffix to type.
Finals are committed: once every earlier utterance is final, their text is never edited again.

Spacing rules (capitalisation is the model's business):
- one space between committed sentences, none at the very start;
- no space before closing punctuation (``, . ; : ! ? …`` and closing brackets/quotes) and
  none after an opening bracket or quote;
- no space next to CJK text, which is written without spaces between words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field

_CLOSING = ",.;:!?…)]}»”’%"
_OPENING = "([{«“‘¿¡"
_SPACE_BEFORE_CLOSING = re.compile(r"\s+([" + re.escape(_CLOSING) + r"])")
_SPACE_AFTER_OPENING = re.compile(r"([" + re.escape(_OPENING) + r"])\s+")
_WHITESPACE = re.compile(r"\s+")
_TRAILING_INT = re.compile(r"(\d+)$")
# Segment ids of committed utterances, remembered to drop late partials; bounded.
_MAX_REMEMBERED_IDS = 1024


@dataclass(frozen=True)
class Keystrokes:
    """What to press: ``backspaces`` times Backspace, then type ``text``."""

    backspaces: int = 0
    text: str = ""

    @property
    def empty(self) -> bool:
        return self.backspaces == 0 and not self.text


def normalize_text(text: str) -> str:
    """Tidy one utterance: NFC, single spaces, no space before punctuation or after an opener."""
    text = unicodedata.normalize("NFC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_CLOSING.sub(r"\1", text)
    return _SPACE_AFTER_OPENING.sub(r"\1", text)


def _is_spaceless_script(char: str) -> bool:
    """Chinese and Japanese are written without spaces; Korean (Hangul) uses them."""
    code = ord(char)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


def separator(before: str, piece: str) -> str:
    """The text to put between what is already there (``before``) and a new ``piece``."""
    if not before or not piece:
        return ""
    last, first = before[-1], piece[0]
    if last.isspace() or last in _OPENING or first in _CLOSING:
        return ""
    if _is_spaceless_script(last) or _is_spaceless_script(first):
        return ""
    return " "


def common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def diff_keystrokes(typed: str, wanted: str) -> Keystrokes:
    """Keystrokes turning ``typed`` into ``wanted``: erase only the changed suffix."""
    keep = common_prefix_length(typed, wanted)
    return Keystrokes(backspaces=len(typed) - keep, text=wanted[keep:])


def compose(first: Keystrokes, second: Keystrokes) -> Keystrokes:
    """One set of keystrokes with the effect of ``first`` then ``second`` (to hold them back)."""
    if second.backspaces <= len(first.text):
        kept = first.text[: len(first.text) - second.backspaces]
        return Keystrokes(first.backspaces, kept + second.text)
    return Keystrokes(first.backspaces + second.backspaces - len(first.text), second.text)


def segment_order_key(segment_id: object) -> int | None:
    """A numeric order for a segment id (an int, or a string ending in digits), else None."""
    if isinstance(segment_id, bool):
        return None
    if isinstance(segment_id, int):
        return segment_id
    match = _TRAILING_INT.search(str(segment_id))
    return int(match.group(1)) if match else None


@dataclass
class _Segment:
    key: str
    order: tuple[int, int]
    text: str
    final: bool


@dataclass
class TypingBuffer:
    """What has been typed in one typing session, and the keystrokes for each update.

    ``context`` is text known to be before the cursor when typing starts (usually nothing).
    """

    context: str = ""
    _committed: str = field(default="", init=False)
    _typed_editable: str = field(default="", init=False)
    _segments: dict[str, _Segment] = field(default_factory=dict, init=False)
    _committed_ids: deque[str] = field(
        default_factory=lambda: deque(maxlen=_MAX_REMEMBERED_IDS), init=False
    )
    _arrivals: int = field(default=0, init=False)

    @property
    def text(self) -> str:
        """Everything this buffer has typed and not erased, committed or not."""
        return self._committed + self._typed_editable

    @property
    def committed_text(self) -> str:
        return self._committed

    def update(self, segment_id: object, text: str, *, final: bool) -> Keystrokes:
        """Apply a partial (``final=False``) or final of one utterance; return the keystrokes."""
        key = str(segment_id)
        if key in self._committed_ids:
            return Keystrokes()  # a late partial or a duplicate of a committed utterance
        segment = self._segments.get(key)
        if segment is None:
            numeric = segment_order_key(segment_id)
            self._arrivals += 1
            # Numbered ids sort by number; others keep arrival order after them.
            order = (0, numeric) if numeric is not None else (1, self._arrivals)
            segment = _Segment(key=key, order=order, text="", final=False)
            self._segments[key] = segment
        elif segment.final:
            return Keystrokes()  # finals are never revised
        segment.text = normalize_text(text)
        segment.final = final
        return self._retype()

    def reset(self) -> None:
        """Forget everything (a new typing session); nothing is erased on screen."""
        self._committed = ""
        self._typed_editable = ""
        self._segments.clear()
        self._committed_ids.clear()

    def _retype(self) -> Keystrokes:
        ordered = sorted(self._segments.values(), key=lambda s: s.order)
        before = self.context + self._committed
        wanted = ""
        for segment in ordered:
            if not segment.text:
                continue
            sep = separator(before + wanted, segment.text)
            wanted += sep + segment.text
        keys = diff_keystrokes(self._typed_editable, wanted)
        self._typed_editable = wanted
        self._commit_leading_finals(ordered)
        return keys

    def _commit_leading_finals(self, ordered: list[_Segment]) -> None:
        before = self.context + self._committed
        committed_now = ""
        for segment in ordered:
            if not segment.final:
                break
            if segment.text:
                committed_now += separator(before + committed_now, segment.text) + segment.text
            del self._segments[segment.key]
            self._committed_ids.append(segment.key)
        if committed_now:
            # The editable text starts with exactly what was committed, by construction.
            self._committed += committed_now
            self._typed_editable = self._typed_editable[len(committed_now) :]
