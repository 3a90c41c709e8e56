"""The security settings as infra/ wires them: every service can start, credentials stay secret.

A service that binds a public address (0.0.0.0 in every container) refuses to start unless it
has authentication (JWT_SECRET or JWT_PUBLIC_KEY_FILE), a METRICS_TOKEN, or ALLOW_INSECURE.
These tests build each service's real settings class from exactly what docker-compose or a
Kubernetes Deployment gives it and run the check the service runs before it listens
(``prepare_listeners``), so a manifest that would crash-loop fails here instead.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

import common.logs
from common.security_settings import InsecureBindError, SecuritySettings, is_loopback, prepare_listeners

SERVICES = ("gateway", "stt_worker", "translation_worker")
#: Deployment name -> the service (settings class key) it runs.
DEPLOYMENT_SERVICES = {"gateway": "gateway", "stt-worker": "stt_worker", "translation-worker": "translation_worker"}
#: Files that must never be handed to a running service: they sign tokens.
SIGNING_KEY_SETTINGS = frozenset({"JWT_PRIVATE_KEY_FILE"})
_K8S_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@pytest.fixture(autouse=True)
def _private_redaction_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare_listeners registers secrets for log redaction: keep the test values out of
    the process-wide registry other tests' logs go through."""
    monkeypatch.setattr(common.logs, "_secrets", set())


