"""The client side of the speech gateway's protocol v1, in one place.

- :mod:`speech_client.protocol`: typed models of every message, both directions, the
  ``error`` codes, and :func:`~speech_client.protocol.parse_server_message`;
- :mod:`speech_client.session`: what a client remembers of its session (``ready``, the
  session id and resume secret, the last ``seq``) to resume it and drop replayed results;
- :mod:`speech_client.client`: a small asyncio client on ``websockets``.

The GUI (``client_gui``), the demo client (``demos``) and the tests' fake gateways use it;
``tests/unit/speech_client`` checks that it agrees with what ``gateway.protocol`` sends.
Depends on pydantic and websockets only, never on the gateway.
"""

from speech_client.protocol import (
    PROTOCOL_VERSION,
    Auth,
    ClientMessage,
    Config,
    Done,
    End,
    Error,
    ErrorCode,
    Final,
    Flush,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Realtime,
    ServerMessage,
    Translation,
    TurnEnd,
    Unknown,
    Vad,
    Word,
    parse_server_message,
)
from speech_client.session import ClientSession

__all__ = [
    "PROTOCOL_VERSION",
    "Auth",
    "ClientMessage",
    "ClientSession",
    "Config",
    "Done",
    "End",
    "Error",
    "ErrorCode",
    "Final",
    "Flush",
    "Ping",
    "Pong",
    "ProtocolError",
    "Ready",
    "Realtime",
    "ServerMessage",
    "Translation",
    "TurnEnd",
    "Unknown",
    "Vad",
    "Word",
    "parse_server_message",
]
