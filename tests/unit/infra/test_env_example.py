"""infra/env.example against the settings the services read (common/settings.py), both ways.

Also checks that docker-compose forwards exactly those settings with the same defaults, and
that the Kubernetes ConfigMap carries the same values, so the three places cannot drift.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_settings import BaseSettings

# Set per Deployment (they differ per service or carry the Redis password) instead of in
# the shared ConfigMap.
K8S_PER_DEPLOYMENT = {"HOST", "REDIS_URL", "HEALTH_PORT", "GATEWAY_PORT", "TRUSTED_PROXIES", "DATABASE_URL"}
# Environment variables a Deployment sets that no service reads: inputs to other variables.
K8S_HELPER_VARIABLES = {"REDIS_PASSWORD", "POSTGRES_PASSWORD"}


def test_every_setting_a_service_reads_is_in_env_example(
    env_example: Any, service_env_names: dict[str, dict[str, str]]
) -> None:
    for service, names in service_env_names.items():
        missing = sorted(set(names) - env_example.names)
        assert not missing, f"{service} reads settings that infra/env.example does not document: {missing}"


def test_env_example_names_only_settings_a_service_reads(
    env_example: Any, service_env_names: dict[str, dict[str, str]]
) -> None:
    known = set().union(*(set(names) for names in service_env_names.values()))
    unknown = sorted(env_example.names - known)
    assert not unknown, f"infra/env.example documents settings no service reads: {unknown}"


@pytest.mark.parametrize("service", ["gateway", "stt_worker", "translation_worker", "transcript_store"])
def test_env_example_values_are_valid_for_each_service(
    service: str,
    env_example: Any,
    settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A copied .env must start every service: each value passes the service's validation."""
    cls = settings_classes[service]
    names = service_env_names[service]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in env_example.active.items():
        if name in names:
            monkeypatch.setenv(name, value)
    try:
        settings = cls()
    except ValidationError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"infra/env.example is not valid for {service}: {exc}")
    # pydantic-settings passes what it read from the environment as field values: every name
    # given must have been read, none ignored by a spelling the service does not know.
    given = {names[name] for name in env_example.active if name in names}
    ignored = sorted(given - settings.model_fields_set)
    assert not ignored, f"{service} ignored {ignored}"


def test_documented_only_values_are_the_service_defaults(
    env_example: Any, settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]],
) -> None:
    """`# NAME=value` lines show the default; for a per-service name, the gateway's."""
    for name, shown in env_example.documented.items():
        if not shown:
            continue
        owners = [s for s, names in service_env_names.items() if name in names]
        cls = settings_classes[owners[0]]
        field = cls.model_fields[service_env_names[owners[0]][name]]
        # Compare as the service would parse the text: "0" and False are the same boolean.
        assert field.annotation is not None
        parsed = TypeAdapter(field.annotation).validate_python(shown)
        assert parsed == field.default, f"env.example shows {name}={shown}, default is {field.default}"


def test_compose_forwards_every_active_setting_with_the_same_default(
    env_example: Any, compose_config: dict[str, Any], service_env_names: dict[str, dict[str, str]]
) -> None:
    for service, names in service_env_names.items():
        environment: dict[str, str] = compose_config["services"][service].get("environment") or {}
        expected = {name for name in env_example.active if name in names}
        missing = sorted(expected - set(environment))
        assert not missing, f"docker-compose.yml does not pass {missing} to {service}"
        for name in expected:
            assert str(environment[name]) == env_example.active[name], (
                f"{service}: compose default {name}={environment[name]!r}, "
                f"env.example says {env_example.active[name]!r}"
            )


def test_compose_passes_only_settings_the_service_reads(
    env_example: Any, compose_config: dict[str, Any], settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]],
    compose_required_env: dict[str, str],
) -> None:
    for service, names in service_env_names.items():
        environment: dict[str, str] = compose_config["services"][service].get("environment") or {}
        unknown = sorted(set(environment) - set(names))
        assert not unknown, f"docker-compose.yml passes {unknown} to {service}, which does not read them"
        # Values fixed in compose rather than taken from .env are the service's own defaults.
        cls = settings_classes[service]
        fixed = set(environment) - set(env_example.active) - set(compose_required_env)
        for name in fixed:
            default = cls.model_fields[names[name]].default
            assert str(environment[name]) == str(default), f"{service}: {name} fixed to {environment[name]}"


def test_k8s_configmap_matches_env_example(
    env_example: Any, k8s_objects: list[dict[str, Any]], service_env_names: dict[str, dict[str, str]],
    settings_classes: dict[str, type[BaseSettings]],
) -> None:
    [configmap] = [
        o for o in k8s_objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "speech-pipeline-config"
    ]
    data: dict[str, str] = configmap["data"]
    known = set().union(*(set(names) for names in service_env_names.values()))
    assert not sorted(set(data) - known), f"ConfigMap keys no service reads: {sorted(set(data) - known)}"
    expected = set(env_example.active) - K8S_PER_DEPLOYMENT
    secrets = {name for name in expected if _is_secret(name, settings_classes, service_env_names)}
    missing = sorted(expected - secrets - set(data))
    assert not missing, f"ConfigMap lacks settings that env.example sets: {missing}"
    for name in set(data) & set(env_example.active):
        assert data[name] == env_example.active[name], f"ConfigMap {name}={data[name]!r} differs"


def test_k8s_deployments_set_only_settings_their_service_reads(
    k8s_objects: list[dict[str, Any]], service_env_names: dict[str, dict[str, str]],
) -> None:
    modules = {"gateway": "gateway", "stt-worker": "stt_worker", "translation-worker": "translation_worker",
               "transcript-store": "transcript_store"}
    deployments = {o["metadata"]["name"]: o for o in k8s_objects if o["kind"] == "Deployment"}
    assert set(deployments) == set(modules)
    for name, deployment in deployments.items():
        names = service_env_names[modules[name]]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env_names = {entry["name"] for entry in container.get("env", [])}
            unknown = sorted(env_names - set(names) - K8S_HELPER_VARIABLES)
            assert not unknown, f"Deployment {name} sets {unknown}, which {modules[name]} does not read"
            expected = K8S_PER_DEPLOYMENT & set(names)
            assert expected <= env_names, f"Deployment {name} leaves {sorted(expected - env_names)} unset"


def _is_secret(
    name: str, settings_classes: dict[str, type[BaseSettings]], service_env_names: dict[str, dict[str, str]]
) -> bool:
    """Secrets go to the Secret, not the ConfigMap: the settings type them SecretStr."""
    for service, names in service_env_names.items():
        if name in names:
            annotation = settings_classes[service].model_fields[names[name]].annotation
            if "SecretStr" in str(annotation):
                return True
    return False
