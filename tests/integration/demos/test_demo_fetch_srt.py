"""`demo_client.py --fetch-srt` on the real local stack (which runs the transcript store): the
SRT fetched from the REST API after the run matches what the client received live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from common.subtitles import parse_srt
from demos import demo_client
from demos.generate_audio import GenerateOptions, generate

pytestmark = pytest.mark.integration


async def test_fetched_srt_matches_the_live_finals(local_stack: Any, tmp_path: Path, capsys: Any) -> None:
    audio = tmp_path / "audio"
    generate(GenerateOptions(out=audio, languages=("en",)))
    srt_dir = tmp_path / "srt"
    argv = ["--url", local_stack.ws_url, "--speed", "4", "--source-language", "en", "--audio-dir", str(audio),
            "--timeout", "60", "--no-progress", "--fetch-srt", "--srt-dir", str(srt_dir)]
    code = await asyncio.to_thread(demo_client.main, argv)
    out = capsys.readouterr().out
    assert "SRT check: 1/1 sessions' stored SRT match what was received live" in out, out
    assert code == 0
    [saved] = list(srt_dir.glob("*.srt"))
    cues = parse_srt(saved.read_text())
    assert len(cues) >= 3 and all(c.text for c in cues)
