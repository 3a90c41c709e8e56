"""What a client remembers of its session, to resume it and to drop replayed results.

:class:`ClientSession` is pure: feed it every server message with :meth:`accept` (False
means "a replay you already have: drop it"), and ask :meth:`resume_config` for the
``config`` that resumes the session on the next connection. A gateway numbers results with
an increasing ``seq`` per session and, after a resume with ``last_seq``, replays what came
later; duplicates can still reach a client that reconnects at the wrong moment, so the
client drops any ``seq`` at or below the last one it kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speech_client.protocol import Config, Ready, ServerMessage


@dataclass
class ClientSession:
    """``ready`` (the latest), the session id and resume secret, and the last ``seq`` kept."""

    ready: Ready | None = None
    session_id: str | None = None
    last_seq: int | None = None
    resume_secret: str | None = field(default=None, repr=False)
    duplicates: int = 0

    @property
    def is_ready(self) -> bool:
        return self.ready is not None

    def accept(self, message: ServerMessage) -> bool:
        """Record ``message``; False when it is a result already seen (drop it)."""
        if isinstance(message, Ready):
            if self.session_id is not None and message.session_id != self.session_id:
                # The gateway started a new session (the old one was unknown or expired):
                # its seq starts again, and the old session's secret resumes nothing.
                self.last_seq = None
                self.resume_secret = None
            self.ready = message
            self.session_id = message.session_id
            if message.resume_secret is not None:
                self.resume_secret = message.resume_secret
            return True
        seq = message.seq
        if seq is None:
            return True
        if self.last_seq is not None and seq <= self.last_seq:
            self.duplicates += 1
            return False
        self.last_seq = seq
        return True

    def resume_fields(self) -> dict[str, object]:
        """``session_id``, ``last_seq`` and ``resume_secret`` as known; empty before ``ready``."""
        if self.session_id is None:
            return {}
        fields: dict[str, object] = {"session_id": self.session_id}
        if self.last_seq is not None:
            fields["last_seq"] = self.last_seq
        if self.resume_secret is not None:
            fields["resume_secret"] = self.resume_secret
        return fields

    def resume_config(self, **settings: object) -> Config:
        """The first ``config`` of a connection: ``settings`` plus what resumes the session."""
        return Config.model_validate({**settings, **self.resume_fields()})
