"""Each service's extra covers what the service imports, and no more heavy stacks than it needs.

From ``<service>.__main__`` the test follows every project import (lazy ones too, see
:mod:`tests.import_graph`), collects the third-party top-level modules reached, maps them to
their distributions, and checks that each is in ``dependencies`` or the service's extra.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.import_graph import ROOT, imported, modules

if sys.version_info < (3, 11):
    pytest.skip("tomllib is Python 3.11+", allow_module_level=True)
import tomllib

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVICE_EXTRA = {"gateway": "gateway", "stt_worker": "stt", "translation_worker": "translation"}
# Extras a service can use when installed (imported lazily, with a clear message otherwise).
OPTIONAL = {"gateway": (), "stt_worker": ("models",), "translation_worker": ("easynmt",)}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(*extras: str) -> set[str]:
    found = {_name(r) for r in PROJECT["dependencies"]}
    for extra in extras:
        found |= {_name(r) for r in PROJECT["optional-dependencies"][extra]}
    return found


def third_party_imports(entry: str) -> set[str]:
    """Top-level non-project, non-stdlib modules reachable from module ``entry``."""
    known = modules()
    project_roots = {name.split(".")[0] for name in known}
    seen: set[str] = set()
    todo = [entry]
    outside: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in known:
            continue
        seen.add(name)
        path = known[name]
        for target in imported(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py"):
            root = target.split(".")[0]
            if root in project_roots:
                # ``import a.b.c`` runs a/__init__ and a/b/__init__ as well.
                parts = target.split(".")
                todo.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            elif root and root not in sys.stdlib_module_names and root != "__future__":
                outside.add(root)
    return outside


def _distributions(top_levels: set[str]) -> set[str]:
    by_module = packages_distributions()
    return {
        dist.lower().replace("_", "-")
        for module in top_levels
        for dist in by_module.get(module, [module])
    }


def _missing(top_levels: set[str], installed: set[str]) -> set[str]:
    """Top-level modules none of whose distributions is installed by ``installed``. A namespace
    package (``opentelemetry``) belongs to many distributions: one of them is enough."""
    by_module = packages_distributions()
    return {
        module for module in top_levels
        if not {d.lower().replace("_", "-") for d in by_module.get(module, [module])} & installed
    }


@pytest.mark.parametrize("service", sorted(SERVICE_EXTRA))
def test_a_service_imports_only_what_its_extra_installs(service: str) -> None:
    needed = third_party_imports(f"{service}.__main__")
    assert needed, "nothing found: the walk is broken"
    assert _missing(needed, _requirements(SERVICE_EXTRA[service], *OPTIONAL[service])) == set()


def test_the_gateway_carries_no_speech_recognition_stack() -> None:
    gateway = _requirements("gateway")
    assert not gateway & {"faster-whisper", "ctranslate2", "sentencepiece", "tokenizers", "torch"}
    assert not _distributions(third_party_imports("gateway.__main__")) & {"faster-whisper", "ctranslate2"}


@pytest.mark.parametrize("service", sorted(SERVICE_EXTRA))
def test_each_dockerfile_installs_its_service_extra(service: str) -> None:
    text = (ROOT / "infra" / "docker" / f"{service}.Dockerfile").read_text()
    extras = re.findall(r'pip install [^\n&]*"\.\[([^\]"]+)\]"', text)
    defaults = dict(re.findall(r"^ARG (\w+)=(.*)$", text, re.M))
    installed = {
        part.strip()
        for group in extras
        for part in re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), ""), group).split(",")
    }
    assert SERVICE_EXTRA[service] in installed, extras
    if service != "stt_worker":
        assert "stt" not in installed and "models" not in installed


def test_the_gateway_image_puts_silero_where_the_gateway_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import vad

    text = (ROOT / "infra" / "docker" / "gateway.Dockerfile").read_text()
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    assert str(vad.installed_silero_copy()) in text
    # With the copy present it is used, whether or not faster-whisper is installed.
    copy = tmp_path / "share" / "speech-pipeline" / vad.SILERO_FILE
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"onnx")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert vad.default_silero_path() == copy


@pytest.mark.parametrize("service", sorted(SERVICE_EXTRA))
def test_the_seeds_per_service_requirements_install_the_same_extra(service: str) -> None:
    lines = [line.strip() for line in (ROOT / service / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    [requirement] = lines
    extras = set(re.fullmatch(r"\.\[([\w,]+)\]", requirement).group(1).split(","))  # type: ignore[union-attr]
    assert SERVICE_EXTRA[service] in extras
