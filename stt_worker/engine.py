"""faster-whisper inference for the STT worker: one model, loaded once, synchronous calls.

The worker's asyncio shell calls :meth:`WhisperEngine.transcribe` /
:meth:`WhisperEngine.transcribe_batch` from a thread (``asyncio.to_thread``); nothing here
knows about Redis or asyncio.  Calls are serialised by a lock: one CTranslate2 model with
``num_workers=1`` runs one inference at a time anyway, and the lock keeps the
feature extractor (which has mutable state) safe.

Finals and partials are decoded differently (decided here, documented in the README):

* **final**: ``beam_size`` (``BEAM_SIZE``, default 5) with Whisper's temperature fallback,
  Silero ``vad_filter`` when ``VAD_FILTER`` is on, word timestamps on request, the
  previous final of the session as the prompt.
* **partial**: greedy (beam 1), no temperature fallback, no VAD filter, no timestamps of
  any kind.  A partial is replaced by the next one within a second, so speed matters more
  than the last point of accuracy; this makes a partial roughly 2-4x cheaper.

English-only models (``*.en``) are never asked to detect a language: the answer is "en"
with probability 1.

Detection answers only a language of the deployment's set (``source_languages``, from
``SOURCE_LANGUAGES``), narrowed per request (``TranscribeRequest.source_languages``, the
session's ``config.source_languages``): the most probable language inside the set, from the
same encoder output, its probability renormalised over the set
(:mod:`stt_worker.detection`).  On the reference path the engine runs faster-whisper's own
``detect_language`` (the same VAD-filtered features and 30 s window ``transcribe`` would
detect on) and then ``transcribe`` with that language, which costs what ``transcribe``'s own
detection cost.  The hallucination guards keep judging doubt by the unrestricted top
probability: restriction must not make noise look like confident speech.

Batching: :meth:`transcribe_batch` stacks the log-Mel features of up to N utterances
(each at most 30 s, no word timestamps) into one CTranslate2 ``encode`` and one
``generate`` call, with per-utterance language and prompt.  The language is detected
from that same encoder output (faster-whisper's ``transcribe`` encodes twice when it
detects), timestamps are not decoded, and a final whose decode looks unreliable
(log-probability or compression ratio past Whisper's thresholds) is re-run alone through
faster-whisper's ``transcribe`` for its temperature fallback.  Longer utterances and
word-timestamp requests always take that path.  ``EngineOptions.batched=False`` makes
:meth:`transcribe_batch` a plain loop; ``python -m benchmarks.stt`` measures both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from stt_worker.detection import STICKY_PROBABILITY, Detection, Scope, allowed_languages, choose_language
from stt_worker.guards import (
    GuardOptions,
    compression_ratio,
    judge_segment,
    normalize_audio,
    rms_dbfs,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: Whisper's window; longer utterances go through the sequential (seeking) path.
MAX_BATCH_SECONDS = 30.0
#: Token budget: BASE_NEW_TOKENS + TOKENS_PER_SECOND * seconds, at most MAX_NEW_TOKENS
#: (448-token context minus the longest prompt faster-whisper builds: 223 + 5).
BASE_NEW_TOKENS = 20
TOKENS_PER_SECOND = 15
MAX_NEW_TOKENS = 218
#: Prompt tokens kept in the batched path (faster-whisper's own limit is 223).
PROMPT_TOKENS = 96

FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames: what Whisper was trained on
WINDOW_MARGIN_FRAMES = 200  # 2 s of padding after the longest utterance of a batch
WINDOW_STEP_FRAMES = 100
#: The shortest dynamic window. Shorter windows make Whisper loop or give up on short audio
#: (issue 14, ``python -m benchmarks.encoder_window``, tiny.en partials on 28 tails of
#: 0.6-2 s: 11 collapsed or dropped for repetition with audio + 2 s, 5 with a 10 s floor, 3 with
#: 15 s, 0 with the full 30 s; 15 s costs about half of 30 s).
MIN_WINDOW_FRAMES = 1500


@dataclass(frozen=True)
class EngineOptions:
    """How to load and run the model (from the worker's settings)."""

    #: A directory (use ``stt_worker.models.resolve_model`` first) or a faster-whisper name.
    model: str
    device: str = "auto"  # auto | cuda | cpu
    compute_type: str = "auto"  # auto -> float16 on CUDA, int8 on CPU
    cpu_threads: int = 0  # 0 = CTranslate2's default
    num_workers: int = 1
    beam_size: int = 5
    vad_filter: bool = True
    normalize_audio: bool = False
    #: :meth:`WhisperEngine.transcribe_batch` runs one stacked encode/generate (True) or a
    #: loop of faster-whisper ``transcribe`` calls (False).  Default True: on the 2-core
    #: CPU it was 1.4-1.9x faster for base (one encode instead of two when detecting the
    #: language) and up to 1.3x for tiny.en at 2 threads (``python -m benchmarks.stt``).
    batched: bool = True
    #: ``dynamic``: the batched path encodes the utterance plus a margin, at least 15 s
    #: (``MIN_WINDOW_FRAMES``), instead of Whisper's fixed 30 s window (the encoder's cost grows
    #: with the window); ``full``: always 30 s.
    encoder_window: str = "dynamic"
    #: The dynamic window's floor, in mel frames (10 ms), for a batch of partials only.
    partial_min_window_frames: int = MIN_WINDOW_FRAMES
    guards: GuardOptions = field(default_factory=GuardOptions)
    #: Languages detection may answer (``SOURCE_LANGUAGES``); () = any the model knows.
    source_languages: tuple[str, ...] = ()


def encoder_frames(longest: int, window: str, floor: int = MIN_WINDOW_FRAMES) -> int:
    """Mel frames to encode for a batch whose longest utterance has ``longest`` frames, at
    least ``floor`` frames (rounded up to whole seconds) with the dynamic window."""
    if window == "full":
        return FULL_WINDOW_FRAMES
    wanted = max(floor, longest + WINDOW_MARGIN_FRAMES)
    rounded = -(-wanted // WINDOW_STEP_FRAMES) * WINDOW_STEP_FRAMES  # whole seconds, always even
    return min(FULL_WINDOW_FRAMES, rounded)


@dataclass(frozen=True)
class TranscribeRequest:
    """One utterance: float32 mono 16 kHz samples in [-1, 1]."""

    audio: np.ndarray
    language: str | None = None  # ISO 639-1 hint, None = detect
    prompt: str | None = None  # previous final of the session, for context
    word_timestamps: bool = False
    partial: bool = False
    task: Literal["transcribe", "translate"] = "transcribe"
    #: The session's narrowing of ``EngineOptions.source_languages`` (None: no narrowing).
    source_languages: tuple[str, ...] | None = None
    #: With ``language`` None: the session's confident language so far.  A detection of this
    #: audio below ``STICKY_PROBABILITY`` does not flip the session to another language.
    language_hint: str | None = None


@dataclass(frozen=True)
class Word:
    """A word with times in seconds from the start of the utterance."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Transcript:
    """The engine's answer for one request; ``text`` is "" when everything was dropped."""

    text: str
    language: str
    language_probability: float
    words: list[Word] | None
    inference_seconds: float
    no_speech_prob: float
    avg_logprob: float
    #: Why (part of) the text was removed: silence, no_speech, silence_phrase, repetition,
    #: vad_no_speech; None when the text is complete.
    dropped_reason: str | None = None
    duration: float = 0.0
    #: ``set``: ``language_probability`` is renormalised over the allowed languages;
    #: ``all``: over every language; ``hint``: the language was given, not detected.
    language_probability_scope: Scope = "hint"
    #: What unrestricted detection answered when it was outside the set, else None.
    language_outside_set: str | None = None


@dataclass
class _Decoded:
    """Intermediate per-segment values before the guards."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    words: list[Word] = field(default_factory=list)


def max_new_tokens(duration: float) -> int:
    """Token budget for an utterance of ``duration`` seconds (per 30 s window).

    Real speech stays well under ``TOKENS_PER_SECOND``; a decode that needs more is a
    hallucination loop, and the cap also bounds the time one loop can waste (each
    temperature fallback decodes again).  Never above what fits beside the longest
    prompt in Whisper's 448-token context.
    """
    window = min(max(duration, 0.0), MAX_BATCH_SECONDS)
    return int(min(MAX_NEW_TOKENS, BASE_NEW_TOKENS + TOKENS_PER_SECOND * window))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except RuntimeError:
        log.info("CUDA probe failed; using the CPU", exc_info=True)
        return "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """``auto`` -> float16 on CUDA, int8 on CPU (the issue's rule, not CTranslate2's)."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperEngine:
    """A loaded faster-whisper model with the project's decoding policy and guards."""

    def __init__(self, options: EngineOptions) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        self.device = resolve_device(options.device)
        self.compute_type = resolve_compute_type(options.compute_type, self.device)
        started = time.perf_counter()
        self._model = WhisperModel(
            options.model,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=options.cpu_threads,
            num_workers=options.num_workers,
            local_files_only=True,  # resolution (and any download) happened before
        )
        self.load_seconds = time.perf_counter() - started
        self.multilingual: bool = bool(self._model.model.is_multilingual)
        self._languages: frozenset[str] = frozenset(self._model.supported_languages)
        self._lock = threading.Lock()
        log.info(
            "loaded model %s on %s/%s (threads=%d, multilingual=%s) in %.2fs",
            options.model,
            self.device,
            self.compute_type,
            options.cpu_threads,
            self.multilingual,
            self.load_seconds,
        )

    # ------------------------------------------------------------------ public

    def transcribe(self, req: TranscribeRequest) -> Transcript:
        """Transcribe one utterance (any length) through faster-whisper's own ``transcribe``.

        The reference path: Whisper's temperature fallback, timestamps, long audio.  The
        worker calls :meth:`transcribe_batch`, which is faster for short utterances.
        """
        with self._lock:
            return self._transcribe_one(req)

    def transcribe_batch(self, reqs: Sequence[TranscribeRequest], *, batched: bool | None = None) -> list[Transcript]:
        """Transcribe several utterances; results in request order.

        When batched (``batched``, default ``options.batched``) the eligible requests
        (<= 30 s, no word timestamps) share one encode/generate call; the rest, and every
        request otherwise, run one by one.
        """
        if not reqs:
            return []
        use_batch = self.options.batched if batched is None else batched
        with self._lock:
            if not use_batch:
                return [self._transcribe_one(r) for r in reqs]
            return self._transcribe_batched(reqs)

    # ------------------------------------------------------------- internals

    def _prepare(self, req: TranscribeRequest) -> tuple[np.ndarray, float, str | None]:
        """Normalise the input; return (audio, input RMS dBFS, early drop reason)."""
        audio = np.asarray(req.audio, dtype=np.float32).reshape(-1)
        level = rms_dbfs(audio)
        if audio.size == 0 or level < self.options.guards.silence_rms_dbfs:
            return audio, level, "silence"
        if self.options.normalize_audio:
            audio = normalize_audio(audio)
        return audio, level, None

    def _language_arg(self, req: TranscribeRequest) -> str | None:
        """The language to force, or None to detect ("auto", "" and unknown codes detect)."""
        if not self.multilingual:
            return "en"
        lang = (req.language or "").strip().lower()
        if lang in ("", "auto"):
            return None
        if lang not in self._languages:
            log.warning("language hint %r is not supported by the model; detecting", lang)
            return None
        return lang

    def _empty(self, req: TranscribeRequest, reason: str, started: float, duration: float) -> Transcript:
        lang = self._language_arg(req) or ""
        return Transcript(
            text="",
            language=lang,
            language_probability=1.0 if lang else 0.0,
            language_probability_scope="hint" if lang else "all",
            words=[] if req.word_timestamps else None,
            inference_seconds=time.perf_counter() - started,
            no_speech_prob=1.0,
            avg_logprob=0.0,
            dropped_reason=reason,
            duration=duration,
        )

    def _transcribe_one(self, req: TranscribeRequest, detection: Detection | None = None) -> Transcript:
        """faster-whisper's ``transcribe``; ``detection``: the language already detected (a
        batched final re-run for its temperature fallback keeps its batch's decision)."""
        started = time.perf_counter()
        audio, level, early = self._prepare(req)
        duration = audio.size / SAMPLE_RATE
        if early is not None:
            return self._empty(req, early, started, duration)
        kwargs: dict[str, object]
        if req.partial:
            kwargs = {
                "beam_size": 1,
                "best_of": 1,
                "temperature": 0.0,
                "without_timestamps": True,
                "word_timestamps": req.word_timestamps,  # the gateway's commit policy needs them
                "vad_filter": False,
            }
        else:
            kwargs = {
                "beam_size": self.options.beam_size,
                "word_timestamps": req.word_timestamps,
                "vad_filter": self.options.vad_filter,
            }
        language = self._language_arg(req)
        if language is None:
            if detection is None:
                detection = self._detect_reference(audio, req)
            language = detection.language
        segments, info = self._model.transcribe(
            audio,
            max_new_tokens=max_new_tokens(duration),
            language=language,
            initial_prompt=req.prompt or None,
            task=req.task,
            # The prompt carries the context; conditioning inside one utterance only
            # feeds repetition loops.
            condition_on_previous_text=False,
            # faster-whisper applies the same no-speech rule while seeking and uses these
            # thresholds for its temperature fallback: pass ours so both agree.
            no_speech_threshold=self.options.guards.no_speech_threshold,
            log_prob_threshold=self.options.guards.logprob_threshold,
            compression_ratio_threshold=self.options.guards.compression_ratio_threshold,
            **kwargs,
        )
        decoded: list[_Decoded] = []
        for seg in segments:  # a generator: decoding happens here
            words = [Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (seg.words or [])]
            decoded.append(_Decoded(seg.text, seg.no_speech_prob, seg.avg_logprob, words))
        vad_removed_all = (
            not req.partial and self.options.vad_filter and getattr(info, "duration_after_vad", duration) == 0
        )
        return self._assemble(
            req,
            decoded,
            detection=detection or Detection(info.language, 1.0, "hint", info.language, 1.0),
            level=level,
            started=started,
            duration=duration,
            # No segment at all without VAD: faster-whisper skipped every window as
            # no-speech (its check is the same rule as ours).
            empty_reason="vad_no_speech" if vad_removed_all else "no_speech",
        )

    def _allowed(self, req: TranscribeRequest) -> frozenset[str]:
        return allowed_languages(self.options.source_languages, req.source_languages, self._languages)

    def _detect_reference(self, audio: np.ndarray, req: TranscribeRequest) -> Detection:
        """faster-whisper's ``detect_language`` on what its ``transcribe`` would detect on."""
        from faster_whisper.vad import VadOptions

        use_vad = not req.partial and self.options.vad_filter
        _, _, ranking = self._model.detect_language(
            audio=audio, vad_filter=use_vad, vad_parameters=VadOptions() if use_vad else None
        )
        return choose_language(ranking, self._allowed(req), req.language_hint, STICKY_PROBABILITY)

    def _assemble(
        self,
        req: TranscribeRequest,
        decoded: Sequence[_Decoded],
        *,
        detection: Detection,
        level: float,
        started: float,
        duration: float,
        empty_reason: str,
    ) -> Transcript:
        texts: list[str] = []
        words: list[Word] = []
        reasons: list[str] = []
        kept_no_speech: list[float] = []
        kept_logprob: list[float] = []
        for seg in decoded:
            verdict = judge_segment(
                seg.text,
                no_speech_prob=seg.no_speech_prob,
                avg_logprob=seg.avg_logprob,
                input_rms_dbfs=level,
                options=self.options.guards,
                # Doubt is the model's own: the unrestricted top probability.
                language_probability=detection.unrestricted_probability if detection.scope != "hint" else None,
            )
            if verdict.dropped_reason is not None:
                reasons.append(verdict.dropped_reason)
                log.debug("dropped segment %r: %s", seg.text, verdict.dropped_reason)
                continue
            if verdict.collapsed_repetition:
                reasons.append("repetition")
            texts.append(verdict.text)
            kept_no_speech.append(seg.no_speech_prob)
            kept_logprob.append(seg.avg_logprob)
            # Word timings of a collapsed segment would no longer match its text.
            if not verdict.collapsed_repetition:
                words.extend(seg.words)
        text = " ".join(t for t in texts if t).strip()
        if not decoded:
            reasons.append(empty_reason)
        all_segments = decoded or [_Decoded("", 1.0, 0.0)]
        return Transcript(
            text=text,
            language=detection.language,
            language_probability=detection.probability,
            language_probability_scope=detection.scope,
            language_outside_set=detection.unrestricted_language if detection.outside_set else None,
            words=words if req.word_timestamps else None,
            inference_seconds=time.perf_counter() - started,
            no_speech_prob=float(
                min(kept_no_speech) if kept_no_speech else max(s.no_speech_prob for s in all_segments)
            ),
            avg_logprob=float(
                np.mean(kept_logprob) if kept_logprob else np.mean([s.avg_logprob for s in all_segments])
            ),
            dropped_reason=reasons[0] if reasons else None,
            duration=duration,
        )

    def _needs_fallback(self, text: str, no_speech_prob: float, avg_logprob: float) -> bool:
        return _needs_fallback_impl(self.options.guards, text, no_speech_prob, avg_logprob)

    def _transcribe_batched(self, reqs: Sequence[TranscribeRequest]) -> list[Transcript]:
        """One encode + one generate over the eligible requests (see module docstring)."""
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        started = time.perf_counter()
        results: list[Transcript | None] = [None] * len(reqs)
        batch: list[tuple[int, np.ndarray, float, float]] = []
        for i, req in enumerate(reqs):
            audio, level, early = self._prepare(req)
            duration = audio.size / SAMPLE_RATE
            if early is not None:
                results[i] = self._empty(req, early, started, duration)
                continue
            # Finals with words need faster-whisper's own path (its VAD filter keeps the times
            # right); partials with words stay in the batch and are aligned below.
            if (req.word_timestamps and not req.partial) or duration > MAX_BATCH_SECONDS:
                results[i] = self._transcribe_one(req)
                continue
            if not req.partial and self.options.vad_filter:
                chunks = get_speech_timestamps(audio, VadOptions())
                if not chunks:
                    results[i] = self._empty(req, "vad_no_speech", started, duration)
                    continue
                audio = np.concatenate(collect_chunks(audio, chunks)[0], axis=0)
            batch.append((i, audio, level, duration))
        # generate() needs <|startoftranscript|> at the same position in every member: members
        # with and without a prompt run as separate groups, and a group's prompts are cut to one
        # length (keeping their most recent tokens).
        for group in ([b for b in batch if reqs[b[0]].prompt], [b for b in batch if not reqs[b[0]].prompt]):
            if group:
                self._run_group(reqs, group, results, started)
        return [r for r in results if r is not None]

    def _run_group(self, reqs: Sequence[TranscribeRequest], batch: list[tuple[int, np.ndarray, float, float]],
                   results: list[Transcript | None], started: float) -> None:
        """One encode + generate (+ align) call for ``batch``; fills ``results`` in place."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        model = self._model
        mels = [model.feature_extractor(audio) for _, audio, _, _ in batch]
        all_partial = all(reqs[i].partial for i, _, _, _ in batch)
        floor = self.options.partial_min_window_frames if all_partial else MIN_WINDOW_FRAMES
        frames = encoder_frames(max(m.shape[-1] for m in mels), self.options.encoder_window, floor)
        feats = np.stack([pad_or_trim(m, frames) for m in mels]).astype(np.float32)
        encoder_output = model.encode(feats)
        languages: list[Detection] = []
        detections = (
            model.model.detect_language(encoder_output)
            if self.multilingual and any(self._language_arg(reqs[i]) is None for i, _, _, _ in batch)
            else None
        )
        prompts: list[list[int]] = []
        previous_tokens: list[list[int]] = []
        tokenizers = []
        for j, (i, _, _, _) in enumerate(batch):
            req = reqs[i]
            hint = self._language_arg(req)
            if hint is None and detections is not None:
                # The same encoder output decodes the text: no second pass.
                ranking = ((t[2:-2], p) for t, p in detections[j])
                detection = choose_language(ranking, self._allowed(req), req.language_hint, STICKY_PROBABILITY)
            else:
                detection = Detection(hint or "en", 1.0, "hint", hint or "en", 1.0)
            languages.append(detection)
            tok = Tokenizer(
                model.hf_tokenizer,
                self.multilingual,
                task=req.task,
                language=detection.language,
            )
            tokenizers.append(tok)
            previous_tokens.append(tok.encode(" " + req.prompt.strip()) if req.prompt else [])
        keep = min(PROMPT_TOKENS, *(len(p) for p in previous_tokens))
        for tok, previous in zip(tokenizers, previous_tokens, strict=True):
            prompts.append(model.get_prompt(tok, previous[len(previous) - keep :], without_timestamps=True))
        beam = 1 if all_partial else self.options.beam_size
        generated = model.model.generate(
            encoder_output,
            prompts,
            beam_size=beam,
            # generate() takes one max_length for the batch: the longest budget.
            max_length=min(
                model.max_length,
                max(len(p) + max_new_tokens(d) for p, (_, _, _, d) in zip(prompts, batch, strict=True)),
            ),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        token_lists = [[t for t in res.sequences_ids[0] if t < tokenizers[j].eot] for j, res in enumerate(generated)]
        aligned = self._align_batch(
            [reqs[i].word_timestamps for i, _, _, _ in batch], tokenizers, token_lists,
            encoder_output, [m.shape[-1] for m in mels],
        )
        elapsed = time.perf_counter() - started
        for j, (i, _, level, duration) in enumerate(batch):
            res = generated[j]
            tokens = token_lists[j]
            seq_len = len(res.sequences_ids[0])
            avg_logprob = float(res.scores[0]) * seq_len / (seq_len + 1)
            text = tokenizers[j].decode(tokens)
            if not reqs[i].partial and self._needs_fallback(text, float(res.no_speech_prob), avg_logprob):
                # Whisper's temperature fallback is per utterance; run this one alone.
                results[i] = self._transcribe_one(reqs[i], languages[j] if languages[j].scope != "hint" else None)
                continue
            transcript = self._assemble(
                reqs[i],
                [_Decoded(text, float(res.no_speech_prob), avg_logprob, aligned[j])],
                detection=languages[j],
                level=level,
                started=started,
                duration=duration,
                empty_reason="empty",
            )
            # Every member of a batch waited for the whole batch.
            results[i] = _with_time(transcript, elapsed)


    def _align_batch(self, wanted: list[bool], tokenizers: list[object], token_lists: list[list[int]],
                     encoder_output: object, frames: list[int]) -> list[list[Word]]:
        """Word times (seconds from each request's audio start) for the batch members that want
        them, from the batch's own encoder output: one ``align`` call per language among them."""
        out: list[list[Word]] = [[] for _ in wanted]
        by_language: dict[str, list[int]] = {}
        for j, want in enumerate(wanted):
            if want and token_lists[j]:
                by_language.setdefault(tokenizers[j].language_code, []).append(j)  # type: ignore[attr-defined]
        for members in by_language.values():
            tok = tokenizers[members[0]]
            # align() takes the whole batch; members of other languages (or with no text) get a
            # placeholder token whose alignment is ignored.
            tokens = [t if t else [tok.eot] for t in token_lists]  # type: ignore[attr-defined]
            results = self._model.find_alignment(tok, tokens, encoder_output, frames)
            for j in members:
                words: list[Word] = []
                for w in results[j]:
                    text = str(w["word"])
                    if words and not any(c.isalnum() for c in text):
                        # Punctuation alone ("." after the last word) belongs to the word before.
                        last = words[-1]
                        words[-1] = Word(last.start, float(w["end"]), last.word + text.strip(), last.probability)
                    elif text.strip():
                        words.append(Word(float(w["start"]), float(w["end"]), text, float(w["probability"])))
                out[j] = words
        return out


def _needs_fallback_impl(guards: GuardOptions, text: str, no_speech_prob: float, avg_logprob: float) -> bool:
    if no_speech_prob > guards.no_speech_threshold and avg_logprob < guards.logprob_threshold:
        return False  # silence: the guards drop it, a retry would not help
    return compression_ratio(text) > guards.compression_ratio_threshold or avg_logprob < guards.logprob_threshold


def _with_time(t: Transcript, seconds: float) -> Transcript:
    from dataclasses import replace

    return replace(t, inference_seconds=seconds)
