"""CommitPolicy: LocalAgreement-2, pause commits, bounded segments, overlap removal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.commits import (
    Commit,
    CommitOptions,
    CommitPolicy,
    HypWord,
    trim_overlap,
    trim_text_overlap,
)

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then", "runs", "away", "home"]


def speech(n: int, *, sentence_every: int = 0, rate: float = 0.3, t0: float = 0.5) -> list[HypWord]:
    """``n`` words of 0.3 s each from ``t0``; every ``sentence_every``-th word ends a sentence."""
    out = []
    for i in range(n):
        text = " " + WORDS[i % len(WORDS)]
        if sentence_every and (i + 1) % sentence_every == 0:
            text += "."
        out.append(HypWord(text, t0 + i * rate, t0 + (i + 1) * rate))
    return out


def heard(truth: list[HypWord], audio_end: float, start: float, garble_last: int = 0, tag: int = 0) -> list[HypWord]:
    """What a hypothesis of the audio [start, audio_end] says: the words inside, the last few
    garbled (differently for each ``tag``: unstable words do not repeat the same mistake)."""
    inside = [w for w in truth if w.end <= audio_end and w.end > start]
    out = list(inside)
    for k in range(1, min(garble_last, len(out)) + 1):
        w = out[-k]
        out[-k] = HypWord(f" zz{tag}" + w.key, w.start, w.end)
    return out


def test_agreement_commits_through_the_last_sentence_end() -> None:
    truth = speech(12, sentence_every=4)
    policy = CommitPolicy(CommitOptions(), turn_start=0.0)
    assert policy.on_hypothesis(truth[:6], audio_end=2.4) is None  # nothing to agree with yet
    commit = policy.on_hypothesis(truth[:9], audio_end=3.3)
    assert commit is not None and commit.reason == "agreement"
    assert commit.text == "the quick brown fox."
    assert commit.start == 0.0 and commit.end == truth[3].end
    assert not commit.needs_transcription
    assert policy.commit_at == truth[3].end


def test_a_final_period_of_the_hypothesis_is_not_a_sentence_end() -> None:
    truth = speech(4, sentence_every=4)  # "... fox." is the last word heard so far
    policy = CommitPolicy(CommitOptions(max_words=20), turn_start=0.0)
    policy.on_hypothesis(truth, audio_end=1.8)
    assert policy.on_hypothesis(truth, audio_end=2.0) is None


def test_a_settled_hypothesis_is_committed_whole_with_its_last_sentence_end() -> None:
    """The speaker stopped after a short sentence (a conversational gap, shorter than a pause
    commit): the next hypothesis heard half a second more and added no word."""
    truth = speech(3, sentence_every=3)  # "the quick brown." ends at 1.4
    policy = CommitPolicy(CommitOptions(), turn_start=0.0)
    assert policy.on_hypothesis(truth, audio_end=1.6) is None
    commit = policy.on_hypothesis(truth, audio_end=2.1)
    assert commit is not None and commit.reason == "agreement"
    assert commit.text == "the quick brown." and commit.end == truth[-1].end


def test_a_hypothesis_that_heard_more_words_is_not_settled() -> None:
    truth = speech(5, sentence_every=5)
    policy = CommitPolicy(CommitOptions(), turn_start=0.0)
    policy.on_hypothesis(truth[:3], audio_end=1.4)
    assert policy.on_hypothesis([*truth[:3], HypWord(" zz", 1.4, 1.9)], audio_end=1.9) is None


def test_disagreement_commits_nothing() -> None:
    truth = speech(8, sentence_every=2)
    policy = CommitPolicy(CommitOptions(), turn_start=0.0)
    policy.on_hypothesis(truth, audio_end=3.0)
    other = [HypWord(" other" + str(i), w.start, w.end) for i, w in enumerate(truth)]
    assert policy.on_hypothesis(other, audio_end=3.2) is None


def test_long_agreed_prefix_without_punctuation_is_committed_whole() -> None:
    truth = speech(30)
    policy = CommitPolicy(CommitOptions(max_words=10), turn_start=0.0)
    policy.on_hypothesis(truth[:12], audio_end=4.2)
    commit = policy.on_hypothesis(truth[:14], audio_end=4.8)
    assert commit is not None and len(commit.words) == 12


def punctuated(words: list[HypWord], comma_after: int = 0) -> list[HypWord]:
    """``words`` with a comma after the ``comma_after``-th (0: none) and a period on the
    first (so the speech comes punctuated, but no sentence end lies inside)."""
    out = list(words)
    out[0] = HypWord(out[0].text + ".", out[0].start, out[0].end)
    if comma_after:
        w = out[comma_after - 1]
        out[comma_after - 1] = HypWord(w.text + ",", w.start, w.end)
    return out


def test_punctuated_speech_waits_for_a_sentence_end_beyond_max_words() -> None:
    # The first word's period is a sentence end: it is committed alone first.
    truth = punctuated(speech(30))
    policy = CommitPolicy(CommitOptions(max_words=6, punctuated_max_words=14), turn_start=0.0)
    policy.on_hypothesis(truth[:3], audio_end=1.4)
    first = policy.on_hypothesis(truth[:4], audio_end=1.7)
    assert first is not None and first.text == "the."
    policy.on_hypothesis(truth[1:12], audio_end=4.1)
    # 11 agreed words, no mark among them: more than max_words, fewer than 14: wait.
    assert policy.on_hypothesis(truth[1:13], audio_end=4.4) is None
    assert policy.on_hypothesis(truth[1:17], audio_end=5.6) is None  # 12 agreed
    commit = policy.on_hypothesis(truth[1:18], audio_end=5.9)
    assert commit is not None and len(commit.words) == 16  # the whole agreed prefix


def test_punctuated_speech_is_cut_at_its_last_clause_mark_after_max_words() -> None:
    truth = punctuated(speech(30), comma_after=9)
    policy = CommitPolicy(CommitOptions(max_words=6, punctuated_max_words=14), turn_start=0.0)
    policy.on_hypothesis(truth[:3], audio_end=1.4)
    policy.on_hypothesis(truth[:4], audio_end=1.7)  # "the." committed
    policy.on_hypothesis(truth[1:5], audio_end=2.0)
    # 4 agreed words with no mark yet: under max_words, nothing.
    assert policy.on_hypothesis(truth[1:6], audio_end=2.3) is None
    assert policy.on_hypothesis(truth[1:12], audio_end=4.1) is None  # 5 agreed
    commit = policy.on_hypothesis(truth[1:13], audio_end=4.4)
    assert commit is not None and commit.text == "quick brown fox jumps over a lazy dog,"


def test_unpunctuated_speech_is_cut_at_max_words() -> None:
    truth = speech(30)
    policy = CommitPolicy(CommitOptions(max_words=6, punctuated_max_words=14), turn_start=0.0)
    policy.on_hypothesis(truth[:8], audio_end=2.9)
    commit = policy.on_hypothesis(truth[:9], audio_end=3.2)
    assert commit is not None and len(commit.words) == 8


def test_pause_commits_the_span_for_a_final_job() -> None:
    policy = CommitPolicy(CommitOptions(pause_seconds=0.5), turn_start=0.2)
    assert policy.on_pause(speech_end=3.0, now=3.4) is None
    commit = policy.on_pause(speech_end=3.0, now=3.5)
    assert commit == Commit("pause", 0.2, 3.25, 0.2)
    assert commit.needs_transcription
    assert policy.on_pause(speech_end=3.0, now=4.0) is None  # nothing new since
    assert policy.tail_start() == 3.25  # ended on silence: no overlap needed


def test_after_an_agreement_the_tail_overlaps_the_commit_point() -> None:
    truth = speech(12, sentence_every=4)
    policy = CommitPolicy(CommitOptions(overlap_seconds=0.5), turn_start=0.0)
    policy.on_hypothesis(truth[:6], audio_end=2.4)
    policy.on_hypothesis(truth[:9], audio_end=3.3)
    assert policy.tail_start() == pytest.approx(policy.commit_at - 0.5)
    commit = policy.on_pause(speech_end=4.0, now=4.6)
    assert commit is not None and commit.audio_start == pytest.approx(commit.start - 0.5)


def test_cut_window_bounds_the_uncommitted_audio() -> None:
    policy = CommitPolicy(CommitOptions(max_uncommitted_seconds=8.0), turn_start=1.0)
    assert policy.cut_window(8.9) is None
    assert policy.cut_window(9.0) == (5.0, 9.0)
    commit = policy.cut(7.3)
    assert commit is not None and commit.reason == "max_length" and (commit.start, commit.end) == (1.0, 7.3)
    assert policy.cut_window(9.0) is None
    assert policy.cut(7.0) is None  # before the commit point: nothing


def test_end_turn_commits_only_uncommitted_speech() -> None:
    policy = CommitPolicy(CommitOptions(), turn_start=0.0)
    policy.on_pause(speech_end=2.0, now=2.6)
    assert policy.end_turn(speech_end=2.0, audio_end=2.2) is None
    policy2 = CommitPolicy(CommitOptions(), turn_start=0.0)
    commit = policy2.end_turn(speech_end=2.0, audio_end=2.2)
    assert commit is not None and commit.reason == "turn_end" and commit.end == 2.2


def test_trim_overlap_by_time_and_by_repeated_words() -> None:
    committed = speech(4)  # ... "fox" ends at 1.7
    again = [HypWord(" brown", 1.2, 1.5), HypWord(" fox", 1.5, 1.9), HypWord(" jumps", 1.9, 2.2)]
    # "brown" lies before the commit point; "fox" straddles it but repeats the committed tail.
    assert [w.key for w in trim_overlap(again, 1.7, committed)] == ["jumps"]
    assert trim_text_overlap("Fox jumps over.", committed) == "jumps over."
    assert trim_text_overlap("A new start.", committed) == "A new start."


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    sentence_every=st.integers(min_value=0, max_value=7),
    steps=st.lists(st.floats(min_value=0.1, max_value=1.5), min_size=1, max_size=40),
    garble=st.lists(st.integers(min_value=0, max_value=3), min_size=40, max_size=40),
    hold_short=st.booleans(),
)
def test_agreement_commits_are_an_ordered_prefix_of_what_was_said(
    n: int, sentence_every: int, steps: list[float], garble: list[int], hold_short: bool
) -> None:
    """Hypotheses whose last words are unstable: the committed words, in order, are exactly a
    prefix of the spoken words; spans follow each other without gaps or overlaps. With pieces
    under 2 s of speech held back (a session without a confident language), the same, and no
    piece is shorter."""
    truth = speech(n, sentence_every=sentence_every)
    policy = CommitPolicy(CommitOptions(max_words=8), turn_start=0.0, speech_start=truth[0].start)
    commits: list[Commit] = []
    audio_end = 0.5
    for tag, (step, g) in enumerate(zip(steps, garble, strict=False)):
        audio_end += step
        hypothesis = heard(truth, audio_end, policy.tail_start(), g, tag)
        commit = policy.on_hypothesis(hypothesis, audio_end, under_two_seconds if hold_short else None)
        if commit is not None:
            commits.append(commit)
    said = [w.key for c in commits for w in c.words]
    assert said == [w.key for w in truth[: len(said)]]
    position = 0.0
    for c in commits:
        assert c.start == position and c.end > c.start
        if hold_short:
            assert c.end - max(c.start, truth[0].start) >= 2.0
        position = c.end
    assert policy.commit_at == position


def under_two_seconds(speech_seconds: float) -> bool:
    """What a session without a confident language answers (gateway.language_evidence)."""
    return speech_seconds < 2.0


def test_a_held_sentence_end_gives_way_to_a_longer_agreed_prefix() -> None:
    """ "Sì." alone is too short to know its language: not committed; once the agreed words
    behind it are enough to commit and to detect on, all of them go together."""
    si = HypWord(" Sì.", 0.5, 0.9)
    rest = speech(8, t0=0.9)  # 0.3 s a word
    policy = CommitPolicy(CommitOptions(max_words=4, punctuated_max_words=4), turn_start=0.0, speech_start=0.5)
    policy.on_hypothesis([si, *rest[:2]], audio_end=1.6)
    assert policy.on_hypothesis([si, *rest[:3]], audio_end=1.9, hold=under_two_seconds) is None  # "Sì." only
    assert policy.commit_at == 0.0
    assert policy.on_hypothesis([si, *rest[:5]], audio_end=2.5, hold=under_two_seconds) is None  # 1.3 s agreed
    assert policy.on_hypothesis([si, *rest[:7]], audio_end=3.1, hold=under_two_seconds) is None  # 1.9 s
    commit = policy.on_hypothesis([si, *rest[:8]], audio_end=3.4, hold=under_two_seconds)
    assert commit is not None and commit.reason == "agreement"
    assert [w.key for w in commit.words] == ["sì", *[w.key for w in rest[:7]]]  # all that two agree on
    assert policy.speech_seconds(commit.end, commit.start) >= 2.0
    # Without a hold the sentence end commits at once, as before.
    free = CommitPolicy(CommitOptions(max_words=4), turn_start=0.0, speech_start=0.5)
    free.on_hypothesis([si, *rest[:2]], audio_end=1.6)
    assert free.on_hypothesis([si, *rest[:3]], audio_end=1.9).text == "Sì."  # type: ignore[union-attr]


def test_a_held_pause_commits_nothing_and_never_blocks_a_cut() -> None:
    policy = CommitPolicy(CommitOptions(pause_seconds=0.5, max_uncommitted_seconds=8.0), turn_start=0.0,
                          speech_start=1.0)
    assert policy.on_pause(speech_end=1.6, now=2.2, hold=under_two_seconds) is None  # 0.85 s of speech
    assert policy.commit_at == 0.0 and policy.speech_seconds(1.85) == pytest.approx(0.85)
    # Speech resumed and paused again: the piece now holds enough.
    commit = policy.on_pause(speech_end=3.8, now=4.3, hold=under_two_seconds)
    assert commit is not None and (commit.start, commit.end) == (0.0, 4.05)
    # A session that holds everything still gets a cut once the uncommitted audio is too long.
    always = CommitPolicy(CommitOptions(max_uncommitted_seconds=8.0), turn_start=0.0)
    assert always.on_pause(speech_end=7.0, now=8.1, hold=lambda _: True) is None
    assert always.cut_window(8.1) is not None and always.cut(6.0) is not None


@settings(max_examples=100, deadline=None)
@given(pauses=st.lists(st.tuples(st.floats(0.05, 3.0), st.floats(0.0, 2.0)), min_size=1, max_size=20))
def test_pause_commits_never_come_before_the_pause(pauses: list[tuple[float, float]]) -> None:
    """Speech runs then pauses; a commit comes only after ``pause_seconds`` of silence and
    only when there is speech since the last commit point."""
    options = CommitOptions(pause_seconds=0.4)
    policy = CommitPolicy(options, turn_start=0.0)
    t = 0.0
    for talk, pause in pauses:
        t += talk
        speech_end = t
        for k in range(int(pause / 0.1) + 1):
            now = speech_end + k * 0.1
            before = policy.commit_at
            commit = policy.on_pause(speech_end, now)
            if commit is not None:
                assert now - speech_end >= options.pause_seconds
                assert speech_end > before + options.min_speech_seconds
                assert commit.start == before and commit.end <= now
        t += pause


def test_a_pause_the_latest_hypothesis_heard_commits_its_words_at_once() -> None:
    truth = speech(5)  # ends at 2.0
    policy = CommitPolicy(CommitOptions(pause_seconds=0.5), turn_start=0.0)
    policy.on_hypothesis(truth, audio_end=2.3)  # heard past the end of speech
    commit = policy.on_pause(speech_end=2.0, now=2.5)
    assert commit is not None and commit.reason == "pause" and not commit.needs_transcription
    assert [w.key for w in commit.words] == [w.key for w in truth]


def test_a_hypothesis_from_before_the_pause_leaves_the_text_to_a_final_job() -> None:
    truth = speech(5)
    policy = CommitPolicy(CommitOptions(pause_seconds=0.5), turn_start=0.0)
    policy.on_hypothesis(truth[:4], audio_end=1.8)  # the last word was not heard yet
    commit = policy.on_pause(speech_end=2.0, now=2.5)
    assert commit is not None and commit.needs_transcription
    off = CommitPolicy(CommitOptions(pause_seconds=0.5, pause_from_hypothesis=False), turn_start=0.0)
    off.on_hypothesis(truth, audio_end=2.3)
    assert off.on_pause(speech_end=2.0, now=2.5).needs_transcription  # type: ignore[union-attr]


def test_speech_resuming_after_a_pause_commit_skips_the_silence() -> None:
    policy = CommitPolicy(CommitOptions(pause_seconds=0.5, resume_lead_seconds=0.3), turn_start=0.0)
    policy.on_pause(speech_end=2.0, now=2.5)
    assert policy.commit_at == 2.25
    policy.on_resume(2.0)  # not after the commit point: nothing
    assert policy.commit_at == 2.25
    policy.on_resume(3.8)
    assert policy.commit_at == pytest.approx(3.5) and policy.tail_start() == pytest.approx(3.5)
    policy.on_resume(5.0)  # only the first resumption after a pause commit moves it
    assert policy.commit_at == pytest.approx(3.5)
