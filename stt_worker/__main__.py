"""``python -m stt_worker``: resolve the model (offline first), then run the worker."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from common.lifecycle import run
from common.logs import setup_logging
from common.settings import SttSettings
from stt_worker.models import ModelUnavailableError, resolve_model
from stt_worker.worker import SttWorker

log = logging.getLogger("stt_worker")


def main() -> None:
    try:
        settings = SttSettings()
    except ValidationError as exc:
        sys.exit(f"stt_worker: invalid settings: {exc}")
    setup_logging(settings.log_level, settings.log_format, service="stt_worker")
    try:
        resolved = resolve_model(settings.model_size, settings.model_cache_dir)
    except ModelUnavailableError as exc:
        # One line for a person, no traceback: what to install or set.
        sys.exit(f"stt_worker: {exc}")
    log.info("model %s from %s", settings.model_size, resolved.source)
    run(SttWorker(settings, resolved.path_or_name), shutdown_timeout=settings.shutdown_timeout_seconds)


if __name__ == "__main__":
    main()
