"""Session state in Redis, so any gateway instance can resume a session, and only its owner.

``session:{id}`` is a hash (config, owner, resume-secret hash, the holding connection, next
utterance index, next seq, delivery floor, last final text) and ``session_log:{id}`` a capped
stream of the seq-numbered results sent (finals, translations, their errors); both expire
``SESSION_TTL_SECONDS`` after the last write.

One writer at a time: the hash names the connection that holds the session (``holder``).
Every write is a Lua script that first checks it is still the holder, so after a resume has
claimed the session (:meth:`SessionStore.claim`, atomic) a write of the old holder that was
already on its way is refused instead of landing after the new holder read the counters.

Resume is bound to the owner: with auth on, the token subject that created the session; with
auth off, whoever holds the session's resume secret, given once in ``ready``. Only a SHA-256
of the secret is stored; the secret itself is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
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

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class StoredSession:
    session_id: str
    config: SessionConfig
    owner: str  # the token subject with auth on, "" with auth off
    secret_hash: str
    next_seq: int
    next_utterance: int
    delivered_below: int  # every final below this index was sent (or given up on)
    last_final: str

    def owned_by(self, subject: str | None, secret: str | None) -> bool:
        """Whether a resume by this subject / with this secret may take the session."""
        if self.owner:
            return subject == self.owner
        if subject is not None or not secret:
            return False
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# KEYS: session hash, session log. ARGV: holder, ttl, log maxlen, n, then n (seq, message)
# pairs for the log, then field/value pairs for the hash. Several writes queued together (a
# final and the turn's end) go as one call: one script run per release, not per message.
_WRITE = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[4])
local fields = 5 + 2 * n
if #ARGV >= fields then redis.call('HSET', KEYS[1], unpack(ARGV, fields)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 0, n - 1 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'seq', ARGV[5 + 2 * i], 'msg', ARGV[6 + 2 * i])
end
if n > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: session hash. ARGV: new holder, ttl. The whole hash after the claim, or nil.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'holder', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


class SessionStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int, log_maxlen: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._maxlen = log_maxlen
        self._write = redis.register_script(_WRITE)
        self._claim = redis.register_script(_CLAIM)

    async def create(
        self, session_id: str, holder: str, config: SessionConfig, *, owner: str, secret: str
    ) -> None:
        key = bus.session_key(session_id)
        now = f"{time.time():.3f}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "config": config.to_json(), "owner": owner, "secret_hash": hash_secret(secret),
                "holder": holder, "next_seq": 1, "next_utterance": 0, "delivered_below": 0,
                "last_final": "", "created_at": now,
            })
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def load(self, session_id: str) -> StoredSession | None:
        return _parse(session_id, await self._redis.hgetall(bus.session_key(session_id)))

    async def claim(self, session_id: str, holder: str) -> StoredSession | None:
        """Make ``holder`` the only writer (the previous holder's writes are refused from now
        on) and return the state as it stands at that instant; None if the session is gone."""
        raw = await self._claim(keys=[bus.session_key(session_id)], args=[holder, self._ttl])
        if not raw:
            return None
        return _parse(session_id, dict(zip(raw[::2], raw[1::2], strict=True)))

    async def take_over(
        self, session_id: str, holder: str, subject: str | None, secret: str | None
    ) -> tuple[StoredSession, list[dict[str, Any]]] | None:
        """Claim the session for ``holder`` if ``subject`` / ``secret`` owns it; its state and
        whole log as they stand at the claim. None (nothing touched) for anyone else."""
        stored = await self.load(session_id)
        if stored is None or not stored.owned_by(subject, secret):
            return None
        claimed = await self.claim(session_id, holder)
        return None if claimed is None else (claimed, await self.log(session_id))

    async def write(
        self, session_id: str, holder: str, fields: dict[str, Any], message: dict[str, Any] | None = None
    ) -> bool:
        """Update the hash and, if given, append a sent ``message`` (with its seq) to the log;
        False (nothing written) if ``holder`` no longer holds the session."""
        keys, args = self._write_args(session_id, holder, fields, () if message is None else (message,))
        return bool(await self._write(keys=keys, args=args))

    def queue_write(
        self, pipe: Any, session_id: str, holder: str, fields: dict[str, Any],
        messages: Sequence[dict[str, Any]] = (),
    ) -> None:
        """:meth:`write` queued on a (single-node) pipeline, for any number of sent ``messages``
        (logged in order); its reply is 1, or 0 when fenced.

        By the script's hash alone: redis-py's own script support would check that the script
        is loaded (one more round trip) on every execute. After a Redis restart the pipeline
        answers NOSCRIPT and the caller writes through :meth:`write`, which loads it again.
        """
        keys, args = self._write_args(session_id, holder, fields, messages)
        pipe.evalsha(self._write.sha, len(keys), *keys, *args)

    def _write_args(
        self, session_id: str, holder: str, fields: dict[str, Any], messages: Sequence[dict[str, Any]]
    ) -> tuple[list[str], list[Any]]:
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, value.to_json() if isinstance(value, SessionConfig) else value]
        logged: list[Any] = []
        for message in messages:
            logged += [message["seq"], bus.dumps(message)]
        keys = [bus.session_key(session_id), bus.session_log_key(session_id)]
        return keys, [holder, self._ttl, self._maxlen, len(messages), *logged, *flat]

    async def log(self, session_id: str) -> list[dict[str, Any]]:
        """Every logged message, in seq order, each seq once (a retried write may repeat one)."""
        entries: Any = await self._redis.xrange(bus.session_log_key(session_id), "-", "+")
        by_seq: dict[int, dict[str, Any]] = {}
        for _id, fields in entries or []:
            data = {_s(k): v for k, v in fields.items()}
            try:
                by_seq.setdefault(int(_s(data["seq"])), json.loads(_s(data["msg"])))
            except (KeyError, ValueError):
                continue
        return [by_seq[seq] for seq in sorted(by_seq)]


def _parse(session_id: str, raw: Any) -> StoredSession | None:
    if not raw:
        return None
    data = {_s(k): _s(v) for k, v in raw.items()}
    try:
        return StoredSession(
            session_id=session_id,
            config=SessionConfig(**json.loads(data["config"])),
            owner=data.get("owner", ""),
            secret_hash=data.get("secret_hash", ""),
            next_seq=int(data.get("next_seq", 1)),
            next_utterance=int(data.get("next_utterance", 0)),
            delivered_below=int(data.get("delivered_below", 0)),
            last_final=data.get("last_final", ""),
        )
    except (KeyError, ValueError, TypeError):
        return None  # a damaged record is as good as an expired one
