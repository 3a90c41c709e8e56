"""Soak mode of the demo client: rounds of sessions for a duration, memory followed per round.

    python demo_client.py --soak 10m --clients 20 --max-growth-mb-per-100 2

Each round is one wave of ``--clients`` concurrent sessions (the demo client's own session
code). After a round the soak reads every service's resident memory from its ``/health``
(``rss_bytes``) and prints the round's success rate, p95 latency from end of speech to final,
and each service's RSS. At the end it fits a least-squares line of RSS against sessions
finished, leaving out the warm-up rounds (models, caches and allocator arenas fill up first),
and prints the slope in MB per 100 sessions. It exits 1 when a service grows faster than
``--max-growth-mb-per-100`` after warm-up, or when a session failed, or (with
``--redis-url``) when a per-session Redis key has no TTL.

The fitting and the verdict are pure functions (:func:`slope_per_100`, :func:`verdict`); the
async shell only runs rounds and reads ``/health``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from demos.metrics import summarise

if TYPE_CHECKING:
    import argparse

    from demos.demo_client import LoadedClip, RunOptions

log = logging.getLogger(__name__)

DEFAULT_HEALTH = {
    "gateway": "http://127.0.0.1:8080",
    "stt_worker": "http://127.0.0.1:8081",
    "translation_worker": "http://127.0.0.1:8082",
}
MB = 1024 * 1024


@dataclass(frozen=True)
class SoakOptions:
    duration: float
    health: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HEALTH))
    warmup_rounds: int = 2
    max_growth_mb_per_100: float = 5.0
    redis_url: str | None = None
    redis_settle: float = 0.0  # seconds to wait after the last round before the key audit
    metrics_token: str | None = None
    allocations: bool = False  # also read /debug/memory (MEMORY_DEBUG=true) after each round
    max_rounds: int | None = None
    #: Seconds between a round's end and reading RSS: each service is measured at rest (its
    #: last batches done, a model worker's idle trim run), so what is compared round to round
    #: is the memory kept, not the working set of batches still in flight.
    round_pause: float = 2.0


@dataclass(frozen=True)
class Round:
    index: int
    sessions: int  # sessions finished up to and including this round
    succeeded: int
    started: int
    p95_final: float | None
    rss: dict[str, int | None]
    wall_seconds: float
    top_allocations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.started if self.started else 0.0


@dataclass(frozen=True)
class Growth:
    service: str
    slope_mb_per_100: float | None  # None: too few rounds after warm-up, or RSS unknown
    first_mb: float | None
    last_mb: float | None
    points: int


@dataclass(frozen=True)
class SoakResult:
    rounds: list[Round]
    baseline: dict[str, int | None]
    growth: list[Growth]
    failures: list[str]
    redis: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline_rss_bytes": self.baseline,
            "rounds": [
                {"round": r.index, "sessions": r.sessions, "success_rate": r.success_rate,
                 "p95_final_seconds": r.p95_final, "rss_bytes": r.rss, "wall_seconds": r.wall_seconds,
                 "top_allocations": r.top_allocations}
                for r in self.rounds
            ],
            "growth": [g.__dict__ for g in self.growth],
            "redis": self.redis,
            "failures": self.failures,
        }


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 10m, 1h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError("the soak duration must be positive")
    return seconds


def slope_per_100(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y against x, times 100 (y per 100 x); None under 2 distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx * 100


def growth(rounds: list[Round], services: list[str], warmup_rounds: int) -> list[Growth]:
    """RSS (MB) against sessions finished, per service, on the rounds after warm-up."""
    out = []
    kept = rounds[warmup_rounds:]
    for service in services:
        points = [(float(r.sessions), rss / MB) for r in kept if (rss := r.rss.get(service)) is not None]
        out.append(Growth(
            service, slope_per_100(points),
            points[0][1] if points else None, points[-1][1] if points else None, len(points),
        ))
    return out


def verdict(rounds: list[Round], growths: list[Growth], options: SoakOptions,
            redis: dict[str, Any] | None) -> list[str]:
    """Why the soak failed (empty: it passed)."""
    failures = []
    failed = sum(r.started - r.succeeded for r in rounds)
    if failed:
        failures.append(f"{failed} of {sum(r.started for r in rounds)} sessions failed")
    for g in growths:
        if g.slope_mb_per_100 is not None and g.slope_mb_per_100 > options.max_growth_mb_per_100:
            failures.append(
                f"{g.service} grew {g.slope_mb_per_100:.2f} MB per 100 sessions after warm-up "
                f"(bound {options.max_growth_mb_per_100:g})"
            )
    if all(g.slope_mb_per_100 is None for g in growths):
        failures.append(f"no growth measured: need at least 2 rounds after {options.warmup_rounds} warm-up "
                        "rounds, and a reachable /health")
    if redis is not None and "error" in redis:
        failures.append(f"the Redis key audit could not run ({redis['error']})")
    elif redis is not None and redis.get("session_keys_without_ttl"):
        keys = redis["session_keys_without_ttl"]
        failures.append(f"{len(keys)} per-session Redis keys without a TTL, e.g. {keys[:3]}")
    return failures


async def read_rss(http: aiohttp.ClientSession, health: dict[str, str]) -> dict[str, int | None]:
    """Each service's ``rss_bytes`` from its /health; None when it does not answer."""
    async def one(url: str) -> int | None:
        try:
            async with http.get(f"{url.rstrip('/')}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                body = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
            log.warning("no /health from %s: %s", url, exc)
            return None
        value = body.get("rss_bytes") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int | float) else None

    values = await asyncio.gather(*(one(u) for u in health.values()))
    return dict(zip(health, values, strict=True))