def _build(
    cls: type[BaseSettings], names: dict[str, str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The service's settings from `env` alone: whatever the developer's shell exports is cleared."""
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, "" if value is None else str(value))
    try:
        return cls()
    except ValidationError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{cls.__name__} rejects the configuration infra/ gives it: {exc}")


def _start_checks(settings: Any) -> None:
    """What the service does before it listens: the bind policy, then the TLS context."""
    assert not is_loopback(settings.host), "the bind policy is only exercised on a public address"
    serves_clients = hasattr(settings, "gateway_port")  # as gateway/service.py and common/worker.py call it
    assert prepare_listeners(settings, redis_url=settings.redis_url.get_secret_value(),
                             serves_clients=serves_clients) is None, (
        "TLS is not wired by default: the healthchecks and probes call http://"
    )


# docker-compose ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_every_service_what_it_needs_to_start(
    service: str, compose_config: dict[str, Any], settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = compose_config["services"][service]["environment"]
    settings = _build(settings_classes[service], service_env_names[service], environment, monkeypatch)
    _start_checks(settings)
    # The gateway must authenticate clients, not merely guard /metrics.
    if service == "gateway":
        assert settings.auth_enabled and settings.jwt_algorithm == "HS256"


@pytest.mark.parametrize("service", ["stt_worker", "translation_worker"])
def test_a_compose_worker_without_credentials_would_refuse_to_start(
    service: str, compose_config: dict[str, Any], settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]], credential_settings: frozenset[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start check above is not vacuous: a worker on 0.0.0.0 with neither credential stops."""
    environment = {
        name: value for name, value in compose_config["services"][service]["environment"].items()
        if name not in credential_settings
    }
    settings = _build(settings_classes[service], service_env_names[service], environment, monkeypatch)
    with pytest.raises(InsecureBindError):
        _start_checks(settings)


def _credential_reference(value: Any, name: str) -> bool:
    """`${NAME}`, `${NAME:?message}` or `${NAME:-}`: from .env, with no default value."""
    return re.fullmatch(rf"\$\{{{name}(:\?[^}}]*|:-)?\}}", str(value)) is not None


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_takes_credentials_from_env_file_only(
    paths: Any, compose_file: str, credential_settings: frozenset[str]
) -> None:
    # safe_load resolves the anchors and `<<` merges, so x-common-env is seen per service.
    raw = yaml.safe_load((paths.infra / compose_file).read_text())
    for service, config in raw["services"].items():
        environment = config.get("environment") or {}
        assert isinstance(environment, dict), f"{service}: use the mapping form for environment"
        for name in credential_settings & set(environment):
            assert _credential_reference(environment[name], name), (
                f"{compose_file}: {service} gets {name} from something other than .env: {environment[name]!r}"
            )
        assert not SIGNING_KEY_SETTINGS & set(environment), f"{service} is given a signing key"


def test_compose_gives_the_gateway_a_required_jwt_secret(paths: Any) -> None:
    raw = yaml.safe_load((paths.infra / "docker-compose.yml").read_text())
    assert str(raw["services"]["gateway"]["environment"]["JWT_SECRET"]).startswith("${JWT_SECRET:?")


def test_compose_gives_the_token_key_to_the_gateway_only(compose_config: dict[str, Any]) -> None:
    """Workers verify no tokens: a worker holding JWT_SECRET could mint any client's token."""
    for service in ("stt_worker", "translation_worker"):
        environment = compose_config["services"][service]["environment"]
        assert "JWT_SECRET" not in environment and "JWT_PRIVATE_KEY_FILE" not in environment, service
        assert environment["METRICS_TOKEN"], f"{service} binds 0.0.0.0: it needs METRICS_TOKEN"
    assert compose_config["services"]["gateway"]["environment"]["JWT_SECRET"]


# Kubernetes ----------------------------------------------------------------------------------


def _resolve_k8s_env(
    container: dict[str, Any], configmaps: dict[str, dict[str, Any]], secret_keys: set[str]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env in order with
    $(NAME) references expanded. Secret keys get strong stand-in values, not the template's
    placeholders."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = _K8S_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), entry["value"])
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secret_keys, ref
        env[entry["name"]] = f"stand-in-{ref['key'].lower()}-".ljust(48, "x")
    return env


def _objects(k8s_objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects if o["kind"] == kind}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENT_SERVICES))
def test_k8s_gives_every_deployment_what_it_needs_to_start(
    deployment: str, k8s_objects: list[dict[str, Any]], settings_classes: dict[str, type[BaseSettings]],
    service_env_names: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = DEPLOYMENT_SERVICES[deployment]
    [secret] = _objects(k8s_objects, "Secret").values()
    [container] = _objects(k8s_objects, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    env = _resolve_k8s_env(container, _objects(k8s_objects, "ConfigMap"), set(secret["stringData"]))
    settings = _build(settings_classes[service], service_env_names[service], env, monkeypatch)
    _start_checks(settings)
    if service == "gateway":
        assert settings.auth_enabled and settings.metrics_token is not None
    else:
        # /metrics is the workers' only listener: the token guards it.
        assert settings.metrics_token is not None


def test_k8s_gives_the_token_key_to_the_gateway_only(k8s_objects: list[dict[str, Any]]) -> None:
    for name, deployment in _objects(k8s_objects, "Deployment").items():
        names = {
            entry["name"]
            for container in deployment["spec"]["template"]["spec"]["containers"]
            for entry in container.get("env", [])
        }
        assert ("JWT_SECRET" in names) == (name == "gateway"), name


def test_k8s_takes_credentials_from_the_secret_only(
    k8s_objects: list[dict[str, Any]], credential_settings: frozenset[str]
) -> None:
    for configmap in _objects(k8s_objects, "ConfigMap").values():
        leaked = sorted((credential_settings | SIGNING_KEY_SETTINGS) & set(configmap.get("data", {})))
        assert not leaked, f"ConfigMap {configmap['metadata']['name']} carries {leaked}"
    for name, deployment in _objects(k8s_objects, "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                assert entry["name"] not in SIGNING_KEY_SETTINGS, f"Deployment {name} is given a signing key"
                if entry["name"] in credential_settings:
                    assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (
                        f"Deployment {name}: {entry['name']} must come from a Secret"
                    )


def test_secret_template_jwt_placeholder_fails_closed(paths: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the template applied unedited stops the gateway instead of running it with a
    key published in this repository: the placeholder is shorter than the 32-byte minimum."""
    [secret] = yaml.safe_load_all((paths.k8s / "templates" / "secret.example.yaml").read_text())
    placeholder = secret["stringData"]["JWT_SECRET"]
    for name in ("JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "JWT_PRIVATE_KEY_FILE", "JWT_ALGORITHM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="JWT_SECRET must be at least 32 bytes"):
        SecuritySettings(jwt_secret=placeholder)


# env.example ---------------------------------------------------------------------------------


def test_env_example_shows_no_credential_value(env_example: Any, credential_settings: frozenset[str]) -> None:
    example = env_example
    for name in credential_settings | SIGNING_KEY_SETTINGS:
        assert name in example.names, f"env.example does not document {name}"
        shown = example.active.get(name, example.documented.get(name))
        assert shown == "", f"env.example shows a value for {name}: it must be the user's own"
    # docker-compose requires JWT_SECRET, so it stays a comment until the user sets it.
    assert "JWT_SECRET" in example.documented



def test_credentials_are_secret_typed_in_every_service(
    settings_classes: dict[str, type[BaseSettings]], service_env_names: dict[str, dict[str, str]],
    credential_settings: frozenset[str],
) -> None:
    """The list above is the settings' own: each credential is a SecretStr every service reads."""
    for service, cls in settings_classes.items():
        for name in credential_settings:
            field = cls.model_fields[service_env_names[service][name]]
            assert "SecretStr" in str(field.annotation), f"{service}: {name} is {field.annotation}"
