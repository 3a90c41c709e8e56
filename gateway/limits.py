"""Abuse limits of the gateway; each refusal names its limit with a stable code.

- :class:`IpRateLimiter`: connection attempts per client IP per minute (sliding window).
- :class:`AuthFailureTracker`: failed authentications per IP; too many lock the IP out.
- :class:`PendingAuthLimiter`: connections per IP that are open but not yet authenticated
  (they wait for a first ``auth`` message).
  All three are pure, in memory and per gateway instance (a client spread over N gateways
  gets N times the allowance); the clock is injectable.
- :class:`SubjectSessions`: concurrent sessions per token subject, across every gateway
  (a Redis sorted set per subject, members expire unless renewed, so a crashed gateway's
  sessions free themselves).
- :class:`AudioQuota` / :class:`AudioMeter`: seconds of audio per subject per minute, across
  every gateway (``INCRBYFLOAT`` on a per-minute key with a TTL). A meter batches a
  connection's frames so Redis sees about one call a second, not one per frame.
- :class:`HandshakeGuard`: the admission decision of a WebSocket handshake (lockout, IP
  rate, token), pure and synchronous so ``process_request`` stays a few lines.

The Redis-backed limits fail open when Redis is unreachable: the gateway cannot queue audio
then anyway, and refusing every client for a Redis blip would be worse.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from common import bus
from common.auth import AuthError, Claims, TokenVerifier, extract_token
from common.redis_conn import RETRYABLE
from common.security_settings import SecuritySettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]

RATE_LIMITED_IP = "rate_limited_ip"
LOCKED_OUT = "locked_out"
TOO_MANY_SESSIONS = "too_many_sessions_for_subject"
TOO_MANY_UNAUTHENTICATED = "too_many_unauthenticated"
AUDIO_QUOTA_EXCEEDED = "audio_quota_exceeded"

# Key names live with every other Redis name, in common/bus.py.
sessions_key = bus.limit_sessions_key
audio_key = bus.limit_audio_key


@dataclass(frozen=True)
class Refusal:
    """Why a client is refused: ``code`` for programs, ``message`` for people.

    ``http_status`` is for a refusal during the WebSocket handshake; ``close_code`` for one
    after it (1008 policy violation, 1013 try again later).
    """

    code: str
    message: str
    retry_after: float | None = None
    http_status: int = 429
    close_code: int = 1008

    def retry_after_header(self) -> dict[str, str]:
        """``Retry-After`` for an HTTP refusal, when the wait is known."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class IpRateLimiter:
    """At most ``per_minute`` connection attempts per IP in any 60 s window (per gateway)."""

    def __init__(self, per_minute: int, *, clock: Clock = time.monotonic, max_ips: int = 100_000,
                 window_seconds: float = 60.0) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        self.window = window_seconds
        self._clock = clock
        self._max_ips = max_ips  # bounds memory under a flood of spoofed-looking sources
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, ip: str) -> Refusal | None:
        """Count one attempt from ``ip``; a :class:`Refusal` when over the limit.

        Refused attempts are not counted, so a client that backs off recovers one window later.
        """
        now = self._clock()
        cutoff = now - self.window
        self._forget_idle(cutoff)
        attempts = self._attempts.get(ip)
        if attempts is None:
            attempts = deque()
            self._attempts[ip] = attempts
            self._evict()
        else:
            self._attempts.move_to_end(ip)
        while attempts and attempts[0] <= cutoff:
            attempts.popleft()
        if len(attempts) >= self.per_minute:
            retry = attempts[0] + self.window - now
            return Refusal(RATE_LIMITED_IP,
                           f"more than {self.per_minute} connection attempts a minute from this address",
                           retry_after=retry, http_status=429, close_code=1008)
        attempts.append(now)
        return None

    def _forget_idle(self, cutoff: float) -> None:
        """Drop IPs with no attempt in the window: the least recently seen come first, so this
        stops at the first one still active (amortised O(1) a call). Without it every client
        address ever seen stays until ``max_ips`` of them pile up."""
        while self._attempts:
            ip, attempts = next(iter(self._attempts.items()))
            if attempts and attempts[-1] > cutoff:
                return
            del self._attempts[ip]

    def _evict(self) -> None:
        while len(self._attempts) > self._max_ips:
            self._attempts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._attempts)


