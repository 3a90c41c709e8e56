"""Security settings every service shares: JWT, TLS, the metrics token, limits, bind policy.

:class:`SecuritySettings` is a pydantic-settings mixin that ``CommonSettings`` inherits, so a
service's one frozen settings object carries these too. Authentication is on when
``JWT_SECRET`` (HS256) or ``JWT_PUBLIC_KEY_FILE`` (RS256 or ES256) is set; the algorithm is
derived from what is configured (or checked against ``JWT_ALGORITHM`` when given) and then
pinned: ``none`` and a mix of a shared secret with a key pair are refused at start.

Secrets are ``SecretStr`` and ``hide_input_in_errors`` is on, so neither the repr nor a
validation error can print a secret: errors name the variable, never its value.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import load_pem_x509_certificate
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.lifecycle import StartupRefused

JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
ALLOWED_ALGORITHMS: tuple[str, ...] = ("HS256", "RS256", "ES256")
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash (256 bits)
MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class InsecureBindError(StartupRefused):
    """A public address was to be bound with authentication off and ALLOW_INSECURE unset."""


def _algorithm_for_key(key: Any, variable: str) -> JwtAlgorithm:
    """RS256 for an RSA key of 2048+ bits, ES256 for a P-256 key; anything else is refused."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"{variable}: RSA keys need at least {MIN_RSA_BITS} bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"{variable}: ES256 needs a P-256 (secp256r1) key")
        return "ES256"
    raise ValueError(f"{variable}: only RSA (RS256) and P-256 EC (ES256) keys are supported")


