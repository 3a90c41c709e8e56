"""Small shims for the Python versions the project supports (3.10 to 3.12)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # redis-py depends on async-timeout below 3.11.3
    from async_timeout import timeout

__all__ = ["timeout"]