@dataclass
class _Failures:
    times: deque[float]
    locked_until: float = 0.0


class AuthFailureTracker:
    """``max_failures`` failed authentications from one IP within ``lockout_seconds`` lock it
    out for ``lockout_seconds`` (per gateway). A success clears the IP's count."""

    def __init__(self, max_failures: int, lockout_seconds: float, *, clock: Clock = time.monotonic,
                 max_ips: int = 100_000) -> None:
        if max_failures < 1 or lockout_seconds <= 0:
            raise ValueError("max_failures must be >= 1 and lockout_seconds > 0")
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._max_ips = max_ips
        self._ips: OrderedDict[str, _Failures] = OrderedDict()

    def check(self, ip: str) -> Refusal | None:
        """A ``locked_out`` refusal while ``ip`` is locked out; check before verifying a token."""
        now = self._clock()
        self._forget_idle(now)
        entry = self._ips.get(ip)
        if entry is None:
            return None
        if entry.locked_until > now:
            return Refusal(LOCKED_OUT, "too many failed authentications from this address; try later",
                           retry_after=entry.locked_until - now, http_status=429, close_code=1008)
        if entry.locked_until and not entry.times:
            del self._ips[ip]  # the lockout is over and nothing else is remembered
        return None

    def _forget_idle(self, now: float) -> None:
        """Drop the least recently failing IPs whose failures and lockout are all over (stops at
        the first one still remembered for a reason), so one bad token from each of many
        clients is not kept until ``max_ips`` pile up."""
        cutoff = now - self.lockout_seconds
        while self._ips:
            ip, entry = next(iter(self._ips.items()))
            if entry.locked_until > now or (entry.times and entry.times[-1] > cutoff):
                return
            del self._ips[ip]

    def __len__(self) -> int:
        return len(self._ips)

    def record_failure(self, ip: str) -> Refusal | None:
        """Count a failed authentication; the ``locked_out`` refusal when this one locks ``ip``."""
        now = self._clock()
        entry = self._ips.get(ip)
        if entry is None:
            entry = _Failures(deque())
            self._ips[ip] = entry
            while len(self._ips) > self._max_ips:
                self._ips.popitem(last=False)
        else:
            self._ips.move_to_end(ip)
        cutoff = now - self.lockout_seconds
        while entry.times and entry.times[0] <= cutoff:
            entry.times.popleft()
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.times.clear()
            entry.locked_until = now + self.lockout_seconds
            log.warning("locking out %s for %.0fs after %d failed authentications",
                        ip, self.lockout_seconds, self.max_failures)
            return self.check(ip)
        return None

    def record_success(self, ip: str) -> None:
        entry = self._ips.get(ip)
        if entry is not None and entry.locked_until <= self._clock():
            del self._ips[ip]


# Atomic acquire: drop expired members (score = expiry on the server's clock), then add
# this session unless the subject already holds `limit` others. Server time, not the
# gateways' clocks, so instances with skewed clocks agree.
_ACQUIRE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key, member = KEYS[1], ARGV[1]
local limit, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, member) and redis.call('ZCARD', key) >= limit then
  return -1
