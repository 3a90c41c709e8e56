"""Voice typing: revised partials become minimal keystrokes; finals are committed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client_gui.typing_diff import (
    Keystrokes,
    TypingBuffer,
    compose,
    diff_keystrokes,
    normalize_text,
    separator,
)


def apply(screen: str, keys: Keystrokes) -> str:
    """What a text field shows after the keystrokes (the thing the user sees)."""
    if keys.backspaces:
        screen = screen[: -keys.backspaces]
    return screen + keys.text


def test_first_partial_is_typed_whole() -> None:
    buf = TypingBuffer()
    assert buf.update(1, "Hello", final=False) == Keystrokes(0, "Hello")


def test_revised_partial_retypes_only_the_changed_suffix() -> None:
    buf = TypingBuffer()
    buf.update(1, "Hello word", final=False)
    keys = buf.update(1, "Hello world, how", final=False)
    assert keys == Keystrokes(backspaces=1, text="ld, how")
    assert buf.text == "Hello world, how"


def test_extension_needs_no_backspace() -> None:
    buf = TypingBuffer()
    buf.update(1, "The quick", final=False)
    assert buf.update(1, "The quick brown", final=False) == Keystrokes(0, " brown")


def test_final_is_committed_and_next_sentence_gets_one_space() -> None:
    buf = TypingBuffer()
    buf.update(1, "Hello there", final=False)
    assert buf.update(1, "Hello there.", final=True) == Keystrokes(0, ".")
    assert buf.committed_text == "Hello there."
    assert buf.update(2, " How are you?", final=False) == Keystrokes(0, " How are you?")


def test_committed_text_is_never_edited_again() -> None:
    buf = TypingBuffer()
    buf.update(1, "One.", final=True)
    assert buf.update(1, "Completely different", final=False).empty
    assert buf.update(1, "Changed final", final=True).empty
    assert buf.text == "One."


def test_no_space_before_punctuation() -> None:
    assert normalize_text("  Hello ,  world !  ") == "Hello, world!"
    assert normalize_text("( yes )") == "(yes)"
    buf = TypingBuffer()
    buf.update(1, "Wait", final=True)
    assert buf.update(2, "...", final=False) == Keystrokes(0, "...")


def test_no_space_between_chinese_sentences() -> None:
    assert separator("你好。", "谢谢") == ""
    assert separator("Hello.", "谢谢") == ""
    assert separator("Hello.", "Bonjour") == " "
    assert separator("안녕하세요.", "감사합니다") == " "  # Korean is written with spaces


def test_empty_final_erases_its_partial() -> None:
    buf = TypingBuffer()
    buf.update(1, "Done.", final=True)
    buf.update(2, "uh", final=False)
    assert buf.update(2, "", final=True) == Keystrokes(backspaces=3, text="")
    assert buf.text == "Done."


def test_final_of_earlier_utterance_after_next_partial_keeps_order() -> None:
    buf = TypingBuffer()
    screen = ""
    screen = apply(screen, buf.update(1, "First sentence", final=False))
    screen = apply(screen, buf.update(2, "Second", final=False))
    screen = apply(screen, buf.update(1, "First sentence.", final=True))
    assert screen == "First sentence. Second"
    assert buf.committed_text == "First sentence."
    screen = apply(screen, buf.update(2, "Second one.", final=True))
    assert screen == "First sentence. Second one."


def test_final_without_partial_sorts_by_numeric_id() -> None:
    buf = TypingBuffer()
    screen = apply("", buf.update("s-2", "later", final=False))
    screen = apply(screen, buf.update("s-1", "Earlier.", final=True))
    assert screen == "Earlier. later"


def test_context_before_cursor_gets_a_space() -> None:
    buf = TypingBuffer(context="Dear team,")
    assert buf.update(1, "hello", final=False) == Keystrokes(0, " hello")


def test_reset_starts_a_new_session_without_erasing() -> None:
    buf = TypingBuffer()
    buf.update(1, "Typed", final=False)
    buf.reset()
    assert buf.text == ""
    assert buf.update(5, "New", final=False) == Keystrokes(0, "New")


def test_diff_of_unicode_counts_characters() -> None:
    assert diff_keystrokes("café au lait", "café noir") == Keystrokes(7, "noir")


@given(st.lists(st.tuples(st.integers(0, 4), st.text(max_size=12), st.booleans()), max_size=25))
def test_screen_always_matches_the_buffer(updates: list[tuple[int, str, bool]]) -> None:
    """Whatever arrives, applying the keystrokes reproduces exactly the buffer's text."""
    buf = TypingBuffer()
    screen = ""
    for segment, text, final in updates:
        keys = buf.update(segment, text, final=final)
        assert keys.backspaces <= len(screen)
        screen = apply(screen, keys)
        assert screen == buf.text
        assert screen.startswith(buf.committed_text)


_keys = st.builds(Keystrokes, st.integers(0, 6), st.text(max_size=6))


@given(st.text(min_size=12, max_size=20), _keys, _keys)
def test_compose_is_the_same_as_one_then_the_other(screen: str, first: Keystrokes, second: Keystrokes) -> None:
    assert apply(screen, compose(first, second)) == apply(apply(screen, first), second)


def test_a_turn_committed_piece_by_piece_is_typed_as_each_final_comes() -> None:
    """Streaming commits (issue 14): inside one turn, final k holds the agreed words and the
    partial of k+1 only the uncommitted tail; the screen always shows the whole turn, and a
    committed final is never touched again."""
    buf = TypingBuffer()
    screen = ""
    for seg, text, final in [
        ("s:4", "Good morning everyone and", False),
        ("s:4", "Good morning everyone and thank you for", False),
        ("s:4", "Good morning everyone and thank you.", True),
        ("s:5", "For joining", False),
        ("s:5", "For joining the weekly update.", True),
    ]:
        screen = apply(screen, buf.update(seg, text, final=final))
        assert screen == buf.text
    assert screen == "Good morning everyone and thank you. For joining the weekly update."
    assert buf.committed_text == screen
