"""One real run: ``python -m client_gui`` smoke mode streams a WAV file into the local stack.

The whole pipeline runs as processes (``local_stack`` from tests/conftest.py: gateway, STT
worker with Whisper tiny.en, translation worker); the client runs as a user would start it,
offscreen, and must print the transcript and save a screenshot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jiwer
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
# Natural-sounding speech (piper) with its reference text, shared with the STT tests.
FIXTURES = ROOT / "tests" / "fixtures" / "stt"
CLIP = "en_weather"


@pytest.mark.skipif(not (FIXTURES / f"{CLIP}.wav").exists(), reason="STT fixtures not generated")
@pytest.mark.parametrize("mode", ["subtitles", "typing"])
@pytest.mark.model_output
def test_smoke_mode_against_the_local_stack(
    local_stack: Any, tmp_path: Path, mode: str, record_margin: Any
) -> None:
    wav = FIXTURES / f"{CLIP}.wav"
    reference = json.loads((FIXTURES / "references.json").read_text())[CLIP]["text"]
    shot = tmp_path / f"{mode}.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SPEECH_CLIENT_TOKEN": ""}
    proc = subprocess.run(
        [
            sys.executable, "-m", "client_gui",
            "--audio-file", str(wav), "--mode", mode, "--exit-after-final",
            "--screenshot", str(shot), "--url", local_stack.ws_url,
            "--source-language", "en", "--timeout", "120",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    finals = [line.removeprefix("final: ") for line in proc.stdout.splitlines() if line.startswith("final: ")]
    assert finals, proc.stdout
    transform = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip(),
                               jiwer.RemoveMultipleSpaces(), jiwer.ReduceToListOfListOfWords()])
    error_rate = jiwer.wer(reference, " ".join(finals), reference_transform=transform,
                           hypothesis_transform=transform)
    print("finals:", finals)
    record_margin("WER", error_rate, 0.5)
    assert shot.stat().st_size > 1000
