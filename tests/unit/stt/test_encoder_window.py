"""The encoder window a batch gets (``stt_worker.engine.encoder_frames``), a pure function."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stt_worker.engine import (
    FULL_WINDOW_FRAMES,
    MIN_WINDOW_FRAMES,
    WINDOW_MARGIN_FRAMES,
    EngineOptions,
    encoder_frames,
)


def test_full_window_is_always_thirty_seconds() -> None:
    assert encoder_frames(10, "full") == FULL_WINDOW_FRAMES
    assert encoder_frames(2900, "full", floor=800) == FULL_WINDOW_FRAMES


def test_short_audio_gets_the_floor() -> None:
    assert encoder_frames(200, "dynamic") == MIN_WINDOW_FRAMES
    assert encoder_frames(200, "dynamic", floor=1000) == 1000
    assert encoder_frames(200, "dynamic", floor=1001) == 1100  # whole seconds, so always even


def test_long_audio_gets_audio_plus_margin_in_whole_seconds() -> None:
    assert encoder_frames(1850, "dynamic") == 2100  # 18.5 s + 2 s, rounded up to 21 s
    assert encoder_frames(1850, "dynamic", floor=1000) == 2100  # the floor only lifts short batches


def test_partial_floor_defaults_to_the_common_floor() -> None:
    assert EngineOptions(model="tiny.en").partial_min_window_frames == MIN_WINDOW_FRAMES


@given(st.integers(min_value=1, max_value=4000), st.integers(min_value=100, max_value=FULL_WINDOW_FRAMES))
def test_dynamic_window_covers_the_audio_and_never_exceeds_thirty_seconds(longest: int, floor: int) -> None:
    frames = encoder_frames(longest, "dynamic", floor=floor)
    assert frames <= FULL_WINDOW_FRAMES
    assert frames >= min(FULL_WINDOW_FRAMES, floor)
    assert frames >= min(FULL_WINDOW_FRAMES, longest + WINDOW_MARGIN_FRAMES)
    assert frames % 2 == 0  # the encoder's convolution halves the frames
