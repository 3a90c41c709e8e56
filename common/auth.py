"""JWT verification for client connections, token extraction, session leases, dev minting.

:class:`TokenVerifier` checks a token with exactly one algorithm, pinned from the settings
(HS256 with ``JWT_SECRET``, RS256/ES256 with ``JWT_PUBLIC_KEY_FILE``): a token whose header
names another algorithm (``none``, or HS256 signed with the RSA public key as the HMAC
secret) is refused before any key is used. ``exp`` and ``sub`` are required, ``nbf`` is
checked, ``aud`` and ``iss`` when configured.

Every refusal is an :class:`AuthError` with a stable ``code`` and a fixed message: neither
ever holds the token, and PyJWT's own exception (whose text could quote token parts) is not
chained to it.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt

from common.security_settings import (
    PublicKey,
    SecuritySettings,
    load_private_key,
    load_public_key,
)

MAX_TOKEN_CHARS = 8192  # larger "tokens" are refused before any parsing

TOKEN_MISSING = "token_missing"
TOKEN_INVALID = "token_invalid"
TOKEN_EXPIRED = "token_expired"
TOKEN_NOT_YET_VALID = "token_not_yet_valid"
TOKEN_AUDIENCE = "token_audience"
TOKEN_ISSUER = "token_issuer"
TOKEN_SUBJECT_CHANGED = "token_subject_changed"


class AuthError(Exception):
    """A refused token: ``code`` is stable snake_case, ``message`` is for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Claims:
    """A verified token: who (``sub``), until when (``exp``, epoch seconds), and every claim."""

    subject: str
    expires_at: float
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class VerifierOptions:
    """What a :class:`TokenVerifier` checks; build it with :meth:`TokenVerifier.from_settings`."""

    algorithm: str
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 5.0


