"""Fixtures for the security integration tests: a self-signed CA and server certificate made
in the test with trustme, and a clean security environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

SECURITY_VARIABLES = (
    "JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "JWT_PRIVATE_KEY_FILE", "JWT_ALGORITHM", "JWT_AUDIENCE",
    "JWT_ISSUER", "TLS_CERT_FILE", "TLS_KEY_FILE", "METRICS_TOKEN", "ALLOW_INSECURE",
)


@pytest.fixture(autouse=True)
def clean_security_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(certificate chain, private key, CA certificate) PEM files for 127.0.0.1 and localhost."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return chain, key, ca_file


@pytest.fixture
def secret() -> str:
    return "integration-" + "y" * 40
