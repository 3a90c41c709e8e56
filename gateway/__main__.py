"""``python -m gateway``: run the WebSocket gateway."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from common.lifecycle import run
from common.logs import setup_logging
from common.settings import GatewaySettings
from gateway.service import GatewayService


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        sys.exit(f"gateway: invalid settings: {exc}")
    setup_logging(settings.log_level, settings.log_format, service="gateway")
    run(GatewayService(settings), shutdown_timeout=settings.shutdown_timeout_seconds)


if __name__ == "__main__":
    main()
