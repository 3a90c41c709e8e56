"""Optional EasyNMT engine, for the seed's ``EASYNMT_MODEL=opus-mt`` setting.

``easynmt`` pulls in torch and downloads its models at first use, so it is an optional extra
that nothing here needs to run or test; it is imported only when this engine is built.
"""

from __future__ import annotations

import logging
from typing import Any

from translation_worker.engines.base import BatchingEngine
from translation_worker.languages import is_known_language, opus_mt_code

log = logging.getLogger(__name__)


class EasyNmtNotInstalled(RuntimeError):
    """``TRANSLATION_ENGINE=easynmt`` without the extra installed."""


class EasyNMTEngine(BatchingEngine):
    """Wraps ``easynmt.EasyNMT(model_name).translate`` behind the engine interface."""

    kind = "easynmt"

    def __init__(self, model_name: str = "opus-mt", device: str | None = None, batch_size: int = 16) -> None:
        try:
            from easynmt import EasyNMT
        except ImportError as exc:
            raise EasyNmtNotInstalled(
                "TRANSLATION_ENGINE=easynmt needs the optional extra: pip install easynmt"
            ) from exc
        self.model_name = model_name
        self.batch_size = batch_size
        self._model: Any = EasyNMT(model_name, device=device)

    def supports(self, source: str | None, target: str | None) -> bool:
        return is_known_language(source) and is_known_language(target)

    def _translate_group(self, source: str, target: str, texts: list[str]) -> list[str]:
        translated = self._model.translate(
            texts,
            source_lang=opus_mt_code(source),
            target_lang=opus_mt_code(target),
            batch_size=self.batch_size,
            show_progress_bar=False,
        )
        return [str(t) for t in translated]

    def close(self) -> None:
        self._model = None
