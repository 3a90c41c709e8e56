"""The clip manifest: reference text and utterance times of each generated clip.

Written by ``generate_audio.py`` and read by ``demo_client.py``. Times are seconds from
the start of the clip, exact by construction (the generator places each trimmed
utterance at a known sample offset). Serialisation is deterministic (sorted keys, fixed
rounding) so regenerating the same clips yields the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Utterance:
    """One spoken sentence inside a clip."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Clip:
    """One WAV file and what is said in it."""

    name: str
    file: str
    language: str
    sample_rate: int
    duration: float
    utterances: tuple[Utterance, ...]
    engine: str = ""
    sha256: str = ""
    input_hash: str = ""

    @property
    def reference_text(self) -> str:
        return " ".join(u.text for u in self.utterances)

    @property
    def speech_seconds(self) -> float:
        return sum(u.end - u.start for u in self.utterances)


@dataclass
class Manifest:
    """All clips in one audio directory, keyed by clip name."""

    clips: dict[str, Clip] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        doc = {
            "version": self.version,
            "clips": {name: _clip_to_dict(clip) for name, clip in sorted(self.clips.items())},
        }
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        doc = json.loads(text)
        clips = {name: _clip_from_dict(name, raw) for name, raw in doc.get("clips", {}).items()}
        return cls(clips=clips, version=int(doc.get("version", MANIFEST_VERSION)))


def _clip_to_dict(clip: Clip) -> dict[str, object]:
    raw = asdict(clip)
    raw.pop("name")
    raw["duration"] = round(clip.duration, 6)
    raw["utterances"] = [
        {"text": u.text, "start": round(u.start, 6), "end": round(u.end, 6)} for u in clip.utterances
    ]
    return raw


def _clip_from_dict(name: str, raw: dict[str, object]) -> Clip:
    utterances = raw.get("utterances", [])
    assert isinstance(utterances, list)
    return Clip(
        name=name,
        file=str(raw["file"]),
        language=str(raw["language"]),
        sample_rate=int(str(raw["sample_rate"])),
        duration=float(str(raw["duration"])),
        utterances=tuple(
            Utterance(text=str(u["text"]), start=float(u["start"]), end=float(u["end"]))
            for u in utterances
        ),
        engine=str(raw.get("engine", "")),
        sha256=str(raw.get("sha256", "")),
        input_hash=str(raw.get("input_hash", "")),
    )


def load_manifest(audio_dir: Path) -> Manifest:
    """Read ``manifest.json`` from ``audio_dir``; an empty manifest when there is none."""
    path = audio_dir / MANIFEST_NAME
    if not path.exists():
        return Manifest()
    return Manifest.from_json(path.read_text(encoding="utf-8"))
