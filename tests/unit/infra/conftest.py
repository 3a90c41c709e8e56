"""Fixtures for the offline validation of infra/: parsed env.example, settings, compose and k8s.

Everything here reads files or runs validators that need no network and no Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
DOCKER = INFRA / "docker"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

#: The compose service, Python module and settings class of each service.
SERVICE_SETTINGS: dict[str, str] = {
    "gateway": "GatewaySettings",
    "stt_worker": "SttSettings",
    "translation_worker": "TranslationSettings",
    "transcript_store": "StoreSettings",
}

#: Variables docker-compose requires from .env (`${NAME:?message}`), with the dummy values the
#: tests give them: valid ones (JWT_SECRET needs 32+ bytes), so the services' settings accept
#: the effective configuration.
COMPOSE_REQUIRED_ENV: dict[str, str] = {
    "JWT_SECRET": "test-only-jwt-secret-0123456789abcdef",
    "METRICS_TOKEN": "test-only-metrics-token-0123456789",
}
#: Credentials: only ever from the Secret (Kubernetes) or .env (docker-compose), never a
#: literal in a manifest, a compose default or a value shown in env.example.
CREDENTIAL_SETTINGS = frozenset({"JWT_SECRET", "METRICS_TOKEN"})

_ACTIVE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_DOCUMENTED = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EnvExample:
    """infra/env.example: active `NAME=value` lines and documented-only `# NAME=value` lines."""

    active: dict[str, str]
    documented: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.active) | set(self.documented)


def parse_env_example(path: Path) -> EnvExample:
    active: dict[str, str] = {}
    documented: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        for pattern, target in ((_ACTIVE, active), (_DOCUMENTED, documented)):
            match = pattern.match(line)
            if match:
                name, value = match.groups()
                # A name listed twice would leave the reader guessing which one wins.
                assert name not in active and name not in documented, f"{path}:{lineno}: {name} twice"
                target[name] = value
    return EnvExample(active=active, documented=documented)


def settings_env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> field name, as pydantic-settings resolves them."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names[alias.upper()] = field_name
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names[choice.upper()] = field_name
        else:
            names[(prefix + field_name).upper()] = field_name
    return names


@pytest.fixture(scope="session")
def settings_classes() -> dict[str, type[BaseSettings]]:
    """Each service's settings class, from common/settings.py."""
    import common.settings as settings_module

    return {service: getattr(settings_module, name) for service, name in SERVICE_SETTINGS.items()}


@pytest.fixture(scope="session")
def service_env_names(settings_classes: dict[str, type[BaseSettings]]) -> dict[str, dict[str, str]]:
    return {service: settings_env_names(cls) for service, cls in settings_classes.items()}


@pytest.fixture(scope="session")
def compose_required_env() -> dict[str, str]:
    return dict(COMPOSE_REQUIRED_ENV)


@pytest.fixture(scope="session")
def credential_settings() -> frozenset[str]:
    return CREDENTIAL_SETTINGS


@pytest.fixture(scope="session")
def env_example() -> EnvExample:
    return parse_env_example(INFRA / "env.example")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="session")
def k8s_files() -> list[Path]:
    files = sorted(K8S.rglob("*.yaml"))
    assert files, "no manifests under infra/k8s"
    return files


@pytest.fixture(scope="session")
def k8s_objects(k8s_files: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in k8s_files for doc in load_yaml_documents(path)]


@dataclass(frozen=True)
class InfraPaths:
    root: Path = ROOT
    infra: Path = INFRA
    k8s: Path = K8S
    docker: Path = DOCKER
    schemas: Path = SCHEMAS


@pytest.fixture(scope="session")
def paths() -> InfraPaths:
    return InfraPaths()


def docker_compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; `make system-deps`)")
    return binary


def run_docker_compose(
    *args: str, files: tuple[str, ...] = ("docker-compose.yml",), env: dict[str, str] | None = None,
    tmp_path: Path,
) -> subprocess.CompletedProcess[str]:
    """docker-compose on infra/, with an empty env file and a minimal environment.

    A developer's infra/.env or exported settings must not change what the tests see.
    """
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    command = [docker_compose_binary(), "--env-file", str(env_file)]
    for name in files:
        command += ["-f", str(INFRA / name)]
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [*command, *args], env={**base_env, **(env or {})}, capture_output=True, text=True,
        timeout=120, check=False, cwd=INFRA,
    )


ComposeRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def compose(tmp_path: Path) -> ComposeRunner:
    """docker-compose on infra/ (skips when the binary is absent): compose("config", "-q")."""

    def run(
        *args: str, files: tuple[str, ...] = ("docker-compose.yml",), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_docker_compose(*args, files=files, env=env, tmp_path=tmp_path)

    return run


@pytest.fixture(scope="session")
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The effective compose configuration (anchors merged, variables at their defaults)."""
    result = run_docker_compose(
        "config", env=COMPOSE_REQUIRED_ENV, tmp_path=tmp_path_factory.mktemp("compose")
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="session")
def python_tool() -> Callable[[str], list[str]]:
    """The command that runs a validator as `python -m module` from this interpreter."""

    def command(module: str) -> list[str]:
        return [sys.executable, "-m", module]

    return command
