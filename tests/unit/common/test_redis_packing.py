"""Commands packed by hiredis (common.redis_conn) are the bytes redis-py's own packer makes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from common.redis_conn import CPackedConnection, make_client

_args = st.lists(
    st.one_of(st.binary(max_size=64), st.text(max_size=32), st.integers(-(2**62), 2**62),
              st.floats(allow_nan=False, allow_infinity=False)),
    max_size=12,
)


def _joined(chunks: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


@given(name=st.sampled_from(["SET", "XADD", b"EVALSHA", "CLIENT SETNAME", b"CONFIG GET"]), args=_args)
def test_the_bytes_on_the_wire_are_redis_pys(name: str | bytes, args: list[object]) -> None:
    assert _joined(CPackedConnection().pack_command(name, *args)) == _joined(Connection().pack_command(name, *args))


def test_a_memoryview_goes_the_python_way() -> None:
    view = memoryview(b"pcm" * 10_000)
    assert _joined(CPackedConnection().pack_command("XADD", "k", "*", "pcm", view)) == _joined(
        Connection().pack_command("XADD", "k", "*", "pcm", view))


@pytest.mark.parametrize("bad", [None, True, object()])
def test_a_value_redis_cannot_take_is_a_data_error(bad: object) -> None:
    with pytest.raises(DataError):
        CPackedConnection().pack_command("SET", "k", bad)


@pytest.mark.parametrize(("url", "kind"), [("redis://h:1/0", "CPackedConnection"),
                                           ("rediss://h:1/0", "CPackedSSLConnection"),
                                           ("unix:///tmp/r.sock", "CPackedUnixConnection")])
def test_every_scheme_gets_the_c_packer(url: str, kind: str) -> None:
    client = make_client(url)
    assert client.connection_pool.connection_class.__name__ == kind
