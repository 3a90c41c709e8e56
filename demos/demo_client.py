"""Demo client: stream test clips to the gateway and measure the pipeline.

    python demo_client.py --clients 1
    python demo_client.py --clients 10
    python demo_client.py --load-test --clients 5 --batches 3
    python demo_client.py --soak 10m --clients 20 --max-growth-mb-per-100 2

Each client opens a WebSocket session (protocol v1), sends ``config``, streams a clip from
``--audio-dir`` (made by ``generate_audio.py``) in 30 ms chunks at real-time pace (scaled
by ``--speed``), sends ``end`` and waits for ``done``. ``--load-test`` runs ``--batches``
waves of ``--clients`` concurrent sessions, one wave after the other.

It prints a table (latency from end of speech to final, p50/p95/max, and the other
latencies explained in :mod:`demos.metrics`; throughput; success rate with WER beside it;
finals per worker; errors by code), optionally writes the same figures as JSON
(``--json``), and exits 1 unless every session succeeded. ``--fetch-srt`` then fetches each
session's SRT from the transcript REST API and checks it against what was received live. The token (``--token`` or the
``DEMO_TOKEN`` environment variable) is sent as ``Authorization: Bearer`` and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

if __package__ in (None, ""):
    # Run as a script from demos/: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demos import soak
from demos.audio_tools import read_wav_pcm16
from demos.manifest import Clip, load_manifest
from demos.metrics import Received, Report, SessionRecord, summarise
from demos.report import format_report
from demos.session import SessionOptions, run_session, wait_for_gateway

log = logging.getLogger(__name__)

DEFAULT_AUDIO_DIR = Path(__file__).resolve().parent / "audio"
DEFAULT_URL = "ws://127.0.0.1:5026"
TOKEN_ENV = "DEMO_TOKEN"


@dataclass(frozen=True)
class RunOptions:
    session: SessionOptions = field(default_factory=SessionOptions)
    clients: int = 1
    batches: int = 1
    clips: tuple[str, ...] = ("en",)
    audio_dir: Path = DEFAULT_AUDIO_DIR
    progress: bool | None = None  # None: only when stderr is a terminal
    wait: float = 0.0  # seconds to wait for the gateway's port before starting
    show_transcripts: bool = False


@dataclass(frozen=True)
class LoadedClip:
    clip: Clip
    pcm: bytes
    sample_rate: int


def load_clips(audio_dir: Path, names: tuple[str, ...]) -> list[LoadedClip]:
    manifest = load_manifest(audio_dir)
    missing = [n for n in names if n not in manifest.clips or not (audio_dir / manifest.clips[n].file).exists()]
    if missing and audio_dir == DEFAULT_AUDIO_DIR:
        # A fresh checkout may not carry the clips; making them takes about a second.
        from demos.generate_audio import GenerateOptions, generate
        from demos.texts import SCRIPTS

        known = tuple(n for n in missing if n in SCRIPTS)
        if known:
            log.warning("generating missing test clips %s in %s", ",".join(known), audio_dir)
            generate(GenerateOptions(out=audio_dir, languages=known))
            manifest = load_manifest(audio_dir)
    if not manifest.clips:
        raise FileNotFoundError(f"no clips in {audio_dir}; run `python generate_audio.py` first")
    loaded = []
    for name in names:
        if name not in manifest.clips:
            raise KeyError(f"clip {name!r} not in {audio_dir} (have {sorted(manifest.clips)})")
        clip = manifest.clips[name]
        pcm, rate = read_wav_pcm16((audio_dir / clip.file).read_bytes())
        loaded.append(LoadedClip(clip, pcm, rate))
    return loaded


async def run(options: RunOptions, clips: list[LoadedClip]) -> tuple[list[SessionRecord], float]:
    """Run ``batches`` waves of ``clients`` concurrent sessions; return records and wall time."""
    total_audio = options.batches * sum(
        clips[i % len(clips)].clip.duration for i in range(options.clients)
    )
    if options.wait > 0 and not await wait_for_gateway(options.session.url, options.wait):
        log.error("gateway at %s did not accept connections within %.0f s",
                  options.session.url, options.wait)
    records: list[SessionRecord] = []
    began = time.perf_counter()
    with tqdm(
        total=round(total_audio, 1),
        unit="s audio",
        disable=None if options.progress is None else not options.progress,
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]",
    ) as bar:
        for batch in range(options.batches):
            wave = []
            for i in range(options.clients):
                loaded = clips[i % len(clips)]
                record = SessionRecord(
                    index=batch * options.clients + i, clip=loaded.clip, batch=batch
                )
                wave.append(
                    run_session(
                        record, loaded.pcm, loaded.sample_rate, options.session, bar.update,
                        _print_result if options.show_transcripts else None,
                    )
                )
            records.extend(await asyncio.gather(*wave))
    return records, time.perf_counter() - began


def _print_result(record: SessionRecord, received: Received) -> None:
    """Print finals and translations as they arrive (--show-transcripts)."""
    message = received.message
    if received.type == "final":
        line = f"[client {record.index}] {message.get('text', '')!s}  ({message.get('worker', '?')})"
    elif received.type == "translation":
        line = f"[client {record.index}]   -> {message.get('target_language', '?')}: {message.get('text', '')!s}"
    elif received.type == "error":
        line = f"[client {record.index}] error {message.get('code')}: {message.get('message', '')}"
    else:
        return
    tqdm.write(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Stream test clips to the speech gateway and report latency, "
        "throughput, success rate and worker distribution."
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"gateway URL (default {DEFAULT_URL})")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token (default: ${TOKEN_ENV}); never printed",
    )
    parser.add_argument("--clients", type=int, default=1, help="concurrent sessions per wave")
    parser.add_argument("--load-test", action="store_true", help="run --batches waves")
    parser.add_argument("--batches", type=int, default=3, help="waves in --load-test")
    parser.add_argument("--speed", type=float, default=1.0, help="pace, 1.0 = real time")
    parser.add_argument("--chunk-ms", type=int, default=30, help="audio per frame (20-40 ms)")
    parser.add_argument("--source-language", default=None, help="'auto' or ISO 639-1")
    parser.add_argument("--target-language", default=None, help="ISO 639-1 to translate to")
    parser.add_argument(
        "--clip",
        default=None,
        help="comma-separated clip names, used round-robin (default: the clip of "
        "--source-language if there is one, else en)",
    )
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    parser.add_argument(
        "--silence-threshold",
        type=float,
        default=2.0,
        help="server silence threshold in seconds, if its `ready` does not state one",
    )
    parser.add_argument("--no-partials", action="store_true", help="do not ask for partials")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for `done` after `end`"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="wait up to this long for the gateway to accept connections (e.g. just after "
        "starting the stack)",
    )
    parser.add_argument(
        "--show-transcripts", action="store_true", help="print finals and translations as they arrive"
    )
    parser.add_argument(
        "--fetch-srt", action="store_true",
        help="after the run, fetch each session's SRT from the transcript REST API and check it against "
        "the finals received live",
    )
    parser.add_argument("--srt-dir", type=Path, default=None, help="with --fetch-srt: save the SRT files here")
    parser.add_argument("--log-level", default="WARNING")
    soak.add_arguments(parser)
    return parser


def options_from_args(args: argparse.Namespace) -> RunOptions:
    if args.clients < 1 or args.batches < 1:
        raise ValueError("--clients and --batches must be at least 1")
    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    if not 10 <= args.chunk_ms <= 100:
        raise ValueError("--chunk-ms must be between 10 and 100")
    if args.clip:
        clips = tuple(c.strip() for c in args.clip.split(",") if c.strip())
    elif args.source_language and args.source_language != "auto":
        clips = (args.source_language,)
    else:
        clips = ("en",)
    session = SessionOptions(
        url=args.url,
        token=args.token or None,
        source_language=args.source_language,
        target_language=args.target_language,
        partials=not args.no_partials,
        speed=args.speed,
        chunk_ms=args.chunk_ms,
        done_timeout=args.timeout,
        silence_threshold=args.silence_threshold,
    )
    return RunOptions(
        session=session,
        clients=args.clients,
        batches=args.batches if args.load_test else 1,
        clips=clips,
        audio_dir=args.audio_dir,
        progress=False if args.no_progress else None,
        wait=args.wait,
        show_transcripts=args.show_transcripts,
    )


def heading(options: RunOptions) -> str:
    s = options.session
    shape = (
        f"{options.batches} batches x {options.clients} clients"
        if options.batches > 1
        else f"{options.clients} client{'s' if options.clients > 1 else ''}"
    )
    langs = f"{s.source_language or 'server default'} -> {s.target_language or 'no translation'}"
    return f"Demo client: {shape}, clip {','.join(options.clips)}, {s.speed:g}x, {langs}, {s.url}"


def report_json(report: Report, options: RunOptions) -> dict[str, Any]:
    s = options.session
    doc = report.as_dict()
    doc["config"] = {
        "url": s.url,
        "clients": options.clients,
        "batches": options.batches,
        "clips": list(options.clips),
        "speed": s.speed,
        "chunk_ms": s.chunk_ms,
        "source_language": s.source_language,
        "target_language": s.target_language,
        "partials": s.partials,
        "authenticated": s.token is not None,
    }
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args)
        clips = load_clips(options.audio_dir, options.clips)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if args.soak is not None:
        return soak.main(args, options, clips, run=run)
    records, wall = asyncio.run(run(options, clips))
    report = summarise(records, wall)
    print(format_report(report, heading(options)))
    if args.json is not None:
        args.json.write_text(json.dumps(report_json(report, options), indent=2) + "\n")
    srt_ok = True
    if args.fetch_srt:
        from demos.srt_check import check_all, format_checks, save_srts

        checks = asyncio.run(check_all(options.session.url, records, options.session.token))
        if args.srt_dir is not None:
            save_srts(checks, args.srt_dir)
        print(format_checks(checks))
        srt_ok = all(c.ok for c in checks)
    return 0 if report.success_rate == 1.0 and srt_ok else 1


if __name__ == "__main__":
    sys.exit(main())
