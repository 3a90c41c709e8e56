"""``python -m client_gui`` (and the ``speech-client-gui`` console script, which calls ``main``)."""

from __future__ import annotations

from client_gui.app import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
