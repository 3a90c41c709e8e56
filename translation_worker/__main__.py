"""``python -m translation_worker``: run the translation worker (up even without a model)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from common.lifecycle import run
from common.logs import setup_logging
from common.settings import TranslationSettings
from translation_worker.worker import TranslationWorker


def main() -> None:
    try:
        settings = TranslationSettings()
    except ValidationError as exc:
        sys.exit(f"translation_worker: invalid settings: {exc}")
    setup_logging(settings.log_level, settings.log_format, service="translation_worker")
    run(TranslationWorker(settings), shutdown_timeout=settings.shutdown_timeout_seconds)


if __name__ == "__main__":
    main()
