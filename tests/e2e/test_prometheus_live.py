"""A real Prometheus (Debian's binary) scraping the local stack, with the project's rules.

It scrapes the stack's three ops ports and one more translation worker that this test starts
itself; a clip is streamed; the HTTP API must then show the final-latency histogram and the
job counters moved. The extra worker is killed (by its pid) and the ServiceDown alert must go
pending for it. Every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from common.embedded_redis import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "rules.yml"
PROMETHEUS = shutil.which("prometheus")
T = TypeVar("T")


def poll(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def hostport(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


@pytest.fixture
def extra_translation_worker(  # type: ignore[no-untyped-def]
    local_stack, tiny_translation_model: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": local_stack.redis_url, "HOST": "127.0.0.1", "HEALTH_PORT": str(port),
           "TRANSLATION_MODEL": str(tiny_translation_model), "WORKER_INDEX": "7", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "translation_worker"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        poll("extra translation worker /health", lambda: get_json(f"{url}/health").get("service"), timeout=120)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture
def prometheus(local_stack, extra_translation_worker, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`: make test installs it)")
    _, extra_url = extra_translation_worker
    jobs = {
        "gateway": [hostport(local_stack.gateway_health)],
        "stt_worker": [hostport(local_stack.stt_health)],
        "translation_worker": [hostport(local_stack.translation_health), hostport(extra_url)],
    }
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},  # fast, for the test
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in jobs.items()],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        poll("prometheus ready", lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query(base: str, expr: str) -> float | None:
    """The single value of an instant query (summed), None when it has no sample."""
    doc = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert doc["status"] == "success", doc
    result = doc["data"]["result"]
    if not result:
        return None
    return sum(float(r["value"][1]) for r in result)


def test_prometheus_sees_the_pipeline_work_and_a_dead_worker(local_stack, prometheus, extra_translation_worker) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from demos.demo_client import DEFAULT_AUDIO_DIR, load_clips
    from demos.metrics import SessionRecord
    from demos.session import SessionOptions, run_session

    # Every target is up before anything moves.
    try:
        poll("all four targets up", lambda: query(prometheus, "sum(up)") == 4.0, timeout=60)
    except TimeoutError:
        targets = get_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
        raise AssertionError([(t["labels"], t["health"], t["lastError"]) for t in targets]) from None
    before_finals = query(prometheus, "sum(gateway_final_latency_seconds_count)") or 0.0
    before_jobs = query(prometheus, 'sum(stt_jobs_total{outcome="done"})') or 0.0

    [clip] = load_clips(DEFAULT_AUDIO_DIR, ("en",))
    record = asyncio.run(run_session(SessionRecord(0, clip.clip), clip.pcm, clip.sample_rate,
                                     SessionOptions(url=local_stack.ws_url, speed=2.0)))
    finals = [r.message for r in record.received if r.type == "final"]
    assert record.done and finals, record.client_errors

    poll("final latency histogram moved",
         lambda: (query(prometheus, "sum(gateway_final_latency_seconds_count)") or 0) >= before_finals + len(finals))
    poll("STT job counter moved",
         lambda: (query(prometheus, 'sum(stt_jobs_total{outcome="done"})') or 0) > before_jobs)
    assert (query(prometheus, "sum(gateway_final_latency_seconds_bucket{le=\"+Inf\"})") or 0) >= len(finals)

    proc, url = extra_translation_worker
    proc.kill()  # one we started, by its pid
    proc.wait(30)
    instance = hostport(url)

    def pending() -> dict[str, Any] | None:
        alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return next((a for a in alerts if a["labels"].get("alertname") == "ServiceDown"
                     and a["labels"].get("instance") == instance), None)

    alert = poll("ServiceDown pending for the killed worker", pending, timeout=60)
    assert alert["state"] == "pending"  # `for: 1m` has not passed yet
    assert alert["labels"]["job"] == "translation_worker"
    assert query(prometheus, f'up{{instance="{instance}"}}') == 0.0
