"""SecuritySettings: algorithm derivation and pinning, TLS pairs, secrets kept out of reprs and
errors, and the bind policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from common.security_settings import (
    InsecureBindError,
    SecuritySettings,
    check_bind_policy,
    is_loopback,
    prepare_listeners,
)


def make_settings(**values: Any) -> SecuritySettings:
    """Settings from keyword values as the environment would give them (strings for secrets)."""
    return SecuritySettings(**values)



def test_defaults_have_auth_and_tls_off() -> None:
    s = SecuritySettings()
    assert not s.auth_enabled and not s.tls_enabled
    assert s.jwt_algorithm is None
    assert (s.connections_per_ip_per_minute, s.auth_failures_before_lockout, s.lockout_seconds) == (60, 5, 300)
    assert (s.sessions_per_subject, s.audio_seconds_per_subject_per_minute) == (5, 120)
    assert s.token_expiry_grace_seconds == 5 and s.allow_insecure is False


def test_secret_from_environment_means_hs256(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("JWT_SECRET", secret)
    monkeypatch.setenv("ALLOW_INSECURE", "1")
    s = SecuritySettings()
    assert s.auth_enabled and s.jwt_algorithm == "HS256" and s.allow_insecure
    assert s.jwt_secret is not None and s.jwt_secret.get_secret_value() == secret


def test_empty_secret_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "")
    assert not SecuritySettings().auth_enabled


def test_rsa_and_ec_keys_give_their_algorithm(rsa_files: tuple[Path, Path], ec_files: tuple[Path, Path]) -> None:
    s = make_settings(jwt_public_key_file=rsa_files[0], jwt_private_key_file=rsa_files[1])
    assert s.auth_enabled and s.jwt_algorithm == "RS256"
    assert make_settings(jwt_public_key_file=ec_files[0]).jwt_algorithm == "ES256"
    assert make_settings(jwt_public_key_file=rsa_files[0], jwt_algorithm="rs256").jwt_algorithm == "RS256"


@pytest.mark.parametrize("algorithm", ["none", "None", "HS512", "PS256", "EdDSA"])
def test_algorithms_outside_the_three_are_refused(algorithm: str, secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_ALGORITHM must be one of"):
        make_settings(jwt_secret=secret, jwt_algorithm=algorithm)


def test_mixing_secret_and_key_is_refused(secret: str, rsa_files: tuple[Path, Path]) -> None:
    with pytest.raises(ValidationError, match="not both"):
        make_settings(jwt_secret=secret, jwt_public_key_file=rsa_files[0])


def test_algorithm_must_match_what_is_configured(
    secret: str, rsa_files: tuple[Path, Path], ec_files: tuple[Path, Path]
) -> None:
    with pytest.raises(ValidationError, match="does not match"):
        make_settings(jwt_secret=secret, jwt_algorithm="RS256")
    with pytest.raises(ValidationError, match="does not match"):
        make_settings(jwt_public_key_file=rsa_files[0], jwt_algorithm="HS256")
    with pytest.raises(ValidationError, match="different types"):
        make_settings(jwt_public_key_file=rsa_files[0], jwt_private_key_file=ec_files[1])
    with pytest.raises(ValidationError, match="neither"):
        make_settings(jwt_algorithm="HS256")


def test_weak_keys_and_bad_files_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    (tmp_path / "small.pem").write_bytes(
        small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValidationError, match="at least 2048 bits"):
        make_settings(jwt_public_key_file=tmp_path / "small.pem")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    (tmp_path / "p384.pem").write_bytes(
        p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValidationError, match="P-256"):
        make_settings(jwt_public_key_file=tmp_path / "p384.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValidationError, match="not a PEM public key"):
        make_settings(jwt_public_key_file=tmp_path / "junk.pem")
    with pytest.raises(ValidationError, match="cannot be read"):
        make_settings(jwt_public_key_file=tmp_path / "missing.pem")


def test_tls_files_come_in_pairs_and_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match="set together"):
        make_settings(tls_cert_file=cert)
    with pytest.raises(ValidationError, match="does not exist"):
        make_settings(tls_cert_file=cert, tls_key_file=tmp_path / "nope.pem")
    assert make_settings(tls_cert_file=cert, tls_key_file=cert).tls_enabled


def test_secrets_never_in_repr_str_or_errors(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    metrics = "metrics-token-value-123"
    s = make_settings(jwt_secret=secret, metrics_token=metrics)
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert secret not in text and metrics not in text
    # A model-level error (after validation) and a field-level one (the secret itself is bad)
    # must name the variable without echoing any input.
    for kwargs in (
        {"jwt_secret": secret, "jwt_algorithm": "RS256", "metrics_token": metrics},
        {"jwt_secret": "short-secret-value", "metrics_token": metrics},
    ):
        with pytest.raises(ValidationError) as info:
            make_settings(**kwargs)
        # errors() holds the raw input by design; code that reports errors uses include_input=False.
        text = str(info.value) + repr(info.value) + str(info.value.errors(include_input=False))
        for value in kwargs.values():
            if value not in ("RS256",):
                assert value not in text
    monkeypatch.setenv("JWT_SECRET", "short-env-secret")
    with pytest.raises(ValidationError) as info:
        SecuritySettings()
    assert "short-env-secret" not in str(info.value) and "JWT_SECRET must be at least 32 bytes" in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_binds_are_always_allowed(host: str) -> None:
    assert is_loopback(host)
    check_bind_policy(host, auth_enabled=False, allow_insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.2", "example.com", "gateway"])
def test_public_bind_needs_auth_or_allow_insecure(host: str) -> None:
    with pytest.raises(InsecureBindError, match="ALLOW_INSECURE=1"):
        check_bind_policy(host, auth_enabled=False, allow_insecure=False)
    check_bind_policy(host, auth_enabled=True, allow_insecure=False)
    check_bind_policy(host, auth_enabled=False, allow_insecure=True)


def test_a_metrics_token_does_not_open_a_public_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOST=0.0.0.0, JWT_SECRET empty, METRICS_TOKEN set: the gateway's WebSocket would be open
    to anyone (the token guards only /metrics), so it refuses; a worker, whose only port is
    health and metrics, may start."""
    import common.logs
    from common.settings import GatewaySettings, SttSettings

    monkeypatch.setattr(common.logs, "_secrets", set())  # keep the test token out of the registry
    monkeypatch.delenv("ALLOW_INSECURE", raising=False)
    monkeypatch.delenv("JWT_PUBLIC_KEY_FILE", raising=False)
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("JWT_SECRET", "")
    monkeypatch.setenv("METRICS_TOKEN", "a-metrics-token-of-some-length")
    gateway = GatewaySettings()
    assert not gateway.auth_enabled and gateway.metrics_token is not None
    with pytest.raises(InsecureBindError, match="JWT_SECRET"):
        prepare_listeners(gateway)
    prepare_listeners(SttSettings(), serves_clients=False)
    monkeypatch.setenv("ALLOW_INSECURE", "1")
    prepare_listeners(GatewaySettings())  # the operator's explicit choice


