"""Service lifecycle: ``startup`` / ``main_loop`` / ``shutdown``, and signal handling.

The first SIGTERM or SIGINT asks for a graceful stop: the service stops taking new work,
finishes what is in flight and shuts down. A second signal forces: the main loop is cancelled
and shutdown runs with what it has. A repeat within ``repeat_grace`` seconds of the first is
the same request, not a second one: the kernel's parent-death signal (common/parent_death.py)
can come once per thread of a dying parent. A service that hangs in shutdown past its budget
is left by the process exiting non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from common.settings import CommonSettings

log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """A service cannot start as configured (insecure bind, Redis unreachable, ...): the
    message says why and what to change; it is logged as one line, without a traceback."""


class Service(ABC):
    """A long-running process: start resources, loop until stopped, release them."""

    name: str = "service"

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._forced = False

    @abstractmethod
    async def startup(self) -> None:
        """Acquire resources and start listening. Raise to abort the start."""

    @abstractmethod
    async def main_loop(self) -> None:
        """Run until ``self.stopping`` is set, then return."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Finish or hand back in-flight work and release resources. Safe to call twice."""

    def request_stop(self) -> None:
        if self.stopping.is_set():
            self._forced = True
        self.stopping.set()

    @property
    def forced(self) -> bool:
        return self._forced


async def serve(service: Service, *, shutdown_timeout: float = 10.0, repeat_grace: float = 0.5) -> int:
    """Run a service with signal handling; returns the process exit code."""
    loop = asyncio.get_running_loop()
    main_task: asyncio.Task[None] | None = None
    first_signal: float | None = None  # when the graceful stop was asked for

    def on_signal(signum: int) -> None:
        nonlocal first_signal
        if first_signal is not None and loop.time() - first_signal < repeat_grace:
            log.debug("%s again at once: the same request", signal.Signals(signum).name)
            return
        if service.stopping.is_set():
            log.warning("second %s: forcing shutdown", signal.Signals(signum).name)
            service.request_stop()
            if main_task is not None:
                main_task.cancel()
        else:
            log.info("%s: stopping gracefully (send again to force)", signal.Signals(signum).name)
            first_signal = loop.time()
            service.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    code = 0
    try:
        await service.startup()
        main_task = asyncio.create_task(service.main_loop(), name=f"{service.name}-main")
        await main_task
    except asyncio.CancelledError:
        if not service.forced:
            raise
    except StartupRefused as exc:
        log.error("%s cannot start: %s", service.name, exc)
        code = 2
    except Exception:
        log.exception("%s failed", service.name)
        code = 1
    finally:
        try:
            await asyncio.wait_for(service.shutdown(), shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("%s shutdown exceeded %.0fs; exiting anyway", service.name, shutdown_timeout)
            code = code or 1
        except Exception:
            log.exception("%s shutdown failed", service.name)
            code = code or 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("%s stopped", service.name)
    return code


def run(service: Service, *, shutdown_timeout: float = 10.0) -> None:
    """Entry point of a service's ``__main__``: run it and exit with its code."""
    sys.exit(asyncio.run(serve(service, shutdown_timeout=shutdown_timeout)))


S = TypeVar("S", bound="CommonSettings")


def service_main(name: str, settings_class: Callable[[], S], build: Callable[[S], Service]) -> None:
    """A service's ``main``: read and validate its settings (one line on error, no traceback,
    no input echoed), set up logging, build the service and run it until stopped."""
    from pydantic import ValidationError

    from common.logs import setup_logging

    try:
        settings = settings_class()
    except ValidationError as exc:
        sys.exit(f"{name}: invalid settings: {exc}")
    setup_logging(settings.log_level, settings.log_format, service=name)
    from common.errors import setup_error_reports
    from common.tracing import setup_tracing

    setup_tracing(name, settings.otel_exporter_otlp_endpoint)
    if settings.sentry_dsn is not None:
        setup_error_reports(settings.sentry_dsn.get_secret_value(), service=name)
    run(build(settings), shutdown_timeout=settings.shutdown_timeout_seconds)
