"""The ``speech-pipeline`` command.

``up`` runs the whole stack on this machine until Ctrl+C; ``demo`` runs it, streams the
bundled demo speech through it with ``demos/demo_client.py``, prints the transcripts and
figures, and stops it (this is ``make run``). ``backup PATH`` and ``restore PATH`` copy the
transcript database (see transcript_store/backup.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.logs import setup_logging
from common.runner import StackOptions, run_demo, run_stack
from common.token_cli import add_token_command


def _options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        stt_workers=args.stt_workers,
        translation_workers=args.translation_workers,
        redis_url=args.redis_url or os.environ.get("REDIS_URL") or None,
        redis_cluster=args.redis_cluster,
        host=args.host,
        gateway_port=args.gateway_port,
        gateway_health_port=args.gateway_health_port,
        stt_health_port=args.stt_health_port,
        translation_health_port=args.translation_health_port,
        store_health_port=args.store_health_port,
        ready_timeout=args.ready_timeout,
    )


def _up(args: argparse.Namespace) -> int:
    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FORMAT", "text"), "up")
    return asyncio.run(run_stack(_options(args)))


def _demo(args: argparse.Namespace) -> int:
    # The transcripts are the point here: services only log warnings unless asked otherwise.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    setup_logging(os.environ.get("LOG_LEVEL", "WARNING").upper(), os.environ.get("LOG_FORMAT", "text"), "demo")
    client_args = list(args.client_args)
    if client_args[:1] == ["--"]:
        client_args = client_args[1:]
    return asyncio.run(run_demo(_options(args), client_args))


def _backup(args: argparse.Namespace) -> int:
    """``backup PATH`` / ``restore PATH`` of the transcript database (DATABASE_URL, DATA_DIR)."""
    from common.settings import DatabaseSettings
    from transcript_store import backup
    from transcript_store.db import database_url, redacted

    url = database_url(DatabaseSettings())
    try:
        result = (backup.backup if args.command == "backup" else backup.restore)(url, args.path)
    except backup.BackupError as exc:
        print(f"speech-pipeline {args.command}: {exc}", file=sys.stderr)
        return 1
    verb = "backed up to" if args.command == "backup" else "restored from"
    print(f"{redacted(url)} {verb} {result.path} ({result.kind}, {result.bytes} bytes)")
    return 0


def _add_stack_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stt-workers", type=int, default=1, metavar="N")
    parser.add_argument("--translation-workers", type=int, default=1, metavar="M")
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of the embedded one")
    parser.add_argument(
        "--redis-cluster", action="store_true",
        default=os.environ.get("REDIS_CLUSTER", "").lower() in ("1", "true", "yes", "on"),
        help="Redis is a cluster (REDIS_CLUSTER=true); without --redis-url, start a local "
        "3-master cluster with a replica each",
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="bind address")
    parser.add_argument("--gateway-port", type=int, default=int(os.environ.get("GATEWAY_PORT", 5026)))
    parser.add_argument("--gateway-health-port", type=int, default=8080, help="0 = any free port")
    parser.add_argument("--stt-health-port", type=int, default=8081, help="first STT worker; 0 = any")
    parser.add_argument("--translation-health-port", type=int, default=8082, help="first one; 0 = any")
    parser.add_argument("--store-health-port", type=int, default=8083, help="transcript store; 0 = any")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for /ready")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Redis, a gateway and workers on this machine")
    _add_stack_args(up)
    up.set_defaults(func=_up)
    demo = sub.add_parser("demo", help="run the stack, stream demo speech through it, stop")
    _add_stack_args(demo)
    demo.add_argument("client_args", nargs=argparse.REMAINDER, help="passed to demos/demo_client.py")
    demo.set_defaults(func=_demo)
    for name, what in (("backup", "copy the transcript database to PATH"),
                       ("restore", "replace the transcript database with the backup at PATH (stop the store first)")):
        command = sub.add_parser(name, help=what)
        command.add_argument("path", type=Path)
        command.set_defaults(func=_backup)
    add_token_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
