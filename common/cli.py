"""The ``speech-pipeline`` command: ``up`` runs the whole stack on this machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from common.logs import setup_logging
from common.runner import StackOptions, run_stack


def _up(args: argparse.Namespace) -> int:
    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FORMAT", "text"), "up")
    options = StackOptions(
        stt_workers=args.stt_workers,
        translation_workers=args.translation_workers,
        redis_url=args.redis_url or os.environ.get("REDIS_URL") or None,
        host=args.host,
        gateway_port=args.gateway_port,
        gateway_health_port=args.gateway_health_port,
        stt_health_port=args.stt_health_port,
        translation_health_port=args.translation_health_port,
        ready_timeout=args.ready_timeout,
    )
    return asyncio.run(run_stack(options))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Redis, a gateway and workers on this machine")
    up.add_argument("--stt-workers", type=int, default=1, metavar="N")
    up.add_argument("--translation-workers", type=int, default=1, metavar="M")
    up.add_argument("--redis-url", default=None, help="use this Redis instead of the embedded one")
    up.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="bind address")
    up.add_argument("--gateway-port", type=int, default=int(os.environ.get("GATEWAY_PORT", 5026)))
    up.add_argument("--gateway-health-port", type=int, default=8080, help="0 = any free port")
    up.add_argument("--stt-health-port", type=int, default=8081, help="first STT worker; 0 = any")
    up.add_argument("--translation-health-port", type=int, default=8082, help="first one; 0 = any")
    up.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for /ready")
    up.set_defaults(func=_up)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
