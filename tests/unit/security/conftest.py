"""Fixtures for the security unit tests: key material made in the run (never stored), clean env."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "s3cr3t-" + "x" * 40  # long enough for HS256 (32+ bytes)


@cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(curve: str = "p256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "p256" else ec.SECP384R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_pair(directory: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, name: str) -> tuple[Path, Path]:
    """(public, private) PEM files of ``key`` in ``directory``."""
    pub = directory / f"{name}.pub.pem"
    priv = directory / f"{name}.key.pem"
    pub.write_bytes(public_pem(key))
    priv.write_bytes(private_pem(key))
    return pub, priv


JWT_VARIABLES = (
    "JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "JWT_PRIVATE_KEY_FILE", "JWT_ALGORITHM", "JWT_AUDIENCE",
    "JWT_ISSUER", "JWT_LEEWAY_SECONDS", "TOKEN_EXPIRY_GRACE_SECONDS", "TLS_CERT_FILE", "TLS_KEY_FILE",
    "METRICS_TOKEN", "ALLOW_INSECURE",
)


@pytest.fixture(autouse=True)
def clean_security_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: start every test from none of these variables set."""
    for name in JWT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rsa_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_pair(tmp_path, rsa_key(), "rsa")


@pytest.fixture
def ec_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_pair(tmp_path, ec_key(), "ec")


@pytest.fixture
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture
def ec_private() -> ec.EllipticCurvePrivateKey:
    return ec_key()


@pytest.fixture
def secret() -> str:
    return SECRET
