"""Session state in Redis, so any gateway instance can resume a session.

``session:{id}`` is a hash (config, next seq, next utterance index, owner gateway, times) and
``session_log:{id}`` a capped stream of the finals and translations sent, each with its seq;
both expire ``SESSION_TTL_SECONDS`` after the last write. A reconnecting client names its
session and the last seq it saw; the new gateway replays every logged result after it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from common import bus


@dataclass
class SessionConfig:
    source_language: str | None = None  # None = detect ("auto")
    source_languages: list[str] | None = None  # narrows SOURCE_LANGUAGES for detection
    target_language: str | None = None
    sample_rate: int = 16000
    partials: bool = True
    word_timestamps: bool = False


@dataclass
class StoredSession:
    session_id: str
    config: SessionConfig
    next_seq: int
    next_utterance: int
    gateway: str
    last_final: str


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SessionStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int, log_maxlen: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._maxlen = log_maxlen

    async def save(
        self, session_id: str, config: SessionConfig, *, next_seq: int, next_utterance: int,
        gateway: str, last_final: str = "",
    ) -> None:
        key = bus.session_key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "config": json.dumps(asdict(config)),
                    "next_seq": next_seq,
                    "next_utterance": next_utterance,
                    "gateway": gateway,
                    "last_final": last_final,
                    "updated_at": f"{time.time():.3f}",
                },
            )
            pipe.hsetnx(key, "created_at", f"{time.time():.3f}")
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def load(self, session_id: str) -> StoredSession | None:
        raw = await self._redis.hgetall(bus.session_key(session_id))
        if not raw:
            return None
        data = {_s(k): _s(v) for k, v in raw.items()}
        try:
            config = SessionConfig(**json.loads(data["config"]))
            return StoredSession(
                session_id=session_id,
                config=config,
                next_seq=int(data["next_seq"]),
                next_utterance=int(data["next_utterance"]),
                gateway=data.get("gateway", ""),
                last_final=data.get("last_final", ""),
            )
        except (KeyError, ValueError, TypeError):
            return None  # a damaged record is as good as an expired one

    async def record(
        self, session_id: str, message: dict[str, Any], *, next_seq: int, next_utterance: int,
        last_final: str | None = None,
    ) -> None:
        """Append a sent final/translation to the log and advance the stored counters."""
        key = bus.session_key(session_id)
        log_key = bus.session_log_key(session_id)
        fields: dict[Any, Any] = {"next_seq": next_seq, "next_utterance": next_utterance}
        if last_final is not None:
            fields["last_final"] = last_final
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(log_key, {"seq": message["seq"], "msg": bus.dumps(message)},
                      maxlen=self._maxlen, approximate=True)
            pipe.expire(log_key, self._ttl)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def touch(self, session_id: str, *, next_seq: int, next_utterance: int) -> None:
        key = bus.session_key(session_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"next_seq": next_seq, "next_utterance": next_utterance})
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def replay(self, session_id: str, after_seq: int) -> list[dict[str, Any]]:
        """Logged messages with seq > ``after_seq``, in order."""
        entries: Any = await self._redis.xrange(bus.session_log_key(session_id), "-", "+")
        out: list[dict[str, Any]] = []
        for _id, fields in entries or []:
            data = {_s(k): v for k, v in fields.items()}
            try:
                seq = int(_s(data["seq"]))
                if seq > after_seq:
                    out.append(json.loads(_s(data["msg"])))
            except (KeyError, ValueError):
                continue
        return out
