"""``demo_client.py --fetch-srt``: after the run, fetch each session's SRT from the gateway's
REST API (``/v1/sessions/{id}/transcript?format=srt``) and check it against the finals the
client received live: same texts, same times (to the millisecond SRT keeps), same order.

The transcript store writes a moment after the client got its finals, so a fetch that comes
back short is retried until ``timeout``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from common.subtitles import Cue, parse_srt, to_srt
from demos.metrics import SessionRecord


@dataclass(frozen=True)
class SrtCheck:
    session_id: str
    live: int
    stored: int
    problems: tuple[str, ...]
    srt: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def rest_base(ws_url: str) -> str:
    """The gateway's HTTP origin for a ws:// or wss:// URL (same host and port)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def session_id(record: SessionRecord) -> str | None:
    for received in record.received:
        if received.type == "ready":
            value = received.message.get("session_id")
            return str(value) if value else None
    return None


def live_cues(record: SessionRecord) -> list[Cue]:
    """The finals as received, as the cues an SRT of them holds (empty ones have none)."""
    finals = [r.message for r in record.received if r.type == "final"]
    srt = to_srt(Cue(float(m.get("start") or 0.0), float(m.get("end") or 0.0), str(m.get("text") or ""))
                 for m in finals)
    return parse_srt(srt)


def compare(live: list[Cue], stored: list[Cue]) -> list[str]:
    problems = []
    if len(live) != len(stored):
        problems.append(f"{len(live)} finals received live, {len(stored)} cues in the stored SRT")
    for n, (a, b) in enumerate(zip(live, stored, strict=False), start=1):
        if a != b:
            problems.append(f"cue {n}: live {a.start:.3f}-{a.end:.3f} {a.text!r}, stored {b.start:.3f}-{b.end:.3f} "
                            f"{b.text!r}")
    return problems


async def check_session(http: aiohttp.ClientSession, base: str, record: SessionRecord, token: str | None,
                        timeout: float) -> SrtCheck:
    sid = session_id(record)
    live = live_cues(record)
    if sid is None:
        return SrtCheck("?", len(live), 0, ("no ready message: the session id is unknown",))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{base}/v1/sessions/{sid}/transcript?format=srt"
    deadline = time.monotonic() + timeout
    while True:
        problem = ""
        srt = ""
        try:
            async with http.get(url, headers=headers) as response:
                if response.status == 200:
                    srt = await response.text()
                else:
                    problem = f"GET {url.split('?', maxsplit=1)[0]} answered {response.status}"
        except aiohttp.ClientError as exc:
            problem = f"GET failed: {exc.__class__.__name__}"
        stored = parse_srt(srt) if srt else []
        problems = [problem] if problem else compare(live, stored)
        if not problems or time.monotonic() > deadline:
            return SrtCheck(sid, len(live), len(stored), tuple(problems), srt)
        await asyncio.sleep(0.25)  # the store may still be writing the last finals


async def check_all(ws_url: str, records: list[SessionRecord], token: str | None, *,
                    timeout: float = 15.0) -> list[SrtCheck]:
    base = rest_base(ws_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        return list(await asyncio.gather(*(check_session(http, base, r, token, timeout) for r in records)))


def save_srts(checks: list[SrtCheck], srt_dir: Path) -> None:
    srt_dir.mkdir(parents=True, exist_ok=True)
    for check in checks:
        if check.srt:
            (srt_dir / f"{check.session_id}.srt").write_text(check.srt, encoding="utf-8")


def format_checks(checks: list[SrtCheck]) -> str:
    good = sum(c.ok for c in checks)
    lines = [f"SRT check: {good}/{len(checks)} sessions' stored SRT match what was received live"]
    for check in checks:
        for problem in check.problems[:5]:
            lines.append(f"  session {check.session_id}: {problem}")
    return "\n".join(lines)
