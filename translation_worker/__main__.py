"""``python -m translation_worker``: run the translation worker (up even without a model)."""

from __future__ import annotations

from common.lifecycle import service_main
from common.settings import TranslationSettings
from translation_worker.worker import TranslationWorker


def main() -> None:
    service_main("translation_worker", TranslationSettings, TranslationWorker)


if __name__ == "__main__":
    main()
