"""Language codes every service shares: what Whisper can transcribe, and what a deployment serves.

``WHISPER_LANGUAGES`` is faster-whisper's list (``faster_whisper.tokenizer._LANGUAGE_CODES``),
copied so the gateway can refuse an impossible language without importing the STT stack.
``DEFAULT_SOURCE_LANGUAGES`` is the set the project lists as supported (the seed's "15+"):
the languages the GUI offers, all spoken by Whisper and covered by NLLB-200.  It is the
default of ``SOURCE_LANGUAGES``, the languages automatic detection may answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

WHISPER_LANGUAGES: Final[frozenset[str]] = frozenset(
    (
        "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy", "da",
        "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw", "he", "hi",
        "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn", "ko", "la", "lb",
        "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn",
        "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si", "sk", "sl", "sn", "so", "sq",
        "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl", "tr", "tt", "uk", "ur", "uz", "vi",
        "yi", "yo", "zh", "yue",
    )
)

#: The project's supported languages, in the order the GUI lists them.
DEFAULT_SOURCE_LANGUAGES: Final[tuple[str, ...]] = (
    "en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "uk",
    "tr", "ar", "hi", "zh", "ja", "ko", "sv", "cs", "el", "vi",
)

#: ``SOURCE_LANGUAGES=all``: detection may answer any language the model knows.
ALL_LANGUAGES: Final = "all"


def parse_language_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"en, es,fr"`` or ``["en", "es"]`` -> ``("en", "es", "fr")``: lower case, no repeats.

    ``"all"`` (or an empty value) gives ``()``, meaning no restriction.  Raises ValueError
    naming the codes Whisper does not know.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    codes: list[str] = []
    for item in items:
        code = str(item).strip().lower()
        if code and code not in codes:
            codes.append(code)
    if codes == [ALL_LANGUAGES] or not codes:
        return ()
    unknown = [c for c in codes if c not in WHISPER_LANGUAGES]
    if unknown:
        raise ValueError(f"not languages Whisper knows: {', '.join(unknown)} (use ISO 639-1 codes, or 'all')")
    return tuple(codes)
