"""The demo client against the real local stack: two clients streaming at 4x speed.

Uses the ``local_stack`` fixture (tests/conftest.py: Redis, gateway, STT and translation
workers with real models from installed packages). The English clip is generated into a
temporary directory so the test does not depend on committed audio.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from demos import demo_client
from demos.generate_audio import GenerateOptions, generate

pytestmark = pytest.mark.integration


@pytest.mark.model_output
async def test_two_clients_at_4x_all_utterances_transcribed(
    local_stack: Any, tmp_path: Path, record_margin: Any
) -> None:
    audio = tmp_path / "audio"
    generate(GenerateOptions(out=audio, languages=("en",)))
    out = tmp_path / "report.json"
    argv = [
        "--url", local_stack.ws_url,
        "--clients", "2",
        "--speed", "4",
        "--source-language", "en",
        "--audio-dir", str(audio),
        "--json", str(out),
        "--timeout", "60",
        "--no-progress",
    ]
    # main() owns its event loop (asyncio.run), so it runs in a thread here.
    code = await asyncio.to_thread(demo_client.main, argv)
    doc = json.loads(out.read_text())
    assert doc["success_rate"] == 1, doc["failed_sessions"]
    assert code == 0
    assert doc["sessions"] == 2
    assert doc["wer"] is not None
    record_margin("WER", doc["wer"], 0.15)
    assert sum(doc["worker_distribution"].values()) >= 6  # 3 utterances x 2 sessions
    assert doc["unexpected_finals"] == 0
    final = doc["latency"]["final"]
    assert final["count"] == 6 and final["p50"] > 0
