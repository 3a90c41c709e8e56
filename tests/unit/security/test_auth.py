"""TokenVerifier, extract_token, AuthLease and mint_token: the attacks a JWT check must refuse."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from common.auth import (
    AuthError,
    AuthLease,
    Claims,
    TokenVerifier,
    bearer_matches,
    extract_token,
    mint_token,
    token_from_auth_message,
)
from common.security_settings import SecuritySettings


def make_settings(**values: Any) -> SecuritySettings:
    """Settings from keyword values as the environment would give them (strings for secrets)."""
    return SecuritySettings(**values)



def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _verifier(settings: SecuritySettings) -> TokenVerifier:
    verifier = TokenVerifier.from_settings(settings)
    assert verifier is not None
    return verifier


def _code(verifier: TokenVerifier, token: str | None) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return info.value.code


@pytest.fixture
def hs(secret: str) -> SecuritySettings:
    return make_settings(jwt_secret=secret)


@pytest.fixture
def rs(rsa_files: tuple[Path, Path]) -> SecuritySettings:
    return make_settings(jwt_public_key_file=rsa_files[0], jwt_private_key_file=rsa_files[1])


def test_no_verifier_when_auth_is_off() -> None:
    assert TokenVerifier.from_settings(SecuritySettings()) is None


def test_minted_tokens_verify_for_each_algorithm(
    hs: SecuritySettings, rs: SecuritySettings, ec_files: tuple[Path, Path]
) -> None:
    es = make_settings(jwt_public_key_file=ec_files[0], jwt_private_key_file=ec_files[1])
    for s in (hs, rs, es):
        before = time.time()
        token = mint_token(s, "alice", 60, plan="pro")
        claims = _verifier(s).verify(token)
        assert claims.subject == "alice" and claims.raw["plan"] == "pro"
        assert before + 58 <= claims.expires_at <= time.time() + 60
        assert jwt.get_unverified_header(token)["alg"] == s.jwt_algorithm


def test_alg_none_is_refused(hs: SecuritySettings, rs: SecuritySettings) -> None:
    payload = {"sub": "mallory", "exp": int(time.time()) + 60}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
    assert _code(_verifier(hs), unsigned) == "token_invalid"
    assert _code(_verifier(rs), unsigned) == "token_invalid"
    # Also with PyJWT's own encoder of an unsigned token.
    pyjwt_unsigned = jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]
    assert _code(_verifier(hs), pyjwt_unsigned) == "token_invalid"


def test_hs256_signed_with_the_rsa_public_key_is_refused(rs: SecuritySettings, rsa_files: tuple[Path, Path]) -> None:
    """The classic confusion: an attacker signs HS256 using the public PEM as the HMAC secret."""
    import hashlib
    import hmac

    pem = rsa_files[0].read_bytes()
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64({"sub": "mallory", "exp": int(time.time()) + 60})
    signature = base64.urlsafe_b64encode(
        hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    ).rstrip(b"=").decode()
    assert _code(_verifier(rs), f"{header}.{body}.{signature}") == "token_invalid"


def test_a_token_of_the_other_pinned_algorithm_is_refused(
    hs: SecuritySettings, rs: SecuritySettings, secret: str
) -> None:
    assert _code(_verifier(hs), mint_token(rs, "a", 60)) == "token_invalid"
    assert _code(_verifier(rs), mint_token(hs, "a", 60)) == "token_invalid"


def test_forged_and_tampered_tokens_are_refused(hs: SecuritySettings, rsa_private: rsa.RSAPrivateKey,
                                                rs: SecuritySettings) -> None:
    forged = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "another-secret-of-32-bytes-or-more!!")
    assert _code(_verifier(hs), forged) == "token_invalid"
    head, body, sig = mint_token(hs, "alice", 60).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "admin"
    assert _code(_verifier(hs), f"{head}.{_b64(claims)}.{sig}") == "token_invalid"
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, other_rsa, algorithm="RS256")
    assert _code(_verifier(rs), foreign) == "token_invalid"
    for junk in ("abc", "a.b.c", "x" * 9000, "..."):
        assert _code(_verifier(hs), junk) == "token_invalid"


def test_missing_token(hs: SecuritySettings) -> None:
    assert _code(_verifier(hs), None) == "token_missing"
    assert _code(_verifier(hs), "") == "token_missing"


def test_exp_is_required_and_checked(hs: SecuritySettings, secret: str) -> None:
    no_exp = jwt.encode({"sub": "a"}, secret, algorithm="HS256")
    with pytest.raises(AuthError) as info:
        _verifier(hs).verify(no_exp)
    assert info.value.code == "token_invalid" and "exp" in info.value.message
    expired = mint_token(hs, "a", 60, now=time.time() - 3600)
    assert _code(_verifier(hs), expired) == "token_expired"
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, secret, algorithm="HS256")
    assert _code(_verifier(hs), no_sub) == "token_invalid"


def test_leeway_accepts_a_token_expired_seconds_ago(secret: str) -> None:
    s = make_settings(jwt_secret=secret, jwt_leeway_seconds=30)
    just_expired = jwt.encode({"sub": "a", "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    assert _verifier(s).verify(just_expired).subject == "a"
    strict = make_settings(jwt_secret=secret, jwt_leeway_seconds=0)
    assert _code(_verifier(strict), just_expired) == "token_expired"


def test_nbf_in_the_future_is_refused(hs: SecuritySettings, secret: str) -> None:
    later = jwt.encode({"sub": "a", "exp": int(time.time()) + 3600, "nbf": int(time.time()) + 600},
                       secret, algorithm="HS256")
    assert _code(_verifier(hs), later) == "token_not_yet_valid"


def test_audience_and_issuer_when_configured(secret: str) -> None:
    s = make_settings(jwt_secret=secret, jwt_audience="speech", jwt_issuer="https://idp.example")
    v = _verifier(s)
    assert v.verify(mint_token(s, "a", 60)).raw["aud"] == "speech"
    assert _code(v, mint_token(s, "a", 60, aud="other")) == "token_audience"
    assert _code(v, mint_token(s, "a", 60, iss="https://evil.example")) == "token_issuer"
    no_aud = jwt.encode({"sub": "a", "exp": int(time.time()) + 60, "iss": "https://idp.example"},
                        secret, algorithm="HS256")
    assert _code(v, no_aud) in ("token_invalid", "token_audience")
    # Without a configured audience, an aud claim is accepted (not ours to judge).
    plain = make_settings(jwt_secret=secret)
    assert _verifier(plain).verify(mint_token(plain, "a", 60, aud="anything")).subject == "a"


def test_errors_never_contain_the_token_or_secret(hs: SecuritySettings, secret: str) -> None:
    v = _verifier(hs)
    tokens = [
        mint_token(hs, "a", 60, now=time.time() - 3600),
        mint_token(hs, "a", 60) + "tampered",
        jwt.encode({"sub": "a", "exp": 1}, "wrong-secret-of-at-least-32-bytes!!!"),
        "not-a-token-at-all",
    ]
    for token in tokens:
        with pytest.raises(AuthError) as info:
            v.verify(token)
        exc = info.value
        text = f"{exc} {exc!r} {exc.message} {exc.args}"
        assert token not in text and secret not in text
        assert exc.__cause__ is None and exc.__suppress_context__  # PyJWT's text is not chained
    assert secret not in repr(v)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_strings_are_refused_cleanly(token: str) -> None:
    v = TokenVerifier.from_settings(make_settings(jwt_secret="k" * 40))
    assert v is not None
    with pytest.raises(AuthError) as info:
        v.verify(token)
    assert info.value.code in ("token_missing", "token_invalid")


def test_extract_token_from_header_or_query() -> None:
    assert extract_token({"Authorization": "Bearer abc.def.ghi"}, "/") == "abc.def.ghi"
    assert extract_token({"Authorization": "bearer   abc "}, "/") == "abc"
    assert extract_token({}, "/?token=xyz&lang=de") == "xyz"
    assert extract_token({}, "/ws?lang=de&token=a%2Eb") == "a.b"
    assert extract_token({"Authorization": "Bearer h"}, "/?token=q") == "h"  # header wins
    assert extract_token({"Authorization": "Basic dXNlcjpwYXNz"}, "/") is None
    assert extract_token({"Authorization": "Bearer "}, "/?token=") is None
    assert extract_token({}, None) is None


def test_extract_token_reads_websockets_headers() -> None:
    from websockets.datastructures import Headers

    assert extract_token(Headers([("authorization", "Bearer t1")]), "/") == "t1"


def test_token_from_first_auth_message() -> None:
    assert token_from_auth_message('{"type":"auth","token":"t"}') == "t"
    for other in ('{"type":"config"}', "not json", "[]", '{"type":"auth","token":5}', b"\x00\x01"):
        assert token_from_auth_message(other) is None


def test_bearer_matches_in_constant_time() -> None:
    assert bearer_matches("Bearer m-token", "m-token")
    assert bearer_matches("bearer m-token ", "m-token")
    for wrong in (None, "", "Bearer other", "Basic m-token", "m-token", "Bearer m-token2"):
        assert not bearer_matches(wrong, "m-token")


def test_lease_warns_once_then_closes_after_grace() -> None:
    lease = AuthLease(Claims("alice", 100.0, {}), grace_seconds=5)
    assert lease.poll(99.0) is None
    assert lease.poll(100.0) == "expired"
    assert lease.poll(102.0) is None  # told once
    assert lease.poll(105.0) == "close"


def test_lease_refresh_extends_and_keeps_the_subject() -> None:
    lease = AuthLease(Claims("alice", 100.0, {}), grace_seconds=5)
    assert lease.poll(101.0) == "expired"
    lease.refresh(Claims("alice", 200.0, {}))
    assert lease.poll(150.0) is None and lease.expires_at == 200.0
    assert lease.poll(200.0) == "expired"  # a later expiry is told again
    with pytest.raises(AuthError) as info:
        lease.refresh(Claims("bob", 900.0, {}))
    assert info.value.code == "token_subject_changed" and lease.subject == "alice"


def test_mint_token_needs_a_signing_key(rsa_files: tuple[Path, Path], ec_private: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="minting needs"):
        mint_token(SecuritySettings(), "a", 60)
    with pytest.raises(ValueError, match="minting needs"):
        mint_token(make_settings(jwt_public_key_file=rsa_files[0]), "a", 60)
    with pytest.raises(ValueError):
        mint_token(make_settings(jwt_secret="k" * 40), "", 60)
    with pytest.raises(ValueError):
        mint_token(make_settings(jwt_secret="k" * 40), "a", 0)


def test_redact_tokens_wherever_they_appear(secret: str) -> None:
    from common.logs import redact_tokens

    token = mint_token(make_settings(jwt_secret=secret), "alice", 60)
    lines = [
        f"< GET /?lang=de&token={token} HTTP/1.1",
        f"< Authorization: Bearer {token}",
        "< authorization: bearer opaque-token-123",
        f"> TEXT '{{\"type\": \"auth\", \"token\": \"{token}\"}}' [300 bytes]",
        "{'type': 'auth', 'token': 'opaque-token-123'}",
        f"something {token} else",
        "GET /?token=opaque-token-123#frag",
    ]
    for line in lines:
        redacted = redact_tokens(line)
        assert token not in redacted and "opaque-token-123" not in redacted and "***" in redacted
    assert redact_tokens("an ordinary line about tokens_total 3") == "an ordinary line about tokens_total 3"


@given(st.text(max_size=200))
def test_redact_tokens_leaves_token_free_text_alone(text: str) -> None:
    from common.logs import redact_tokens

    if "eyJ" not in text and "token" not in text.lower() and "bearer" not in text.lower():
        assert redact_tokens(text) == text


@pytest.mark.parametrize("depth", [1000, 3000])
def test_a_deeply_nested_first_message_is_no_token_not_a_crash(depth: int) -> None:
    from common.auth import token_from_auth_message

    nested = '{"type": "auth", "token": ' + "[" * depth + "]" * depth + "}"
    assert token_from_auth_message(nested) is None
    assert token_from_auth_message("[" * depth + "]" * depth) is None
