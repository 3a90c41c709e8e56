"""``speech-pipeline token``: prints a token the configured verifier accepts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from common.auth import TokenVerifier
from common.security_settings import SecuritySettings
from common.token_cli import add_token_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-pipeline")
    add_token_command(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


def test_prints_a_token_the_gateway_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret: str
) -> None:
    monkeypatch.setenv("JWT_SECRET", secret)
    monkeypatch.setenv("JWT_AUDIENCE", "speech")
    assert _run(["token", "--subject", "alice", "--ttl", "120"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert err == "" and out.count("\n") == 1
    verifier = TokenVerifier.from_settings(SecuritySettings())
    assert verifier is not None
    claims = verifier.verify(token)
    assert claims.subject == "alice" and claims.raw["aud"] == "speech"


def test_rs256_with_the_private_key_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rsa_files: tuple[Path, Path]
) -> None:
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(rsa_files[0]))
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(rsa_files[1]))
    assert _run(["token", "--subject", "bob", "--ttl", "60", "--issuer", "dev"]) == 0
    claims = TokenVerifier.from_settings(SecuritySettings()).verify(capsys.readouterr().out.strip())  # type: ignore[union-attr]
    assert claims.subject == "bob" and claims.raw["iss"] == "dev"


def test_without_a_key_it_says_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["token", "--subject", "a"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "JWT_SECRET" in err


def test_bad_settings_are_reported_without_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_SECRET", "too-short-secret")
    assert _run(["token", "--subject", "a"]) == 2
    err = capsys.readouterr().err
    assert "JWT_SECRET" in err and "too-short-secret" not in err


def test_ttl_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["token", "--subject", "a", "--ttl", "0"])
    assert "positive" in capsys.readouterr().err
