"""What a Redis holds, and whether every per-session key will expire by itself.

A soak (``demo_client.py --soak``) and the tests call :func:`audit_keys` after sessions
end: a key whose name starts with one of :data:`common.bus.PER_SESSION_KEY_PREFIXES` and has
no TTL is a leak (it would stay for ever, one per session). Keys without a TTL that are not
per session (the job streams, ``dead_letters``) are listed apart: they are bounded by
MAXLEN or trimming, not by expiry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from common import bus


@dataclass(frozen=True)
class KeyAudit:
    """Keys by prefix, per-session keys without TTL, and the server's memory."""

    total_keys: int
    used_memory_bytes: int
    by_prefix: dict[str, int] = field(default_factory=dict)
    session_keys: int = 0
    session_keys_without_ttl: tuple[str, ...] = ()
    other_keys_without_ttl: tuple[str, ...] = ()
    longest_session_ttl_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.session_keys_without_ttl

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_keys": self.total_keys,
            "used_memory_bytes": self.used_memory_bytes,
            "by_prefix": self.by_prefix,
            "session_keys": self.session_keys,
            "session_keys_without_ttl": list(self.session_keys_without_ttl),
            "other_keys_without_ttl": list(self.other_keys_without_ttl),
            "longest_session_ttl_seconds": self.longest_session_ttl_seconds,
        }


def _prefix(name: str) -> str:
    return name.split(":", 1)[0] + ":" if ":" in name else name


async def audit_keys(redis: aioredis.Redis, *, scan_count: int = 500) -> KeyAudit:
    """SCAN every key (never KEYS: it blocks the server) and PTTL each one."""
    names: list[str] = []
    async for raw in redis.scan_iter(count=scan_count):
        names.append(raw.decode() if isinstance(raw, bytes) else str(raw))
    ttls: list[int] = []
    for start in range(0, len(names), scan_count):
        async with redis.pipeline(transaction=False) as pipe:
            for name in names[start : start + scan_count]:
                pipe.pttl(name)
            ttls.extend(int(t) for t in await pipe.execute())
    prefixes: Counter[str] = Counter()
    session_no_ttl: list[str] = []
    other_no_ttl: list[str] = []
    session_keys = 0
    longest = 0
    for name, ttl in zip(names, ttls, strict=True):
        prefixes[_prefix(name)] += 1
        per_session = name.startswith(bus.PER_SESSION_KEY_PREFIXES)
        if ttl == -2:  # expired between SCAN and PTTL
            continue
        if per_session:
            session_keys += 1
            if ttl == -1:
                session_no_ttl.append(name)
            else:
                longest = max(longest, ttl)
        elif ttl == -1:
            other_no_ttl.append(name)
    info = await redis.info("memory")
    return KeyAudit(
        total_keys=len(names),
        used_memory_bytes=int(info.get("used_memory", 0)),
        by_prefix=dict(prefixes.most_common()),
        session_keys=session_keys,
        session_keys_without_ttl=tuple(sorted(session_no_ttl)),
        other_keys_without_ttl=tuple(sorted(other_no_ttl)),
        longest_session_ttl_seconds=longest / 1000,
    )