end
redis.call('ZADD', key, now + ttl, member)
redis.call('EXPIRE', key, math.ceil(ttl) + 1)
return redis.call('ZCARD', key)
"""

_RENEW = """
redis.replicate_commands()
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 1)
return 1
"""


class SubjectSessions:
    """At most ``limit`` concurrent sessions per subject across every gateway.

    A session holds a slot from :meth:`acquire` to :meth:`release`; a holder renews it
    (:meth:`renew`) more often than ``ttl_seconds`` so that a gateway that dies without
    releasing frees its slots within ``ttl_seconds``.
    """

    def __init__(self, redis: aioredis.Redis, limit: int, ttl_seconds: float = 60.0) -> None:
        if limit < 1 or ttl_seconds <= 0:
            raise ValueError("limit must be >= 1 and ttl_seconds > 0")
        self.redis = redis
        self.limit = limit
        self.ttl = ttl_seconds
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def acquire(self, subject: str, session_id: str) -> Refusal | None:
        """Take a slot for ``session_id``; a refusal when ``subject`` holds ``limit`` already."""
        try:
            held = int(await self._acquire(keys=[sessions_key(subject)], args=[session_id, self.limit, self.ttl]))
        except RETRYABLE as exc:
            log.warning("session limit unchecked (Redis unavailable): %s", exc)
            return None
        if held < 0:
            return Refusal(TOO_MANY_SESSIONS, f"this subject already has {self.limit} sessions open",
                           http_status=429, close_code=1008)
        return None

    async def renew(self, subject: str, session_id: str) -> bool:
        """Extend the slot; False if it had expired (the caller may acquire again)."""
        try:
            return bool(await self._renew(keys=[sessions_key(subject)], args=[session_id, self.ttl]))
        except RETRYABLE as exc:
            log.warning("session slot not renewed (Redis unavailable): %s", exc)
            return True

    async def release(self, subject: str, session_id: str) -> None:
        try:
            await self.redis.zrem(sessions_key(subject), session_id)
        except RETRYABLE as exc:
            log.warning("session slot not released (expires by itself): %s", exc)

    async def count(self, subject: str) -> int:
        """Sessions the subject holds now (expired slots included until the next acquire)."""
        return int(await self.redis.zcard(sessions_key(subject)))


# Add unless it would pass the limit; the key lives two minutes so it outlasts its minute.
_CHARGE = """
local limit, amount = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + amount > limit then
  return {0, tostring(used)}
end
local total = redis.call('INCRBYFLOAT', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], 120)
return {1, total}
"""


@dataclass(frozen=True)
class Charge:
    """The outcome of charging audio: accepted or not, and the minute's total so far."""

    accepted: bool
    used_seconds: float
    refusal: Refusal | None = None


