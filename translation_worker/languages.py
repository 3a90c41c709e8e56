"""Language-code tables for translation: ISO 639-1 (what clients and Whisper speak) to
NLLB-200 (FLORES-200) codes, opus-mt model naming, and the pure ``supports`` check.

Everything here is plain data and pure functions, so the worker, the gateway (to validate a
``target_language`` early) and tests can use it without loading a model.
"""

from __future__ import annotations

from typing import Final, Literal

EngineKind = Literal["nllb", "opus-mt", "easynmt"]

#: Stable error code sent to the client for a pair no engine here can serve.
UNSUPPORTED_LANGUAGE_PAIR: Final = "unsupported_language_pair"


class UnsupportedLanguagePair(ValueError):
    """The engine cannot translate ``source`` into ``target``; the client gets ``code``."""

    code: Final = UNSUPPORTED_LANGUAGE_PAIR

    def __init__(self, source: str | None, target: str | None, reason: str | None = None) -> None:
        self.source = source
        self.target = target
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"cannot translate from {source!r} to {target!r}{detail}")


#: ISO 639-1 code (plus Whisper's ``yue`` and ``haw``-style extras) -> NLLB-200 code.
#: Covers every Whisper language NLLB-200 has; Whisper's ``la`` (Latin), ``br`` (Breton) and
#: ``haw`` (Hawaiian) are not among NLLB-200's languages and are deliberately absent.
ISO_TO_NLLB: Final[dict[str, str]] = {
    "af": "afr_Latn",
    "ak": "aka_Latn",
    "am": "amh_Ethi",
    "ar": "arb_Arab",  # Modern Standard Arabic
    "as": "asm_Beng",
    "ay": "ayr_Latn",
    "az": "azj_Latn",  # North Azerbaijani (Latin script, as Whisper transcribes it)
    "ba": "bak_Cyrl",
    "be": "bel_Cyrl",
    "bg": "bul_Cyrl",
    "bm": "bam_Latn",
    "bn": "ben_Beng",
    "bo": "bod_Tibt",
    "bs": "bos_Latn",
    "ca": "cat_Latn",
    "cs": "ces_Latn",
    "cy": "cym_Latn",
    "da": "dan_Latn",
    "de": "deu_Latn",
    "dz": "dzo_Tibt",
    "ee": "ewe_Latn",
    "el": "ell_Grek",
    "en": "eng_Latn",
    "eo": "epo_Latn",
    "es": "spa_Latn",
    "et": "est_Latn",
    "eu": "eus_Latn",
    "fa": "pes_Arab",  # Western Persian
    "ff": "fuv_Latn",  # Nigerian Fulfulde
    "fi": "fin_Latn",
    "fj": "fij_Latn",
    "fo": "fao_Latn",
    "fr": "fra_Latn",
    "ga": "gle_Latn",
    "gd": "gla_Latn",
    "gl": "glg_Latn",
    "gn": "grn_Latn",
    "gu": "guj_Gujr",
    "ha": "hau_Latn",
    "he": "heb_Hebr",
    "hi": "hin_Deva",
    "hr": "hrv_Latn",
    "ht": "hat_Latn",
    "hu": "hun_Latn",
    "hy": "hye_Armn",
    "id": "ind_Latn",
    "ig": "ibo_Latn",
    "is": "isl_Latn",
    "it": "ita_Latn",
    "ja": "jpn_Jpan",
    "jv": "jav_Latn",
    "ka": "kat_Geor",
    "kg": "kon_Latn",
    "ki": "kik_Latn",
    "kk": "kaz_Cyrl",
    "km": "khm_Khmr",
    "kn": "kan_Knda",
    "ko": "kor_Hang",
    "ks": "kas_Arab",
    "ku": "kmr_Latn",  # Northern Kurdish (Kurmanji)
    "ky": "kir_Cyrl",
    "lb": "ltz_Latn",
    "lg": "lug_Latn",
    "li": "lim_Latn",
    "ln": "lin_Latn",
    "lo": "lao_Laoo",
    "lt": "lit_Latn",
    "lv": "lvs_Latn",  # Standard Latvian
    "mg": "plt_Latn",  # Plateau Malagasy
    "mi": "mri_Latn",
    "mk": "mkd_Cyrl",
    "ml": "mal_Mlym",
    "mn": "khk_Cyrl",  # Halh Mongolian
    "mr": "mar_Deva",
    "ms": "zsm_Latn",  # Standard Malay
    "mt": "mlt_Latn",
    "my": "mya_Mymr",
    "ne": "npi_Deva",
    "nl": "nld_Latn",
    "nn": "nno_Latn",
    "no": "nob_Latn",  # Whisper's "no" is Bokmål in practice
    "nb": "nob_Latn",
    "ny": "nya_Latn",
    "oc": "oci_Latn",
    "om": "gaz_Latn",  # West Central Oromo
    "or": "ory_Orya",
    "pa": "pan_Guru",
    "pl": "pol_Latn",
    "ps": "pbt_Arab",  # Southern Pashto
    "pt": "por_Latn",
    "qu": "quy_Latn",  # Ayacucho Quechua
    "rn": "run_Latn",
    "ro": "ron_Latn",
    "ru": "rus_Cyrl",
    "rw": "kin_Latn",
    "sa": "san_Deva",
    "sc": "srd_Latn",
    "sd": "snd_Arab",
    "sg": "sag_Latn",
    "si": "sin_Sinh",
    "sk": "slk_Latn",
    "sl": "slv_Latn",
    "sm": "smo_Latn",
    "sn": "sna_Latn",
    "so": "som_Latn",
    "sq": "als_Latn",  # Tosk Albanian
    "sr": "srp_Cyrl",
    "ss": "ssw_Latn",
    "st": "sot_Latn",
    "su": "sun_Latn",
    "sv": "swe_Latn",
    "sw": "swh_Latn",
    "ta": "tam_Taml",
    "te": "tel_Telu",
    "tg": "tgk_Cyrl",
    "th": "tha_Thai",
    "ti": "tir_Ethi",
    "tk": "tuk_Latn",
    "tl": "tgl_Latn",
    "tn": "tsn_Latn",
    "tr": "tur_Latn",
    "ts": "tso_Latn",
    "tt": "tat_Cyrl",
    "tw": "twi_Latn",
    "ug": "uig_Arab",
    "uk": "ukr_Cyrl",
    "ur": "urd_Arab",
    "uz": "uzn_Latn",  # Northern Uzbek
    "vi": "vie_Latn",
    "wo": "wol_Latn",
    "xh": "xho_Latn",
    "yi": "ydd_Hebr",  # Eastern Yiddish
    "yo": "yor_Latn",
    "yue": "yue_Hant",  # Cantonese: Whisper's only three-letter code
    "zh": "zho_Hans",
    "zu": "zul_Latn",
}

