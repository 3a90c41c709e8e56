"""SessionCore without sockets: Hypothesis drives the event orders (speech, worker results in
any order and twice, reads of the result stream, time and the expiry of the orderer's wait,
drops, lost sockets, resume with or without the old
connection still open, takeover, end) and checks what the client sees: every final exactly
once, in utterance order (unless a wait expired: then the late one comes late), and each
connection's seq contiguous.

The world the cores live in is modelled with plain data, as Redis holds it for them: the
session hash and log (written only by the holder, as the Lua script enforces), one result
stream read by each connection from its own position, and the client's seq filter (the GUI
drops a seq at or below the last one it saw).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common import bus
from common.settings import GatewaySettings
from gateway import protocol
from gateway.segmenter import SpeechEnded, SpeechStarted, UtteranceReady
from gateway.session_actions import Action, Clock, Close, Note, QueueAudio, Send, Write
from gateway.session_core import TAKEOVER, Phase, SessionCore
from gateway.sessions import SessionConfig, StoredSession

# One final per utterance (no streaming commits): these tests are about order, delivery and resume.
SETTINGS = GatewaySettings(use_silero=False, streaming_commits=False, idle_timeout_seconds=1e6,
                           max_session_seconds=1e7, result_wait_seconds=15.0)
SID = "s1"


@dataclass
class World:
    hash: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    stream: list[Any] = field(default_factory=list)  # worker results and control notes
    jobs: dict[int, bus.AudioJob] = field(default_factory=dict)  # final jobs queued
    done_jobs: set[int] = field(default_factory=set)
    now: float = 1000.0

    @property
    def clock(self) -> Clock:
        return Clock(self.now, self.now + 1.7e9)

    def write(self, holder: str, fields: dict[str, Any], message: dict[str, Any] | None) -> bool:
        if self.hash.get("holder") != holder:
            return False
        self.hash.update(fields)
        if message is not None:
            self.log.append(dict(message))
        return True

    def stored(self) -> StoredSession:
        h = self.hash
        return StoredSession(SID, SessionConfig(), "", "", int(h.get("next_seq", 1)),
                             int(h.get("next_utterance", 0)), int(h.get("delivered_below", 0)),
                             str(h.get("last_final", "")))


@dataclass
class Client:
    last_seq: int | None = None
    finals: list[int] = field(default_factory=list)
    done: bool = False
    read_in_time: set[int] = field(default_factory=set)  # results its connection read before done

    def accept(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if seq is None:
            return
        if self.last_seq is not None and seq <= self.last_seq:
            return  # what the GUI does with a seq it has seen
        self.last_seq = seq
        if message["type"] == "final":
            self.finals.append(int(message["segment_id"].rsplit(":", 1)[1]))
        if message["type"] == "done":
            self.done = True


class Conn:
    def __init__(self, world: World, client: Client, name: str, core: SessionCore, replay: list[Action]) -> None:
        self.world, self.client, self.name, self.core = world, client, name, core
        self.cursor = 0
        self.socket_open = True  # the client reads this connection
        self.alive = True  # the connection still runs (reads results)
        self.spoken = 0
        self.live_seqs: list[int] = []
        self.run(replay, replay=True)

    def run(self, actions: list[Action], replay: bool = False) -> None:
        for action in actions:
            if isinstance(action, Send):
                if "seq" in action.message and not replay:
                    self.live_seqs.append(action.message["seq"])
                if self.socket_open:
                    self.client.accept(action.message)
            elif isinstance(action, Write):
                if not self.world.write(self.name, action.fields, action.message):
                    self.run(self.core.taken_over())
            elif isinstance(action, QueueAudio):
                if action.job.kind == "final":
                    self.world.jobs[action.job.utterance_index] = action.job
            elif isinstance(action, Note):
                self.world.stream.append(action.text)
            elif isinstance(action, Close):
                self.close()

    def close(self) -> None:
        """The socket is gone (closed by either side): the shell detaches the core."""
        self.socket_open = False
        if self.alive:
            self.alive = False
            self.run(self.core.detach())

    def speak(self) -> None:
        if not self.alive or self.core.phase is not Phase.OPEN:
            return
        i, t = self.spoken, 3.0 * self.spoken
        self.spoken += 1
        events = [SpeechStarted(t, i), SpeechEnded(t + 1, i),
                  UtteranceReady(i, t, t + 1, np.zeros(160, dtype=np.int16), "silence")]
        self.run(self.core.on_segments(events, self.world.clock))

    def read(self) -> None:
        while self.alive and self.cursor < len(self.world.stream):
            item = self.world.stream[self.cursor]
            self.cursor += 1
            if isinstance(item, str):
                self.run(self.core.on_note(item, self.world.clock))
            else:
                if self.socket_open and not self.client.done:
                    self.client.read_in_time.add(item.utterance_index)
                self.run(self.core.on_result(item, self.world.clock))

    def tick(self) -> None:
        if self.alive:
            self.run(self.core.tick(self.world.clock))


class Session:
    def __init__(self) -> None:
        self.world = World()
        self.client = Client()
        self.conns: list[Conn] = []
        self.count = 0
        name = self._name()
        core = SessionCore(SETTINGS, SID, self.world.clock, holder=name)
        self.world.hash = {"holder": name, "next_seq": 1, "next_utterance": 0, "delivered_below": 0}
        self.conns.append(Conn(self.world, self.client, name, core, core.start()))

    def _name(self) -> str:
        self.count += 1
        return f"conn{self.count}"

    @property
    def current(self) -> Conn:
        return self.conns[-1]

    def resume(self, keep_old: bool) -> None:
        if not keep_old:
            self.current.close()
        else:
            self.current.socket_open = False  # the client left it; it has not noticed yet
        name = self._name()
        self.world.hash["holder"] = name  # the atomic claim
        logged = sorted(self.world.log, key=lambda m: m["seq"])
        core, replay = SessionCore.resumed(SETTINGS, self.world.stored(), logged, self.client.last_seq or 0,
                                           self.world.clock, holder=name)
        self.conns.append(Conn(self.world, self.client, name, core, replay))
        self.world.stream.append(f"{TAKEOVER} {name}")

    def work(self, pick: int, twice: bool) -> None:
        waiting = sorted(set(self.world.jobs) - self.world.done_jobs)
        if not waiting:
            return
        index = waiting[pick % len(waiting)]
        job = self.world.jobs[index]
        result = bus.FinalResult(session_id=SID, segment_id=job.segment_id, utterance_index=index,
                                 text=f"utterance {index}", start=job.start, end=job.end)
        self.world.stream += [result, result] if twice else [result]
        self.world.done_jobs.add(index)

    def step(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if self.client.done:
            return
        if kind == "speak":
            self.current.speak()
        elif kind == "work":
            self.work(event[1], event[2])
        elif kind == "read":
            for conn in self.conns:
                conn.read()
        elif kind == "tick":
            self.world.now += event[1]
            for conn in self.conns:
                conn.tick()
        elif kind == "drop":
            self.current.close()
        elif kind == "lose":  # the client stops hearing the socket; the gateway has not noticed
            self.current.socket_open = False
        elif kind == "resume":
            self.resume(event[1])
        elif kind == "end" and self.current.alive:
            self.current.run(self.current.core.end(self.world.clock))

    def finish(self) -> None:
        """The client comes back if it is away, every job completes, and the session ends."""
        if not self.client.done and not self.current.socket_open:
            self.resume(keep_old=False)
        while set(self.world.jobs) - self.world.done_jobs:
            self.work(0, False)
        for _ in range(3):
            self.step(("read",))
            self.step(("tick", 0.1))
        self.step(("end",))
        for _ in range(3):
            self.step(("read",))
            self.step(("tick", 1.0))


EVENTS = st.one_of(
    st.just(("speak",)),
    st.tuples(st.just("work"), st.integers(0, 5), st.booleans()),
    st.just(("read",)),
    # Mostly short steps; now and then 16 s, past the orderer's wait.
    st.tuples(st.just("tick"), st.sampled_from([0.05, 0.5, 3.0, 0.05, 0.5, 3.0, 0.05, 0.5, 3.0, 16.0])),
    st.just(("drop",)),
    st.just(("lose",)),
    st.tuples(st.just("resume"), st.booleans()),
    st.just(("end",)),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENTS, max_size=40))
# The old connection logs a final the client never heard, right after what it last saw: replay.
@example([("speak",), ("lose",), ("work", 0, False), ("read",), ("resume", False)])
# A resume while the old connection still delivers: its late writes are refused.
@example([("speak",), ("resume", True), ("work", 0, True), ("read",), ("speak",), ("drop",)])
def test_every_final_once_in_order_with_contiguous_seq(events: list[tuple[Any, ...]]) -> None:
    session = Session()
    for event in events:
        session.step(event)
    session.finish()
    client = session.client
    assert client.done
    counts = Counter(client.finals)
    assert all(n == 1 for n in counts.values()), "no final twice"
    if not any(conn.core.orderer.skipped for conn in session.conns):
        assert set(counts) == set(session.world.jobs), "every final"
        assert client.finals == sorted(client.finals), "in utterance order"
    else:
        # A final the orderer gave up waiting for still comes, late and out of order, unless
        # the session had ended (``done``) before its connection read the result.
        assert client.read_in_time <= set(counts), "every final read in time"
    for conn in session.conns:
        seqs = conn.live_seqs
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True, "contiguous seq"


def test_a_long_wait_skips_a_final_and_delivers_it_late_rather_than_never() -> None:
    """Expiry: the orderer gives up waiting for utterance 0 (15 s) once 1 is ready; 0 still
    arrives once, late."""
    s = Session()
    s.step(("speak",))
    s.step(("speak",))
    s.work(1, False)  # utterance 1 first
    s.step(("read",))
    assert s.client.finals == []
    s.step(("tick", 16.0))
    assert s.client.finals == [1]
    s.work(0, False)
    s.step(("read",))
    assert s.client.finals == [1, 0]


def test_a_takeover_closes_the_old_connection_and_its_late_writes_are_refused() -> None:
    s = Session()
    s.step(("speak",))
    s.work(0, False)  # the final is on the stream, not yet read by the old holder...
    old = s.current
    s.resume(keep_old=True)  # ...when the client resumes elsewhere (the claim)
    old.read()  # the old holder delivers to a socket nobody reads, then sees the takeover
    assert not old.alive and old.core.phase is Phase.TAKEN_OVER
    assert s.world.log == []  # its write of the final was refused: the claim came first
    s.current.read()
    assert s.client.finals == [0]


def test_ready_carries_the_resume_secret_and_config_changes_are_written() -> None:
    world = World()
    core = SessionCore(SETTINGS, SID, world.clock, resume_secret="sekrit")
    ready = core.start()[0]
    assert isinstance(ready, Send) and ready.message["resume_secret"] == "sekrit"
    out = core.on_config(protocol.ConfigMessage(target_language="de"))
    assert isinstance(out[0], Write) and out[0].fields["config"].target_language == "de"


def test_an_ending_session_waits_for_its_results_without_spinning() -> None:
    """Past MAX_SESSION_SECONDS the session ends; while its last final is on its way the
    timer's next deadline is the orderer's wait, not a moment already past."""
    world = World()
    short = GatewaySettings(use_silero=False, early_final_seconds=0, max_session_seconds=1.0)
    core = SessionCore(short, SID, world.clock)
    core.on_segments([SpeechStarted(0.0, 0), UtteranceReady(0, 0.0, 0.5, np.zeros(160, dtype=np.int16), "silence")],
                     world.clock)
    world.now += 2.0
    out = core.tick(world.clock)
    assert core.phase is Phase.ENDING
    assert [a.message["code"] for a in out if isinstance(a, Send) and a.message["type"] == "error"] == [
        "session_too_long"]
    assert core.deadline(world.clock) > world.now + 1.0
