"""TLS contexts: the server side of wss and https, and the client side that trusts a CA.

``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` turn TLS on for the gateway's WebSocket and for every
health and metrics port; the same :func:`server_ssl_context` serves both. TLS 1.2 is the
floor; the cipher choice is the ssl module's secure default.
"""

from __future__ import annotations

import ssl
from pathlib import Path

MIN_VERSION = ssl.TLSVersion.TLSv1_2


def server_ssl_context(cert_file: Path | str | None, key_file: Path | str | None) -> ssl.SSLContext | None:
    """A server context for ``cert_file``/``key_file``, or None when neither is set."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MIN_VERSION
    # No session tickets: they would reuse one key for resumption across connections.
    context.options |= ssl.OP_NO_TICKET
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as exc:
        # The path is safe to name; the library's text is not shown in case it quotes data.
        raise ValueError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: "
            f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}"
        ) from None
    return context


def client_ssl_context(ca_file: Path | str | None = None) -> ssl.SSLContext:
    """A client context verifying the server against ``ca_file`` (else the system store)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    context.minimum_version = MIN_VERSION
    return context


def scheme(base: str, context: ssl.SSLContext | None) -> str:
    """``ws``/``http`` become ``wss``/``https`` when TLS is on, for log lines and URLs."""
    return base + "s" if context is not None else base
