"""Languages offered by the client: ISO 639-1 codes with display names.

Every language here is spoken by Whisper and covered by NLLB-200; the server has the final
word (it answers an unsupported pair with an ``error`` message, shown in the window).
"""

from __future__ import annotations

AUTO = "auto"

LANGUAGES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "ar": "Arabic",
    "hi": "Hindi",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "sv": "Swedish",
    "cs": "Czech",
    "el": "Greek",
    "vi": "Vietnamese",
}


def source_choices() -> list[tuple[str, str]]:
    """(code, label) for the source list: automatic detection first."""
    return [(AUTO, "Auto-detect")] + [(code, name) for code, name in LANGUAGES.items()]


def target_choices() -> list[tuple[str | None, str]]:
    """(code, label) for the target list: no translation first."""
    return [(None, "No translation")] + [(code, name) for code, name in LANGUAGES.items()]


def validate_source(code: str) -> str:
    if code != AUTO and code not in LANGUAGES:
        raise ValueError(f"unknown source language {code!r}; use auto or one of {sorted(LANGUAGES)}")
    return code


def validate_target(code: str | None) -> str | None:
    if code in (None, "", "none"):
        return None
    if code not in LANGUAGES:
        raise ValueError(f"unknown target language {code!r}; use none or one of {sorted(LANGUAGES)}")
    return code