def load_public_key(path: Path) -> PublicKey:
    """A PEM public key, or the public key of a PEM certificate."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE {path} cannot be read: {exc.strerror}") from None
    try:
        if b"BEGIN CERTIFICATE" in data:
            key: Any = load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ValueError(f"JWT_PUBLIC_KEY_FILE {path} is not a PEM public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(f"JWT_PUBLIC_KEY_FILE {path}: only RSA and EC keys are supported")
    return key


def load_private_key(path: Path) -> PrivateKey:
    """An unencrypted PEM private key (for minting development tokens only)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"JWT_PRIVATE_KEY_FILE {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's message may quote key material; ours names only the file.
        raise ValueError(f"JWT_PRIVATE_KEY_FILE {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"JWT_PRIVATE_KEY_FILE {path}: only RSA and EC keys are supported")
    return key


class SecuritySettings(BaseSettings):
    """JWT, TLS, metrics token, limits and the bind policy, read from the environment."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=False, extra="ignore", hide_input_in_errors=True
    )

    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 shared secret (32+ bytes); turns authentication on."
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key or certificate (RS256/ES256); turns authentication on."
    )
    jwt_private_key_file: Path | None = Field(
        default=None, description="PEM private key to mint development tokens (speech-pipeline token)."
    )
    jwt_algorithm: JwtAlgorithm | None = Field(
        default=None, description="HS256, RS256 or ES256; derived from the secret or key when unset."
    )
    jwt_audience: str | None = Field(default=None, description="Required aud claim, when set.")
    jwt_issuer: str | None = Field(default=None, description="Required iss claim, when set.")
    jwt_leeway_seconds: float = Field(
        default=5.0, ge=0, le=300, description="Clock skew allowed on exp and nbf."
    )
    token_expiry_grace_seconds: float = Field(
        default=5.0, ge=0, le=300, description="After token_expired, seconds before the session is closed."
    )
    auth_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="How long a client may take to send its first auth message."
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate chain: wss and https.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of TLS_CERT_FILE.")
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token /metrics requires, when set."
    )
    allow_insecure: bool = Field(
        default=False, description="Allow binding a public address with authentication off."
    )
    connections_per_ip_per_minute: int = Field(
        default=60, ge=1, description="WebSocket connection attempts per client IP per minute."
    )
    http_requests_per_ip_per_minute: int = Field(
        default=600, ge=1, description="Plain HTTP requests (page, REST) per client IP per minute on the public port."
    )
    auth_failures_before_lockout: int = Field(
        default=5, ge=1, description="Failed authentications from one IP before it is locked out."
    )
    lockout_seconds: float = Field(default=300.0, gt=0, description="How long a lockout lasts.")
    sessions_per_subject: int = Field(
        default=5, ge=1, description="Concurrent sessions per token subject, across gateways."
    )
    audio_seconds_per_subject_per_minute: float = Field(
        default=120.0, gt=0, description="Seconds of audio per token subject per minute, across gateways."
    )

    @field_validator("jwt_algorithm", mode="before")
    @classmethod
    def _check_algorithm(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        name = str(value).strip().upper()
        if name not in ALLOWED_ALGORITHMS:
            # A fixed message: "none" and every other algorithm are refused alike.
            raise ValueError(f"JWT_ALGORITHM must be one of {', '.join(ALLOWED_ALGORITHMS)}")
        return name

    @field_validator("jwt_secret", "metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # JWT_SECRET= in an env file means "off", not "an empty secret".
        if value == "" or (isinstance(value, SecretStr) and value.get_secret_value() == ""):
            return None
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @model_validator(mode="after")
    def _check_security(self) -> SecuritySettings:
        derived = self._derive_algorithm()
        if derived is not None and self.jwt_algorithm not in (None, derived):
            raise ValueError(
                f"JWT_ALGORITHM={self.jwt_algorithm} does not match the configured "
                f"{'JWT_SECRET' if derived == 'HS256' else 'key'} ({derived})"
            )
        if derived is None and self.jwt_algorithm is not None:
            raise ValueError("JWT_ALGORITHM is set but neither JWT_SECRET nor a JWT key file is")
        # The model is frozen: set the derived value once, here, the pydantic way.
        object.__setattr__(self, "jwt_algorithm", derived)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        for name in ("tls_cert_file", "tls_key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name.upper()} {path} does not exist")
        return self

    def _derive_algorithm(self) -> JwtAlgorithm | None:
        """The one algorithm the configuration allows; mixing HS with RS/ES is refused."""
        has_key = self.jwt_public_key_file is not None or self.jwt_private_key_file is not None
        if self.jwt_secret is not None and has_key:
            raise ValueError(
                "set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE/JWT_PRIVATE_KEY_FILE "
                "(RS256/ES256), not both"
            )
        if self.jwt_secret is not None:
            return "HS256"
        algorithm: JwtAlgorithm | None = None
        if self.jwt_public_key_file is not None:
            algorithm = _algorithm_for_key(load_public_key(self.jwt_public_key_file), "JWT_PUBLIC_KEY_FILE")
        if self.jwt_private_key_file is not None:
            private = _algorithm_for_key(load_private_key(self.jwt_private_key_file), "JWT_PRIVATE_KEY_FILE")
            if algorithm is not None and private != algorithm:
                raise ValueError("JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE are keys of different types")
            algorithm = algorithm or private
        return algorithm

    @property
    def auth_enabled(self) -> bool:
        """Clients must present a valid token (a secret or a public key is configured)."""
        return self.jwt_secret is not None or self.jwt_public_key_file is not None

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; wildcards and other names are public."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to anything: treat it as public.
        return False


def check_bind_policy(host: str, auth_enabled: bool, allow_insecure: bool) -> None:
    """Refuse to serve a non-loopback address without authentication unless ALLOW_INSECURE."""
    if auth_enabled or allow_insecure or is_loopback(host):
        return
    raise InsecureBindError(
        f"refusing to bind {host or '0.0.0.0'} with authentication off: set JWT_SECRET or "
        "JWT_PUBLIC_KEY_FILE, bind HOST=127.0.0.1, or set ALLOW_INSECURE=1 to accept the risk"
    )


def prepare_listeners(settings: SecuritySettings, *, redis_url: str | None = None) -> ssl.SSLContext | None:
    """What every service does before it listens: refuse an insecure public bind, register
    its secrets for redaction, and build the TLS context (None without TLS)."""
    from common.logs import register_secret
    from common.tls import server_ssl_context

    host = str(getattr(settings, "host", "127.0.0.1"))
    guarded = settings.auth_enabled or settings.metrics_token is not None
    check_bind_policy(host, guarded, settings.allow_insecure)
    for secret in (settings.jwt_secret, settings.metrics_token):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if redis_url:
        # Only the password is secret: the host and port stay readable in error messages.
        password = urlsplit(redis_url).password
        if password:
            register_secret(password)
    return server_ssl_context(settings.tls_cert_file, settings.tls_key_file)
