"""A QThread hosting the asyncio loop that runs audio capture and the WebSocket client.

The GUI thread only emits requests (thread-safe, via ``call_soon_threadsafe``) and receives
Qt signals, which Qt queues onto the GUI thread; nothing here ever blocks the GUI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QThread, pyqtSignal

from client_gui.audio_sources import AudioSource, AudioSourceError
from client_gui.stream_client import ClientOptions, ConnectionState, StreamClient
from speech_client.protocol import ServerMessage

log = logging.getLogger(__name__)


class _SignalListener:
    def __init__(self, worker: StreamWorker) -> None:
        self._worker = worker

    def on_state(self, state: ConnectionState, detail: str) -> None:
        self._worker.state_changed.emit(state.value, detail)

    def on_message(self, message: ServerMessage) -> None:
        self._worker.message_received.emit(message)

    def on_error(self, text: str) -> None:
        self._worker.error.emit(text)


class StreamWorker(QThread):
    """Runs one :class:`StreamClient` session; the source is opened on this thread."""

    message_received = pyqtSignal(object)  # a protocol.ServerMessage
    state_changed = pyqtSignal(str, str)  # ConnectionState value, detail
    error = pyqtSignal(str)

    def __init__(self, options: ClientOptions, source_factory: Callable[[], AudioSource]) -> None:
        super().__init__()
        self._options = options
        self._source_factory = source_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: StreamClient | None = None
        self._stop_requested = False
        # Config changes made before the client exists are applied when it is created.
        self._pending_config: dict[str, Any] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            self._loop = None
            loop.close()

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        listener = _SignalListener(self)
        try:
            source = self._source_factory()
        except AudioSourceError as exc:
            self.error.emit(str(exc))
            self.state_changed.emit(ConnectionState.STOPPED.value, "")
            return
        self._client = StreamClient(self._options, source, listener)
        if self._pending_config:
            await self._client.update_config(**self._pending_config)
        if self._stop_requested:
            self._client.stop()
        try:
            await self._client.run()
        except asyncio.CancelledError:
            log.info("streaming aborted")
        except Exception as exc:
            log.exception("streaming failed")
            self.error.emit(f"Streaming failed: {exc}")
            self.state_changed.emit(ConnectionState.STOPPED.value, "")

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def send_config(self, **fields: Any) -> None:
        """Thread-safe: send a ``config`` update (e.g. languages) on the open connection."""
        self._pending_config.update(fields)

        def schedule() -> None:
            if self._client is not None:
                task = asyncio.ensure_future(self._client.update_config(**fields))
                self._tasks.add(task)  # keep a reference until it is done
                task.add_done_callback(self._tasks.discard)

        self._call(schedule)

    def request_stop(self) -> None:
        """Thread-safe: stop capture, finish pending results, close. Returns at once."""
        self._stop_requested = True

        def stop() -> None:
            if self._client is not None:
                self._client.stop()

        self._call(stop)

    def abort(self) -> None:
        """Thread-safe: cancel at once, without waiting for pending results (on exit)."""

        def cancel() -> None:
            if self._task is not None:
                self._task.cancel()

        self._call(cancel)