class TokenVerifier:
    """Verifies client tokens with one pinned algorithm and key."""

    def __init__(self, key: str | bytes | PublicKey, options: VerifierOptions) -> None:
        if options.algorithm not in ("HS256", "RS256", "ES256"):
            raise ValueError("TokenVerifier accepts HS256, RS256 or ES256 only")
        if options.algorithm == "HS256" and not isinstance(key, str | bytes):
            raise ValueError("HS256 needs a shared secret")
        if options.algorithm != "HS256" and isinstance(key, str | bytes):
            # A PEM string would let PyJWT treat it as bytes elsewhere; insist on a key object.
            raise ValueError(f"{options.algorithm} needs a public key object")
        self._key = key
        self.options = options

    def __repr__(self) -> str:
        return f"TokenVerifier(algorithm={self.options.algorithm!r})"

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> TokenVerifier | None:
        """The verifier the settings configure, or None when authentication is off."""
        if not settings.auth_enabled or settings.jwt_algorithm is None:
            return None
        key: str | PublicKey
        if settings.jwt_secret is not None:
            key = settings.jwt_secret.get_secret_value()
        else:
            assert settings.jwt_public_key_file is not None
            key = load_public_key(settings.jwt_public_key_file)
        return cls(
            key,
            VerifierOptions(
                algorithm=settings.jwt_algorithm,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway_seconds=settings.jwt_leeway_seconds,
            ),
        )

    def verify(self, token: str | None) -> Claims:
        """The token's claims, or :class:`AuthError` saying why it is refused."""
        if not token:
            raise AuthError(TOKEN_MISSING, "a bearer token is required")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError(TOKEN_INVALID, "token is too long")
        opts = self.options
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError(TOKEN_INVALID, "token is malformed") from None
        # Checked here as well as by PyJWT: the pin must not depend on one library check.
        if header.get("alg") != opts.algorithm:
            raise AuthError(TOKEN_INVALID, "token algorithm is not accepted")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[opts.algorithm],
                audience=opts.audience,
                issuer=opts.issuer,
                leeway=opts.leeway_seconds,
                options={
                    "require": ["exp", "sub"],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    # Without a configured audience an aud claim is not ours to judge.
                    "verify_aud": opts.audience is not None,
                    "verify_iss": opts.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(TOKEN_EXPIRED, "token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(TOKEN_NOT_YET_VALID, "token is not valid yet (nbf/iat)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(TOKEN_AUDIENCE, "token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthError(TOKEN_ISSUER, "token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            claim = exc.claim if exc.claim in ("exp", "sub", "aud", "iss") else "a required"
            raise AuthError(TOKEN_INVALID, f"token lacks the {claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError(TOKEN_INVALID, "token signature is invalid") from None
        except jwt.InvalidTokenError:
            raise AuthError(TOKEN_INVALID, "token is invalid") from None
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise AuthError(TOKEN_INVALID, "token sub claim must be a non-empty string")
        return Claims(subject=subject, expires_at=float(payload["exp"]), raw=payload)


def extract_token(headers: Mapping[str, str] | Any, path: str | None) -> str | None:
    """The token from ``Authorization: Bearer ...``, else from ``?token=`` in the path.

    ``headers`` is anything with a case-insensitive ``get`` (websockets' ``Headers``,
    aiohttp's ``CIMultiDict``). The header wins: it is the form that stays out of proxy logs.
    """
    value = headers.get("Authorization") if headers is not None else None
    if value:
        scheme, _, credentials = str(value).strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    if path:
        query = urlsplit(path).query
        if query:
            tokens = parse_qs(query, keep_blank_values=False).get("token")
            if tokens and tokens[0].strip():
                return tokens[0].strip()
    return None


def token_from_auth_message(message: str | bytes) -> str | None:
    """The token of a first ``{"type": "auth", "token": ...}`` message, or None.

    For clients that cannot set a header and would rather not put the token in the URL.
    """
    if isinstance(message, bytes) or len(message) > MAX_TOKEN_CHARS + 256:
        return None
    if message.count("[") + message.count("{") > 256:
        return None  # nesting built to make the decoder recurse: not an auth message
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        # RecursionError: a deeply nested array before auth is bad input, not a crash.
        return None
    if not isinstance(data, dict) or data.get("type") != "auth":
        return None
    token = data.get("token")
    return token if isinstance(token, str) and token else None


def bearer_matches(header_value: str | None, expected_token: str) -> bool:
    """``Authorization: Bearer <expected_token>``, compared in constant time (for /metrics)."""
    if not header_value:
        return False
    scheme, _, credentials = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), expected_token.encode())


LeaseState = Literal["ok", "expired", "close"]


@dataclass
class AuthLease:
    """How long an authenticated session may go on; a refresh with a fresh token extends it.

    Pure: the caller passes the wall clock (``time.time()``; ``exp`` is epoch seconds).
    ``poll`` says ``expired`` once (send ``error`` ``token_expired``), then ``close`` after
    the grace period if no refresh came in between.
    """

    claims: Claims
    grace_seconds: float = 5.0
    _notified: bool = field(default=False, repr=False)

    @property
    def subject(self) -> str:
        return self.claims.subject

    @property
    def expires_at(self) -> float:
        return self.claims.expires_at

    def refresh(self, claims: Claims) -> None:
        """Take a newly verified token; it must be for the same subject."""
        if claims.subject != self.claims.subject:
            raise AuthError(TOKEN_SUBJECT_CHANGED, "a refresh token must be for the same subject")
        self.claims = claims
        self._notified = False

    def poll(self, now: float) -> LeaseState | None:
        """``expired`` the first time past ``exp``; ``close`` past ``exp`` + grace; else None."""
        if now < self.claims.expires_at:
            return None
        if now >= self.claims.expires_at + self.grace_seconds:
            return "close"
        if not self._notified:
            self._notified = True
            return "expired"
        return None


def mint_token(
    settings: SecuritySettings,
    subject: str,
    ttl_seconds: float,
    *,
    now: float | None = None,
    **claims: Any,
) -> str:
    """A token signed with the configured key, for development and tests.

    HS256 signs with ``JWT_SECRET``; RS256/ES256 with ``JWT_PRIVATE_KEY_FILE``. ``aud`` and
    ``iss`` default to the configured ones; extra ``claims`` are added (and may override).
    """
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    algorithm = settings.jwt_algorithm
    key: Any
    if algorithm == "HS256" and settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
    elif algorithm in ("RS256", "ES256") and settings.jwt_private_key_file is not None:
        key = load_private_key(settings.jwt_private_key_file)
    else:
        raise ValueError("minting needs JWT_SECRET, or JWT_PRIVATE_KEY_FILE for RS256/ES256")
    issued = time.time() if now is None else now
    payload: dict[str, Any] = {
        "sub": subject,
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(issued + ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    if settings.jwt_audience:
        payload["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        payload["iss"] = settings.jwt_issuer
    payload.update(claims)
    return jwt.encode(payload, key, algorithm=algorithm)
