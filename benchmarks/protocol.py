"""Benchmark: what hostile text frames cost the gateway's parser (event-loop time per frame).

    python -m benchmarks.protocol [--repeat 20]

Frames: a config of thousands of unknown keys (just under the 16384-character cap, and a
256 KiB one, refused unparsed), JSON nested 1000 deep, and an ordinary config for scale.
Prints milliseconds per frame; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from gateway.protocol import ProtocolError, parse_text


def _frames() -> dict[str, str]:
    return {
        "ordinary config": json.dumps({"type": "config", "source_language": "en", "target_language": "de"}),
        "1400 unknown keys (15 KiB)": json.dumps({"type": "config", **{f"k{i}": 0 for i in range(1400)}}),
        "20000 unknown keys (250 KiB)": json.dumps({"type": "config", **{f"k{i}": 0 for i in range(20000)}}),
        "nested 1000 deep": '{"type": "auth", "token": ' + "[" * 1000 + "]" * 1000 + "}",
    }


def _time(call: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        try:
            call()
        except ProtocolError:
            pass
    return (time.perf_counter() - started) / repeat * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    for name, frame in _frames().items():
        ms = _time(lambda frame=frame: parse_text(frame), args.repeat)  # type: ignore[misc]
        print(f"{name:32s} {len(frame):>8d} chars  {ms:8.3f} ms/frame")


if __name__ == "__main__":
    main()
