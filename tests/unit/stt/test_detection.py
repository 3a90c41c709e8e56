"""Language detection restricted to a set (stt_worker.detection): the pure choice."""

from __future__ import annotations

import pytest

from common.languages import DEFAULT_SOURCE_LANGUAGES, parse_language_list
from stt_worker.detection import allowed_languages, choose_language

# Whisper's ranking for the espeak-ng sentence "Ogni mattina bevo una tazza di caffè e leggo
# il giornale." on base (rounded): Thai first.
RANKING = [("th", 0.60), ("ja", 0.06), ("it", 0.05), ("es", 0.04), ("en", 0.03), ("la", 0.02)]
MODEL = {"th", "ja", "it", "es", "en", "la", "fr", "de"}


def test_inside_the_set_the_most_probable_member_wins_and_is_renormalised() -> None:
    d = choose_language(RANKING, frozenset({"it", "es", "en"}))
    assert (d.language, d.scope) == ("it", "set")
    assert d.probability == pytest.approx(0.05 / (0.05 + 0.04 + 0.03))
    assert (d.unrestricted_language, d.unrestricted_probability) == ("th", 0.60)
    assert d.outside_set


def test_a_top_language_inside_the_set_is_not_outside() -> None:
    d = choose_language(RANKING, frozenset({"th", "it"}))
    assert d.language == "th" and not d.outside_set
    assert d.probability == pytest.approx(0.60 / 0.65)


def test_no_set_or_no_member_ranked_gives_the_unrestricted_answer() -> None:
    for allowed in (frozenset(), frozenset({"ko"})):
        d = choose_language(RANKING, allowed)
        assert (d.language, d.probability, d.scope, d.outside_set) == ("th", 0.60, "all", False)
    with pytest.raises(ValueError):
        choose_language([], frozenset())


def test_the_session_narrows_the_deployment_and_unknown_codes_drop() -> None:
    assert allowed_languages(("it", "es", "xx"), None, MODEL) == {"it", "es"}
    assert allowed_languages(("it", "es", "en"), ["it", "fr"], MODEL) == {"it"}
    # "all" for the deployment (()) lets the session choose freely among the model's languages.
    assert allowed_languages((), ["it", "fr"], MODEL) == {"it", "fr"}
    assert allowed_languages((), None, MODEL) == frozenset()
    # A session list with no overlap is ignored, not an empty set that could answer nothing.
    assert allowed_languages(("it", "es"), ["de"], MODEL) == {"it", "es"}


def test_language_lists_parse_from_settings_and_clients() -> None:
    assert parse_language_list(" IT, es,it ,") == ("it", "es")
    assert parse_language_list(["fr", "DE"]) == ("fr", "de")
    assert parse_language_list("all") == () and parse_language_list("") == ()
    with pytest.raises(ValueError, match="xx"):
        parse_language_list("it,xx")
    assert len(DEFAULT_SOURCE_LANGUAGES) == 20 and "en" in DEFAULT_SOURCE_LANGUAGES


def test_a_doubtful_detection_yields_to_the_session_hint_a_confident_one_does_not() -> None:
    allowed = frozenset({"it", "es", "en"})
    kept = choose_language(RANKING, allowed, hint="es")  # it at 0.42 within the set: doubtful
    assert (kept.language, kept.scope) == ("es", "set")
    assert kept.probability == pytest.approx(0.04 / 0.12)  # the hint's own share, not it's
    sure = [("it", 0.9), ("es", 0.05), ("en", 0.05)]
    assert choose_language(sure, allowed, hint="es").language == "it"
    # A hint outside the set is not an answer the set allows.
    assert choose_language(RANKING, allowed, hint="th").language == "it"
    # Unrestricted, the hint works on the raw probabilities.
    free = choose_language(RANKING, frozenset(), hint="it")  # th at 0.60 is doubtful
    assert (free.language, free.probability, free.scope) == ("it", 0.05, "all")
