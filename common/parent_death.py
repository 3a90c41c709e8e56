"""Child processes that end with the process that started them.

The supervisor (``speech-pipeline up``) and :class:`~common.embedded_redis.EmbeddedRedis` start
children that hold ports: services, and ``redis-server``. When their owner ends normally it
stops them; when it is SIGKILLed (or the OOM killer takes it) they used to run on, and the next
start failed on a port in use, or a test run left servers behind. On Linux the kernel can send
the child a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); :func:`preexec` asks
for SIGTERM, which every service and ``redis-server`` treat as a graceful stop.

The signal comes when the *thread* that forked the child ends, not the process, so it is only
requested from the main thread (:func:`preexec` returns None elsewhere: that child is then
stopped the ordinary way only). Elsewhere than Linux nothing is requested.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded before any fork: the child only calls into it


def preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this thread ends, or None
    where that cannot be asked for (not Linux, or not the main thread)."""
    libc = _LIBC
    if libc is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = libc.prctl, os.getpid()

    def request() -> None:
        # Between fork and exec, so as little as possible: one foreign call on a function looked
        # up before the fork, with small ints (ctypes allocates, if at all, through Python's
        # allocator, held with the GIL by this thread). A failure leaves the child as before.
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: it will never fire
            os._exit(1)

    return request