#: Spellings that mean a code of the table: Whisper's non-standard ``jw`` for Javanese,
#: deprecated ISO codes, and script/region variants a client may send.
ALIASES: Final[dict[str, str]] = {
    "jw": "jv",
    "iw": "he",
    "in": "id",
    "ji": "yi",
    "tagalog": "tl",
    "fil": "tl",
}

#: Region/script variants with their own NLLB code (Traditional Chinese).
VARIANTS_TO_NLLB: Final[dict[str, str]] = {
    "zh-hant": "zho_Hant",
    "zh-tw": "zho_Hant",
    "zh-hk": "zho_Hant",
    "zh-mo": "zho_Hant",
    "zh-hans": "zho_Hans",
    "zh-cn": "zho_Hans",
    "zh-sg": "zho_Hans",
}

#: The most spoken languages (total speakers, Ethnologue's ranking) that have a code here.
#: Nigerian Pidgin and Wu Chinese are in the top 20 but have neither an ISO 639-1 code nor
#: an NLLB-200 token, so the list goes on to the next ones.
MOST_SPOKEN: Final[tuple[str, ...]] = (
    "en", "zh", "hi", "es", "fr", "ar", "bn", "pt", "ru", "ur",
    "id", "de", "ja", "mr", "te", "tr", "ta", "yue", "vi", "ko",
    "ha", "fa", "sw", "jv", "it", "pa",
)  # fmt: skip

