"""``serve``'s signal handling: the first SIGTERM stops gracefully, a later one forces, and a
repeat that comes at once (the kernel's parent-death signal, once per thread of a dying
parent) is the same request."""

from __future__ import annotations

import os
import signal

from common.lifecycle import Service, serve


class TwoSignals(Service):
    """Sends itself SIGTERM twice in a row, then waits to be stopped."""

    name = "two-signals"

    def __init__(self) -> None:
        super().__init__()
        self.finished = False
        self.shut_down = False

    async def startup(self) -> None:
        pass

    async def main_loop(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        await self.stopping.wait()
        self.finished = True

    async def shutdown(self) -> None:
        self.shut_down = True


async def test_a_repeat_at_once_is_the_same_graceful_request() -> None:
    service = TwoSignals()
    assert await serve(service, shutdown_timeout=5) == 0
    assert service.finished and service.shut_down
    assert not service.forced


async def test_a_second_signal_after_the_grace_forces() -> None:
    service = TwoSignals()
    assert await serve(service, shutdown_timeout=5, repeat_grace=0.0) == 0
    assert service.forced  # the main loop was cancelled, shutdown still ran
    assert not service.finished and service.shut_down
