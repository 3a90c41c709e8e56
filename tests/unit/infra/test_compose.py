"""infra/docker-compose.yml (and the GPU override) validated offline.

Three validators: Debian's `docker-compose config -q` (the parser that will run the file),
the compose-spec JSON schema through check-jsonschema, and `haproxy -c` on the load balancer's
configuration. Then the properties `--scale` needs, read from the effective configuration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SCALED = ("gateway", "stt_worker", "translation_worker")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")


def _published_ports(ports: list[Any]) -> set[str]:
    """Host ports from either syntax docker-compose prints: a mapping, or "[ip:]host:container"."""
    published = set()
    for port in ports:
        if isinstance(port, dict):
            published.add(str(port["published"]))
        else:
            parts = str(port).split("/")[0].split(":")
            published.add(parts[-2] if len(parts) >= 2 else "")
    return published


def _volume_sources(volumes: list[Any]) -> dict[str, str]:
    """Container path -> source, from either the long or the "source:target[:mode]" syntax."""
    found = {}
    for volume in volumes:
        if isinstance(volume, dict):
            found[volume["target"]] = volume["source"]
        else:
            source, target = str(volume).split(":")[:2]
            found[target] = source
    return found


def test_docker_compose_config_is_valid(compose: Any, compose_required_env: dict[str, str]) -> None:
    result = compose("config", "-q", env=compose_required_env)
    assert result.returncode == 0, result.stderr


def test_gpu_override_merges_and_reserves_nvidia_devices(
    compose: Any, compose_required_env: dict[str, str]
) -> None:
    result = compose("config", files=COMPOSE_FILES, env=compose_required_env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("stt_worker", "translation_worker"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), name
        assert services[name]["build"]["args"]["VARIANT"] == "cuda"
        # The override adds the reservation; the CPU and memory limits stay.
        assert services[name]["deploy"]["resources"]["limits"]["memory"]
    assert "devices" not in services["gateway"].get("deploy", {}).get("resources", {}).get("reservations", {})


def test_compose_refuses_to_start_without_a_jwt_secret(compose: Any) -> None:
    """Auth is on in containers: no JWT_SECRET in .env, no stack."""
    result = compose("config", "-q")
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr


def test_compose_files_match_the_compose_spec_schema(
    paths: Any, python_tool: Callable[[str], list[str]]
) -> None:
    files = [str(paths.infra / name) for name in COMPOSE_FILES]
    result = subprocess.run(
        [*python_tool("check_jsonschema"), "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_schema_rejects_a_misspelt_key(
    paths: Any, tmp_path: Path, python_tool: Callable[[str], list[str]]
) -> None:
    """The schema check above is not vacuous: a typo in a service key fails it."""
    config = yaml.safe_load((paths.infra / "docker-compose.yml").read_text())
    config["services"]["gateway"]["helthcheck"] = config["services"]["gateway"].pop("healthcheck")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [*python_tool("check_jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "helthcheck" in result.stdout + result.stderr


def test_only_the_load_balancer_publishes_host_ports(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in (*SCALED, "redis"):
        assert not services[name].get("ports"), f"{name} publishes a host port: --scale would clash"
        assert "container_name" not in services[name], f"{name} has a fixed container name"
    assert "5026" in _published_ports(services["loadbalancer"]["ports"])


@pytest.mark.parametrize("service", (*SCALED, "redis", "loadbalancer"))
def test_service_has_healthcheck_limits_and_restart_policy(
    service: str, compose_config: dict[str, Any]
) -> None:
    config = compose_config["services"][service]
    assert config["healthcheck"]["test"], service
    assert config["restart"] in {"unless-stopped", "always", "on-failure"}
    limits = config["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert limits["memory"]


def test_startup_order_waits_for_healthy_dependencies(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in SCALED:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["loadbalancer"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_redis_is_version_7_with_an_append_only_file_on_a_volume(compose_config: dict[str, Any]) -> None:
    redis = compose_config["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.[\d.]+)?(-[a-z0-9]+)?", redis["image"])
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    # Streams hold unfinished jobs: an eviction policy that drops keys would lose them.
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert _volume_sources(redis["volumes"])["/data"] in compose_config["volumes"]


def test_services_are_hardened(compose_config: dict[str, Any]) -> None:
    for name in SCALED:
        config = compose_config["services"][name]
        assert config["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in config["security_opt"]
        assert config["read_only"] is True


def test_load_balancer_forwards_to_the_gateway_ports(paths: Any, compose_config: dict[str, Any]) -> None:
    """haproxy.cfg targets the gateway's WebSocket port and checks its health port."""
    text = (paths.infra / "haproxy.cfg").read_text()
    gateway_env = compose_config["services"]["gateway"]["environment"]
    assert re.search(rf"server-template \S+ \d+ gateway:{gateway_env['GATEWAY_PORT']}\b", text)
    assert re.search(rf"check port {gateway_env['HEALTH_PORT']}\b", text)
    assert "uri /ready" in text
    assert re.search(r"^\s*timeout tunnel ", text, re.MULTILINE), "WebSockets need a tunnel timeout"


def test_haproxy_configuration_is_valid(paths: Any) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (Debian package haproxy), so `haproxy -c` cannot run")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(paths.infra / "haproxy.cfg")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