async def read_allocations(http: aiohttp.ClientSession, url: str, token: str | None) -> list[dict[str, Any]]:
    """Top growing allocation sites since the previous call (a MEMORY_DEBUG service)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with http.get(f"{url.rstrip('/')}/debug/memory?top=15", headers=headers,
                            timeout=aiohttp.ClientTimeout(total=120)) as resp:
            if resp.status != 200:
                log.warning("%s/debug/memory answered %d (is MEMORY_DEBUG on?)", url, resp.status)
                return []
            body = await resp.json()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning("no /debug/memory from %s: %s", url, exc)
        return []
    # The Python heap as traced, first: flat while RSS grows means the allocator, not objects.
    return [{"site": "(python heap traced)", "size_diff": 0, "count_diff": 0,
             "size": int(body.get("traced_bytes") or 0), "count": int(body.get("gc_objects") or 0)},
            *body.get("since_last", [])]


async def audit_redis(url: str) -> dict[str, Any]:
    """The key audit's figures, or ``{"error": ...}`` when Redis cannot be reached (it may have
    gone with the stack under test): the soak then fails with that reason instead of a traceback
    that would hide the rounds already measured."""
    import redis.asyncio as aioredis

    from common.keyaudit import audit_keys
    from common.redis_conn import RETRYABLE

    client = aioredis.Redis.from_url(url)
    try:
        return (await audit_keys(client)).as_dict()
    except RETRYABLE as exc:
        log.warning("the Redis key audit failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()


async def soak(run_options: RunOptions, clips: list[LoadedClip], options: SoakOptions,
               on_round: Any = None, *, run: Any) -> SoakResult:
    """Rounds of one wave each until ``duration`` has passed (a started round finishes).

    ``run`` is ``demo_client.run`` (passed in: demo_client imports this module for its CLI)."""

    one_wave = replace(run_options, batches=1, progress=False, wait=0.0)
    rounds: list[Round] = []
    deadline = time.monotonic() + options.duration
    async with aiohttp.ClientSession() as http:
        if run_options.wait > 0:
            from demos.session import wait_for_gateway

            await wait_for_gateway(run_options.session.url, run_options.wait)
        baseline = await read_rss(http, options.health)
        gateway_url = options.health.get("gateway")
        if options.allocations and gateway_url:
            await read_allocations(http, gateway_url, options.metrics_token)  # the baseline snapshot
        finished = 0
        while time.monotonic() < deadline and (options.max_rounds is None or len(rounds) < options.max_rounds):
            records, wall = await run(one_wave, clips)
            report = summarise(records, wall)
            finished += len(records)
            if options.round_pause > 0:
                await asyncio.sleep(options.round_pause)  # on purpose: see SoakOptions.round_pause
            rss = await read_rss(http, options.health)
            top = (await read_allocations(http, gateway_url, options.metrics_token)
                   if options.allocations and gateway_url else [])
            rnd = Round(len(rounds) + 1, finished, report.succeeded, report.sessions,
                        report.latency["final"].p95, rss, wall, top)
            rounds.append(rnd)
            if on_round is not None:
                on_round(rnd)
    redis_doc = None
    if options.redis_url:
        if options.redis_settle > 0:
            await asyncio.sleep(options.redis_settle)  # let the sessions' TTLs pass, on purpose
        redis_doc = await audit_redis(options.redis_url)
    services = list(options.health)
    growths = growth(rounds, services, options.warmup_rounds)
    return SoakResult(rounds, baseline, growths, verdict(rounds, growths, options, redis_doc), redis_doc)


def _mb(value: int | None) -> str:
    return f"{value / MB:8.1f}" if value is not None else f"{'-':>8}"


def round_line(rnd: Round, services: list[str]) -> str:
    p95 = f"{rnd.p95_final:6.2f}" if rnd.p95_final is not None else f"{'-':>6}"
    cells = " ".join(_mb(rnd.rss.get(s)) for s in services)
    return f"{rnd.index:>5} {rnd.sessions:>8} {rnd.success_rate * 100:7.1f}% {p95} {cells}"


def header(services: list[str]) -> str:
    cells = " ".join(f"{s[:8]:>8}" for s in services)
    return f"{'round':>5} {'sessions':>8} {'success':>8} {'p95 s':>6} {cells}   (RSS, MB)"


def format_result(result: SoakResult, services: list[str], options: SoakOptions) -> str:
    lines = [header(services), f"{'start':>5} {0:>8} {'':>8} {'':>6} "
             + " ".join(_mb(result.baseline.get(s)) for s in services)]
    lines += [round_line(r, services) for r in result.rounds]
    lines.append("")
    lines.append(f"RSS slope after {options.warmup_rounds} warm-up rounds (least squares, MB per 100 sessions):")
    for g in result.growth:
        # MB per 100 sessions = 10 KB per session: say it both ways.
        slope = (f"{g.slope_mb_per_100:+.2f} ({g.slope_mb_per_100 * 10:+.0f} KB a session)"
                 if g.slope_mb_per_100 is not None else "n/a")
        span = (f"{g.first_mb:.1f} -> {g.last_mb:.1f} MB over {g.points} rounds"
                if g.first_mb is not None and g.last_mb is not None else "no data")
        lines.append(f"  {g.service:<20} {slope:>26}   ({span})")
    if result.redis is not None and "error" not in result.redis:
        r = result.redis
        lines.append("")
        lines.append(f"Redis after the soak: {r['total_keys']} keys, {r['used_memory_bytes'] / MB:.1f} MB used; "
                     f"{r['session_keys']} per-session keys (longest TTL {r['longest_session_ttl_seconds']:.0f} s), "
                     f"{len(r['session_keys_without_ttl'])} without TTL")
        lines.append(f"  by prefix: {r['by_prefix']}")
    for rnd in result.rounds:
        for site in rnd.top_allocations[:6]:
            if site["site"] == "(python heap traced)":
                lines.append(f"  round {rnd.index} python heap traced {site['size']} B, {site['count']} gc objects")
            else:
                lines.append(f"  round {rnd.index} alloc {site['size_diff']:+9d} B {site['count_diff']:+6d} "
                             f"{site['site']}")
    lines.append("")
    lines.append("PASS" if result.ok else "FAIL: " + "; ".join(result.failures))
    return "\n".join(lines)


def parse_health(values: list[str] | None) -> dict[str, str]:
    """``NAME=URL`` pairs (repeatable ``--health``); the local defaults when none are given."""
    if not values:
        return dict(DEFAULT_HEALTH)
    out = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"--health wants NAME=http://host:port, got {value!r}")
        out[name] = url
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The soak options of ``demo_client.py``."""
    group = parser.add_argument_group("soak (--soak DURATION)")
    group.add_argument("--soak", type=parse_duration, default=None, metavar="DURATION",
                       help="rounds of --clients sessions for this long (90s, 10m, 1h), RSS followed per round")
    group.add_argument("--max-growth-mb-per-100", type=float, default=5.0, metavar="MB",
                       help="fail when a service's RSS grows more than this per 100 sessions after warm-up")
    group.add_argument("--warmup-rounds", type=int, default=2, help="rounds left out of the RSS fit")
    group.add_argument("--health", action="append", metavar="NAME=URL",
                       help="a service's ops URL, repeatable (default: gateway :8080, stt_worker :8081, "
                       "translation_worker :8082)")
    group.add_argument("--round-pause", type=float, default=2.0, metavar="SECONDS",
                       help="wait this long after each round before reading RSS (services at rest)")
    group.add_argument("--redis-url", default=None,
                       help="audit Redis keys after the soak: count, memory, per-session keys without TTL")
    group.add_argument("--redis-settle", type=float, default=0.0, metavar="SECONDS",
                       help="wait this long after the last round before the Redis audit (let TTLs pass)")
    group.add_argument("--allocations", action="store_true",
                       help="read the gateway's /debug/memory after each round (needs MEMORY_DEBUG=true)")
    group.add_argument("--metrics-token", default=None, help="bearer token of the ops port, if it has one")


def main(args: argparse.Namespace, run_options: RunOptions, clips: list[LoadedClip], *, run: Any) -> int:
    """Run the soak from parsed ``demo_client.py`` arguments; the process exit code."""
    if args.warmup_rounds < 0:
        raise ValueError("--warmup-rounds must be >= 0")
    options = SoakOptions(
        duration=args.soak, health=parse_health(args.health), warmup_rounds=args.warmup_rounds,
        max_growth_mb_per_100=args.max_growth_mb_per_100, redis_url=args.redis_url,
        redis_settle=args.redis_settle, round_pause=args.round_pause, metrics_token=args.metrics_token,
        allocations=args.allocations,
    )
    services = list(options.health)
    print(f"Soak: {options.duration:.0f} s of rounds of {run_options.clients} clients, "
          f"clip {','.join(run_options.clips)}, {run_options.session.url}", flush=True)
    print(header(services), flush=True)
    result = asyncio.run(soak(run_options, clips, options, lambda r: print(round_line(r, services), flush=True),
                              run=run))
    print(format_result(result, services, options))
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return 0 if result.ok else 1
