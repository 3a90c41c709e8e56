"""``speech-pipeline up --redis-cluster``: the flag reaches every service, and the CLI reads it."""

from __future__ import annotations

import pytest

from common.cli import _options, build_parser
from common.runner import StackOptions, plan


def test_cluster_mode_is_passed_to_every_service() -> None:
    specs = plan(StackOptions(stt_workers=2, redis_cluster=True), "redis://127.0.0.1:7000/0")
    assert [s.module for s in specs] == [
        "gateway", "stt_worker", "stt_worker", "translation_worker", "transcript_store"]
    assert all(s.env["REDIS_CLUSTER"] == "true" and s.env["REDIS_URL"] == "redis://127.0.0.1:7000/0"
               for s in specs)


def test_single_node_sets_no_cluster_variable() -> None:
    specs = plan(StackOptions(), "redis://127.0.0.1:6379/0")
    assert all("REDIS_CLUSTER" not in s.env for s in specs)


def test_the_flag_and_the_environment_both_turn_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert _options(build_parser().parse_args(["up", "--redis-cluster"])).redis_cluster
    assert not _options(build_parser().parse_args(["up"])).redis_cluster
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    assert _options(build_parser().parse_args(["up"])).redis_cluster