class AudioQuota:
    """Seconds of audio per subject per wall-clock minute, across every gateway."""

    def __init__(self, redis: aioredis.Redis, seconds_per_minute: float, *, clock: Clock = time.time) -> None:
        if seconds_per_minute <= 0:
            raise ValueError("seconds_per_minute must be > 0")
        self.redis = redis
        self.limit = seconds_per_minute
        self._clock = clock
        self._charge = redis.register_script(_CHARGE)

    async def charge(self, subject: str, seconds: float) -> Charge:
        """Count ``seconds`` of audio for ``subject`` in this minute, unless that passes the limit."""
        now = self._clock()
        minute = int(now // 60)
        try:
            accepted, used = await self._charge(keys=[audio_key(subject, minute)], args=[self.limit, seconds])
        except RETRYABLE as exc:
            log.warning("audio quota unchecked (Redis unavailable): %s", exc)
            return Charge(True, 0.0)
        used_seconds = float(used.decode() if isinstance(used, bytes) else used)
        if int(accepted):
            return Charge(True, used_seconds)
        refusal = Refusal(
            AUDIO_QUOTA_EXCEEDED,
            f"more than {self.limit:g} seconds of audio a minute for this subject; audio is dropped "
            "until the next minute",
            retry_after=(minute + 1) * 60 - now, http_status=429, close_code=1008,
        )
        return Charge(False, used_seconds, refusal)


class AudioMeter:
    """One connection's side of :class:`AudioQuota`: frames are added up locally and charged
    about once a ``flush_seconds`` of audio, so a subject may pass the limit by at most that
    much per connection. While refused, audio is dropped without asking Redis again until
    the minute ends."""

    def __init__(self, quota: AudioQuota, subject: str, *, flush_seconds: float = 1.0,
                 clock: Clock = time.time) -> None:
        self.quota = quota
        self.subject = subject
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._pending = 0.0
        self._blocked_until = 0.0
        self._refusal: Refusal | None = None

    async def add(self, seconds: float) -> Refusal | None:
        """Count a frame of ``seconds``; a refusal means drop it (tell the client once)."""
        now = self._clock()
        if now < self._blocked_until:
            return self._refusal
        self._pending += seconds
        if self._pending < self.flush_seconds - 1e-9:  # float sums of frame lengths fall short
            return None
        amount, self._pending = self._pending, 0.0
        charge = await self.quota.charge(self.subject, amount)
        if charge.accepted:
            self._refusal = None
            return None
        self._refusal = charge.refusal
        wait = charge.refusal.retry_after if charge.refusal is not None else None
        self._blocked_until = now + (wait or 0.0)
        return self._refusal

    async def flush(self) -> None:
        """Charge what is pending (at the end of a session), whatever the amount."""
        if self._pending > 0:
            amount, self._pending = self._pending, 0.0
            await self.quota.charge(self.subject, amount)


class PendingAuthLimiter:
    """At most ``per_ip`` connections from one IP waiting for their first ``auth`` message.

    A slot is taken in the handshake and given back with :meth:`release` once the connection
    has authenticated, failed, or closed. A slot also frees itself ``hold_seconds`` after it
    was taken (the connection waits at most ``AUTH_TIMEOUT_SECONDS`` for its token), so a
    handshake that never reaches the connection handler cannot leak one.
    """

    def __init__(self, per_ip: int, hold_seconds: float, *, clock: Clock = time.monotonic,
                 max_ips: int = 100_000) -> None:
        if per_ip < 1 or hold_seconds <= 0:
            raise ValueError("per_ip must be >= 1 and hold_seconds > 0")
        self.per_ip = per_ip
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._max_ips = max_ips
        self._next_ticket = 0
        # ip -> {ticket: when it was taken}
        self._slots: OrderedDict[str, dict[int, float]] = OrderedDict()

    def acquire(self, ip: str) -> int | Refusal:
        """A ticket for one pending connection from ``ip``, or the refusal when it has too many."""
        now = self._clock()
        slots = self._slots.get(ip)
        if slots is None:
            slots = {}
            self._slots[ip] = slots
            while len(self._slots) > self._max_ips:
                self._slots.popitem(last=False)
        else:
            self._slots.move_to_end(ip)
            for ticket in [t for t, taken in slots.items() if taken + self.hold_seconds <= now]:
                del slots[ticket]
        if len(slots) >= self.per_ip:
            oldest = min(slots.values())
            return Refusal(TOO_MANY_UNAUTHENTICATED,
                           f"more than {self.per_ip} connections from this address are waiting to authenticate",
                           retry_after=oldest + self.hold_seconds - now, http_status=429, close_code=1008)
        self._next_ticket += 1
        slots[self._next_ticket] = now
        return self._next_ticket

    def release(self, ip: str, ticket: int | None) -> None:
        """Give a ticket back (idempotent; None and unknown tickets are ignored)."""
        if ticket is None:
            return
        slots = self._slots.get(ip)
        if slots is not None:
            slots.pop(ticket, None)
            if not slots:
                del self._slots[ip]

    def pending(self, ip: str) -> int:
        """Slots ``ip`` holds now (expired ones excluded)."""
        now = self._clock()
        return sum(1 for taken in self._slots.get(ip, {}).values() if taken + self.hold_seconds > now)


@dataclass(frozen=True)
class Admission:
    """The outcome of a handshake: refused, admitted (with claims when auth is on), or
    ``deferred``: auth is on but no token came with the handshake, so the first message
    must be ``{"type": "auth", "token": ...}``. A deferred admission holds a pending-auth
    slot (``pending_ticket``) until :meth:`HandshakeGuard.auth_settled` gives it back.
    ``ip`` is the client address the decision counted (behind a trusted proxy, the one from
    ``X-Forwarded-For``): later checks of the same connection must count the same one."""

    refusal: Refusal | None = None
    claims: Claims | None = None
    deferred: bool = False
    pending_ticket: int | None = None
    ip: str = ""


def auth_refusal(error: AuthError) -> Refusal:
    """An :class:`AuthError` as a refusal: HTTP 401 in the handshake, close 1008 after it."""
    return Refusal(error.code, error.message, http_status=401, close_code=1008)


class HandshakeGuard:
    """Lockout, then connection rate, then the token, for one handshake from ``ip``; a
    handshake without a token (auth to come in the first message) also needs a pending-auth
    slot of its IP, which the connection gives back with :meth:`auth_settled`.

    Failed verifications count towards the IP's lockout (here and in :meth:`verify`, used
    for the first ``auth`` message and for refreshes); a success clears the count.
    """

    def __init__(self, verifier: TokenVerifier | None, ip_limiter: IpRateLimiter,
                 failures: AuthFailureTracker, pending: PendingAuthLimiter) -> None:
        self.verifier = verifier
        self.ip_limiter = ip_limiter
        self.failures = failures
        self.pending = pending

    @classmethod
    def from_settings(cls, settings: SecuritySettings, *, clock: Clock = time.monotonic) -> HandshakeGuard:
        return cls(
            TokenVerifier.from_settings(settings),
            IpRateLimiter(settings.connections_per_ip_per_minute, clock=clock),
            AuthFailureTracker(settings.auth_failures_before_lockout, settings.lockout_seconds, clock=clock),
            # A second beyond the auth timeout: the connection's own wait ends first.
            PendingAuthLimiter(settings.unauthenticated_connections_per_ip,
                               settings.auth_timeout_seconds + 1.0, clock=clock),
        )

    @property
    def auth_enabled(self) -> bool:
        return self.verifier is not None

    def admit(self, ip: str, headers: object, path: str | None) -> Admission:
        """Decide a handshake from its client address, headers and path (with the query)."""
        locked = self.failures.check(ip)
        if locked is not None:
            return Admission(refusal=locked, ip=ip)
        limited = self.ip_limiter.check(ip)
        if limited is not None:
            return Admission(refusal=limited, ip=ip)
        if self.verifier is None:
            return Admission(ip=ip)
        token = extract_token(headers, path)
        if token is None:
            ticket = self.pending.acquire(ip)
            if isinstance(ticket, Refusal):
                return Admission(refusal=ticket, ip=ip)
            return Admission(deferred=True, pending_ticket=ticket, ip=ip)
        try:
            return Admission(claims=self.verify(ip, token), ip=ip)
        except AuthError as exc:
            return Admission(refusal=auth_refusal(exc), ip=ip)

    def auth_settled(self, ip: str, admission: Admission) -> None:
        """The connection admitted with ``admission`` has authenticated, failed, or closed:
        its pending-auth slot is free (idempotent; a no-op for other admissions)."""
        self.pending.release(ip, admission.pending_ticket)

    def verify(self, ip: str, token: str | None) -> Claims:
        """Verify a token from ``ip`` (first message or refresh), counting a failure.

        Raises :class:`AuthError`; when the failure locks the IP out, the error is still the
        token's own (the lockout answers the next attempt).
        """
        if self.verifier is None:
            raise AuthError("auth_not_enabled", "this gateway does not require a token")
        try:
            claims = self.verifier.verify(token)
        except AuthError:
            self.failures.record_failure(ip)
            raise
        self.failures.record_success(ip)
        return claims
