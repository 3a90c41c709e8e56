"""``python -m gateway``: run the WebSocket gateway."""

from __future__ import annotations

from common.lifecycle import service_main
from common.settings import GatewaySettings
from gateway.service import GatewayService


def main() -> None:
    service_main("gateway", GatewaySettings, GatewayService)


if __name__ == "__main__":
    main()