#: Whisper languages NLLB-200 does not have (no token to ask for them).
WHISPER_WITHOUT_NLLB: Final[frozenset[str]] = frozenset({"la", "br", "haw"})

OPUS_MT_ORG: Final = "Helsinki-NLP"


def normalize_language(code: str | None) -> str | None:
    """Canonical lower-case code for ``code`` (``"EN-us"`` -> ``"en"``, ``"jw"`` -> ``"jv"``,
    ``"zh-TW"`` -> ``"zh-tw"``), or None for None, empty or ``"auto"``."""
    if code is None:
        return None
    value = code.strip().lower().replace("_", "-")
    if not value or value == "auto":
        return None
    if value in VARIANTS_TO_NLLB:
        return value
    base = value.split("-", 1)[0]
    return ALIASES.get(base, base)


def to_nllb(code: str | None) -> str | None:
    """NLLB-200 code for an ISO 639-1 (or Whisper) code, or None when NLLB has no such language."""
    value = normalize_language(code)
    if value is None:
        return None
    if value in VARIANTS_TO_NLLB:
        return VARIANTS_TO_NLLB[value]
    return ISO_TO_NLLB.get(value)


def from_nllb(nllb_code: str) -> str | None:
    """ISO code for an NLLB-200 code (first one listed when several map to it)."""
    for iso, nllb in ISO_TO_NLLB.items():
        if nllb == nllb_code:
            return iso
    return None


def opus_mt_code(code: str | None) -> str | None:
    """The code opus-mt model names use: ISO 639-1 (``zh-TW`` -> ``zh``, ``jw`` -> ``jv``)."""
    value = normalize_language(code)
    if value is None:
        return None
    return value.split("-", 1)[0]


def opus_mt_model_name(source: str, target: str) -> str:
    """Hub name of the opus-mt model for a pair, e.g. ``Helsinki-NLP/opus-mt-en-es``."""
    return f"{OPUS_MT_ORG}/{opus_mt_dir_name(source, target)}"


def opus_mt_dir_name(source: str, target: str) -> str:
    """Directory name of a converted opus-mt pair model, e.g. ``opus-mt-en-es``."""
    src, tgt = opus_mt_code(source), opus_mt_code(target)
    if src is None or tgt is None:
        raise UnsupportedLanguagePair(source, target, "a language is missing")
    return f"opus-mt-{src}-{tgt}"


def is_known_language(code: str | None) -> bool:
    """True when ``code`` is a language of the table (or a variant/alias of one)."""
    return to_nllb(code) is not None


def same_language(source: str | None, target: str | None) -> bool:
    """True when both codes name the same language, so the text passes through untranslated."""
    a, b = normalize_language(source), normalize_language(target)
    if a is None or b is None:
        return False
    if a == b:
        return True
    # "zh" and "zh-cn" are the same written language; "zh" and "zh-tw" are not.
    return to_nllb(a) == to_nllb(b)


def supports(source: str | None, target: str | None, engine_kind: EngineKind | str) -> bool:
    """Whether an engine of ``engine_kind`` can in principle serve the pair.

    Pure and model-free: an NLLB model serves any two languages of the table; opus-mt needs
    one model per pair, so here both languages must be known and which pairs are actually
    installed is the engine's question (``TranslationEngine.supports``). The same language on
    both sides is always supported (it passes through).
    """
    if normalize_language(source) is None or normalize_language(target) is None:
        return False
    if same_language(source, target):
        return True
    if engine_kind == "nllb":
        return to_nllb(source) is not None and to_nllb(target) is not None
    if engine_kind in ("opus-mt", "easynmt"):
        return is_known_language(source) and is_known_language(target)
    return False


def check_pair(source: str | None, target: str | None, engine_kind: EngineKind | str) -> None:
    """Raise :class:`UnsupportedLanguagePair` unless :func:`supports` says yes."""
    if not supports(source, target, engine_kind):
        raise UnsupportedLanguagePair(source, target, f"not served by {engine_kind}")
