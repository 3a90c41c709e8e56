"""What a :class:`gateway.session_core.SessionCore` asks its shell to do, and the clock it is
given: plain values, so the shell (``gateway.connection``) and the Redis adapter
(``gateway.session_writer``) depend on these and not on the core.

* :class:`Send`: a message to the client (``replay``: from the log on resume).
* :class:`Write`: the stored session's fields, and a message for its log.
* :class:`QueueAudio` / :class:`QueueTranslation`: a job on the bus.
* :class:`Note`: a control note on the session's result stream, for every holder.
* :class:`Close`: close the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import bus


@dataclass(frozen=True)
class Send:
    message: dict[str, Any]
    replay: bool = False  # from the log on resume: sent at the client's pace, all of it


@dataclass(frozen=True)
class Write:
    """Update the stored session (only while this core holds it); log ``message`` if given."""

    fields: dict[str, Any]
    message: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueueAudio:
    """A job and its audio. A partial by reference (``job.audio_samples`` set) carries none on
    the bus: the writer appends the part of ``audio`` from session sample ``append_from`` on to
    the session's audio stream (the rest is there from earlier partials), then queues the job."""

    job: bus.AudioJob
    audio: np.ndarray = field(repr=False, compare=False)
    append_from: int | None = None


@dataclass(frozen=True)
class QueueTranslation:
    job: bus.TranscriptionJob


@dataclass(frozen=True)
class Note:
    """A control note on the session's result stream, read by every holder in order."""

    text: str


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


Action = Send | Write | QueueAudio | QueueTranslation | Note | Close


@dataclass(frozen=True)
class Clock:
    """The two clocks of one input: ``now`` (monotonic, for deadlines) and ``wall`` (epoch)."""

    now: float
    wall: float
