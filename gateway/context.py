"""What every connection of one gateway shares: settings, Redis, the router, the session store.

Its own module so that the service (which builds it) and the connections and HTTP routes
(which use it) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from common.settings import GatewaySettings
from gateway.limits import AudioQuota, HandshakeGuard, SubjectSessions
from gateway.router import ResultRouter
from gateway.sessions import SessionStore
from gateway.vad import SileroVad


@dataclass
class GatewayContext:
    """What every connection of one gateway shares. Per-connection state never lives here."""

    settings: GatewaySettings
    redis: aioredis.Redis
    router: ResultRouter
    store: SessionStore
    name: str
    silero: SileroVad | None
    guard: HandshakeGuard
    subject_sessions: SubjectSessions
    audio_quota: AudioQuota
    queue_depth: int = 0
    connections: set[Any] = field(default_factory=set)

    @property
    def overloaded(self) -> bool:
        return self.queue_depth > self.settings.max_queue_depth


