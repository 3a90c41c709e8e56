"""The session store on a real Redis: one writer at a time (fenced by the claim), and resume
bound to the owner."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sessions import SessionConfig, SessionStore

pytestmark = pytest.mark.integration


def final(seq: int) -> dict[str, Any]:
    return {"type": "final", "segment_id": f"s:{seq}", "text": f"t{seq}", "seq": seq}


async def test_after_a_claim_the_old_holders_writes_are_refused(redis_client: Any) -> None:
    """Defect 3: after a takeover, a write of the old holder that was on its way landed after
    the new holder had read the counters, and two messages got the same seq."""
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "old", SessionConfig(), owner="", secret="x")
    assert await store.write("s", "old", {"next_seq": 2}, final(1))
    claimed = await store.claim("s", "new")
    assert claimed is not None and claimed.next_seq == 2
    assert not await store.write("s", "old", {"next_seq": 3}, final(2))  # too late: refused
    assert await store.write("s", "new", {"next_seq": 3}, final(2))
    assert [m["text"] for m in await store.log("s")] == ["t1", "t2"]
    stored = await store.load("s")
    assert stored is not None and stored.next_seq == 3
    assert await store.claim("gone", "new") is None


async def test_resume_is_bound_to_the_subject_or_the_secret(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("a", "c1", SessionConfig(), owner="alice", secret="unused")
    await store.create("b", "c2", SessionConfig(), owner="", secret="s3cret")
    a, b = await store.load("a"), await store.load("b")
    assert a is not None and b is not None
    assert a.owned_by("alice", None) and not a.owned_by("bob", None) and not a.owned_by(None, "unused")
    assert b.owned_by(None, "s3cret") and not b.owned_by(None, "wrong") and not b.owned_by(None, None)
    assert not b.owned_by("alice", "s3cret")  # a session made without auth is not a subject's
    assert "s3cret" not in str(await redis_client.hgetall("session:b"))  # only its hash is stored
