"""``python -m stt_worker``: resolve the model (offline first), then run the worker."""

from __future__ import annotations

import logging
import sys

from common.lifecycle import service_main
from common.settings import SttSettings
from stt_worker.models import ModelUnavailableError, resolve_model
from stt_worker.worker import SttWorker

log = logging.getLogger("stt_worker")


def build(settings: SttSettings) -> SttWorker:
    try:
        resolved = resolve_model(settings.model_size, settings.model_cache_dir)
    except ModelUnavailableError as exc:
        # One line for a person, no traceback: what to install or set.
        sys.exit(f"stt_worker: {exc}")
    log.info("model %s from %s", settings.model_size, resolved.source)
    return SttWorker(settings, resolved.path_or_name)


def main() -> None:
    service_main("stt_worker", SttSettings, build)


if __name__ == "__main__":
    main()
