"""Reference sentences for the test clips, one script per language.

Sentences avoid digits, hyphens and abbreviations so the reference text and a
normalised transcript compare word for word. English uses the natural Piper voice;
the other languages use espeak-ng, which sounds robotic but is intelligible to Whisper.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    """What to say for one clip and which synthesiser says it."""

    language: str
    engine: str  # "piper" or "espeak"
    voice: str  # piper voice name, or espeak-ng voice name
    sentences: tuple[str, ...]


SCRIPTS: dict[str, Script] = {
    "en": Script(
        "en",
        "piper",
        "en_US-joe-medium",
        (
            "The weather is lovely today, so we are going for a walk in the park.",
            "Please send the quarterly report to the whole team before Friday.",
            "Real time transcription makes meetings easier to follow for everyone.",
        ),
    ),
    "es": Script(
        "es",
        "espeak",
        "es",
        (
            "Buenos días, hoy vamos a hablar del tiempo.",
            "La reunión empieza a las diez de la mañana.",
        ),
    ),
    "fr": Script(
        "fr",
        "espeak",
        "fr-fr",
        (
            "Bonjour, je voudrais un café, s'il vous plaît.",
            "Nous partons en vacances la semaine prochaine.",
        ),
    ),
    "de": Script(
        "de",
        "espeak",
        "de",
        (
            "Guten Morgen, wie geht es dir heute?",
            "Das Wetter ist sehr schön in Berlin.",
        ),
    ),
    "it": Script(
        "it",
        "espeak",
        "it",
        (
            "Buongiorno, oggi il cielo è sereno.",
            "Vorrei prenotare un tavolo per due persone.",
        ),
    ),
    "pt": Script(
        "pt",
        "espeak",
        "pt",
        (
            "Bom dia, hoje o tempo está muito bom.",
            "Eu gosto de ler livros à noite.",
        ),
    ),
}

DEFAULT_LANGUAGES: tuple[str, ...] = tuple(SCRIPTS)