@given(st.ip_addresses())
def test_bind_policy_agrees_with_ipaddress(address: object) -> None:
    host = str(address)
    refused = False
    try:
        check_bind_policy(host, auth_enabled=False, allow_insecure=False)
    except InsecureBindError:
        refused = True
    assert refused == (not address.is_loopback)  # type: ignore[attr-defined]


def test_a_service_settings_class_inherits_the_checks_and_hidden_inputs(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """How CommonSettings uses the mixin: its own model_config keeps hide_input_in_errors."""
    from pydantic import Field, SecretStr
    from pydantic_settings import SettingsConfigDict

    class ServiceSettings(SecuritySettings):
        model_config = SettingsConfigDict(frozen=True, case_sensitive=False, extra="ignore")
        redis_url: SecretStr = Field(default=SecretStr("redis://localhost:6379"))

    monkeypatch.setenv("REDIS_URL", "redis://:redis-password-value@host:6379")
    monkeypatch.setenv("JWT_SECRET", secret)
    assert ServiceSettings().jwt_algorithm == "HS256"
    monkeypatch.setenv("JWT_ALGORITHM", "ES256")
    with pytest.raises(ValidationError) as info:
        ServiceSettings()
    assert "redis-password-value" not in str(info.value) and secret not in str(info.value)
