"""Key names in the two bus layouts: the seed's on one node, hash-tagged and sharded in a cluster."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from common import bus
from common.settings import SttSettings


def test_single_node_keeps_the_seed_names() -> None:
    bus.configure(cluster=False, shards=8)  # shards only apply to a cluster
    assert bus.audio_jobs_stream("abc") == "audio_jobs"
    assert bus.audio_jobs_streams() == ["audio_jobs"]
    assert bus.audio_jobs_streams([0]) == ["audio_jobs"]
    assert bus.transcriptions_stream("abc") == "transcriptions"
    assert bus.transcriptions_streams() == ["transcriptions"]
    assert bus.session_key("abc") == "session:abc"
    assert bus.session_log_key("abc") == "session_log:abc"
    assert bus.result_stream_key("abc") == "result_stream:abc"
    assert bus.session_of_result_stream("result_stream:abc") == "abc"


def test_cluster_names_put_a_session_on_one_slot() -> None:
    bus.configure(cluster=True, shards=4)
    sid = "5f0c2a9e1b7d4c3a"
    assert bus.session_key(sid) == f"session:{{{sid}}}"
    assert bus.session_log_key(sid) == f"session_log:{{{sid}}}"
    assert bus.result_stream_key(sid) == f"result_stream:{{{sid}}}"
    keys = (bus.session_key(sid), bus.session_log_key(sid), bus.result_stream_key(sid))
    assert {key_slot(k.encode()) for k in keys} == {key_slot(sid.encode())}
    assert bus.session_of_result_stream(bus.result_stream_key(sid)) == sid


def test_cluster_shards_each_stream_and_a_session_keeps_its_shard() -> None:
    bus.configure(cluster=True, shards=4)
    assert bus.audio_jobs_streams() == [f"audio_jobs:{{{n}}}" for n in range(4)]
    assert bus.transcriptions_streams([1, 3]) == ["transcriptions:{1}", "transcriptions:{3}"]
    sessions = [f"session-{i}" for i in range(200)]
    shards = [bus.shard_of(s) for s in sessions]
    assert set(shards) == {0, 1, 2, 3}  # crc32 spreads sessions over every shard
    for sid, shard in zip(sessions, shards, strict=True):
        # A session's audio and translation jobs share a shard number, on every call.
        assert bus.audio_jobs_stream(sid) == f"audio_jobs:{{{shard}}}"
        assert bus.transcriptions_stream(sid) == f"transcriptions:{{{shard}}}"
    # crc32 is the same in every process (Python's hash() of a str is not).
    assert bus.shard_of("session-0") == 1422364344 % 4 == 0


def test_default_shards_land_on_every_master_of_a_three_way_split() -> None:
    from common.embedded_cluster import slot_ranges

    bus.configure(cluster=True, shards=SttSettings().stream_shards)
    ranges = slot_ranges(3)
    owners = {next(i for i, (lo, hi) in enumerate(ranges) if lo <= key_slot(s.encode()) <= hi)
              for s in bus.audio_jobs_streams()}
    assert owners == {0, 1, 2}


def test_a_shard_outside_the_count_is_refused() -> None:
    bus.configure(cluster=True, shards=2)
    with pytest.raises(ValueError, match="does not exist"):
        bus.audio_jobs_streams([2])
    with pytest.raises(ValueError, match="at least 1"):
        bus.configure(cluster=True, shards=0)


def test_worker_shard_subset_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    monkeypatch.setenv("STREAM_SHARDS", "4")
    monkeypatch.setenv("STREAM_SHARD_SUBSET", "0, 2")
    assert SttSettings().shard_subset() == (0, 2)
    monkeypatch.setenv("STREAM_SHARD_SUBSET", "")
    assert SttSettings().shard_subset() == ()
    monkeypatch.setenv("STREAM_SHARD_SUBSET", "4")
    with pytest.raises(ValueError, match="STREAM_SHARDS is 4"):
        SttSettings()
    monkeypatch.setenv("STREAM_SHARD_SUBSET", "zero")
    with pytest.raises(ValueError, match="comma-separated integers"):
        SttSettings()
