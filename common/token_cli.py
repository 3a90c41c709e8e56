"""``speech-pipeline token``: mint a client token with the configured key (development, tests).

It reads the same environment as the services (``JWT_SECRET``, or ``JWT_PRIVATE_KEY_FILE``
for RS256/ES256, and ``JWT_AUDIENCE``/``JWT_ISSUER``) and prints one token on stdout, so
``TOKEN=$(speech-pipeline token --subject alice --ttl 3600)`` works in a shell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from common.auth import mint_token
from common.security_settings import SecuritySettings

SettingsFactory = Callable[[], SecuritySettings]


def _positive(value: str) -> float:
    seconds = float(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


def _errors(exc: ValidationError) -> str:
    # Input values are never shown (they may be secrets): each line names a variable.
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]).upper()
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def run_token(args: argparse.Namespace, settings_factory: SettingsFactory = SecuritySettings) -> int:
    """Print a token for ``args.subject``; 2 with a message on stderr when it cannot."""
    try:
        settings = settings_factory()
    except ValidationError as exc:
        sys.stderr.write(f"speech-pipeline token: invalid settings: {_errors(exc)}\n")
        return 2
    claims: dict[str, Any] = {}
    if args.audience:
        claims["aud"] = args.audience
    if args.issuer:
        claims["iss"] = args.issuer
    try:
        token = mint_token(settings, args.subject, args.ttl, **claims)
    except ValueError as exc:
        sys.stderr.write(f"speech-pipeline token: {exc}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0


def add_token_command(
    subparsers: Any, settings_factory: SettingsFactory = SecuritySettings
) -> argparse.ArgumentParser:
    """Register ``token`` on the ``speech-pipeline`` subparsers; ``args.func(args)`` runs it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "token",
        help="print a client token signed with the configured key (development and tests)",
        description=__doc__,
    )
    parser.add_argument("--subject", required=True, help="the sub claim: who the token is for")
    parser.add_argument("--ttl", type=_positive, default=3600.0, metavar="SECONDS",
                        help="seconds until the token expires (default 3600)")
    parser.add_argument("--audience", default=None, help="aud claim (default: JWT_AUDIENCE)")
    parser.add_argument("--issuer", default=None, help="iss claim (default: JWT_ISSUER)")
    parser.set_defaults(func=lambda args: run_token(args, settings_factory))
    return parser
