"""``python -m transcript_store``: run the transcript store (``transcripts`` into the database)."""

from __future__ import annotations

from common.lifecycle import service_main
from common.settings import StoreSettings
from transcript_store.service import TranscriptStoreService


def main() -> None:
    service_main("transcript_store", StoreSettings, TranscriptStoreService)


if __name__ == "__main__":
    main()
