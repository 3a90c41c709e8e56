"""Generate conversational test material offline: dialogues and a monologue, with noise.

The demo clips of ``generate_audio.py`` separate sentences by 3 s of silence, so every
sentence is one turn. Real conversation has no such pauses. This module builds clips that
sound like it (issue 14):

* **dialogue**: two alternating voices (the Piper voice and an espeak-ng voice), turns of
  one to three sentences, gaps between turns of 0.1-0.8 s and now and then an overlap (the
  next speaker starts before the previous one ends), 60-120 s long, white noise mixed in at
  10-20 dB SNR;
* **monologue**: the Piper voice alone for about 60 s, sentences joined by pauses of at most
  0.3 s, so a silence threshold of 2 s never ends the turn.

The manifest (the same ``manifest.json`` format as the demo clips) lists every *sentence*
with its text and exact start/end, so a client can time each sentence's final. Everything
is seeded: the same options give the same bytes. Clips are built on demand (the benchmark
calls :func:`build`); ``python -m demos.conversation --out DIR`` writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demos import tts
from demos.audio_tools import FloatArray, normalise_peak, resample, trim_silence, wav_bytes
from demos.manifest import MANIFEST_NAME, Clip, Manifest, Utterance, load_manifest

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_OUT = Path(__file__).resolve().parent / "audio" / "conversation"
GENERATOR_VERSION = 1
ESPEAK_VOICE = "en-us"

#: Conversational sentences without digits or abbreviations, so references compare word
#: for word with a normalised transcript.
SENTENCES: tuple[str, ...] = (
    "Did you manage to book the train tickets for next week?",
    "Yes, I booked them last night after dinner.",
    "Great, which train are we taking in the morning?",
    "The early one, it leaves at seven and arrives before lunch.",
    "That sounds fine, but I need to be back by Friday evening.",
    "No problem, the return train is on Friday afternoon.",
    "Should we bring anything for the meeting with the new client?",
    "Bring the printed slides and a copy of the contract.",
    "I will ask the office to print them tomorrow.",
    "Do you know where the hotel is from the station?",
    "It is a short walk, maybe ten minutes along the river.",
    "Perfect, then we can drop our bags before the meeting.",
    "How did the presentation go on Monday?",
    "It went well, although the projector stopped working twice.",
    "Did anyone ask about the budget for the second phase?",
    "The director wanted to know when the first results will be ready.",
    "What did you tell her?",
    "I said we would have a draft by the end of the month.",
    "That is ambitious, but I think we can make it.",
    "We should split the work between the two teams.",
    "I can take the interviews if you handle the survey.",
    "Fine, I will send the questions to everyone this afternoon.",
    "Have you tried the new coffee place around the corner?",
    "Not yet, is it any good?",
    "The coffee is excellent and they bake their own bread.",
    "Let us go there tomorrow before work.",
    "Remember to call the garage about the car.",
    "They said the repair would take three more days.",
    "Can you pick up the children from school on Thursday?",
    "Sure, I finish early that day.",
    "The weather forecast says it will rain all weekend.",
    "Then we should move the picnic to the following Saturday.",
    "I agree, nobody wants to sit on wet grass.",
    "Please turn left at the next corner and park near the library.",
    "The library closes at six, so we have plenty of time.",
    "I need to return two books and pick up a new one.",
    "Which one are you reading now?",
    "A long novel about a family that runs a small hotel by the sea.",
    "It sounds like a good story for the holidays.",
    "Thank you for helping me with the move last week.",
)

MONOLOGUE: tuple[str, ...] = (
    "Good morning everyone and thank you for joining the weekly update.",
    "This week we finished the migration of the billing system to the new servers.",
    "The switch happened on Tuesday night and customers noticed nothing.",
    "We did find two small problems with the monthly reports.",
    "Both are fixed and the reports for last month have been sent again.",
    "Next week the team will focus on the mobile application.",
    "The main goal is to make the login faster on older phones.",
    "We measured it and it takes almost four seconds today.",
    "Our target is less than one second for most users.",
    "We also want to clean up the settings page, which many people find confusing.",
    "The design team has prepared a simpler layout with fewer options.",
    "We will test it with a small group of users before the release.",
    "On the hiring side, two new engineers start at the beginning of the month.",
    "Please make them feel welcome and help them find their way around.",
    "Finally, remember that the office will be closed on Friday afternoon.",
    "The kitchen on the second floor is being repaired until the end of next week.",
    "Until then please use the one next to the meeting rooms downstairs.",
    "That is all from me, so let us move on to your questions.",
)


@dataclass(frozen=True)
class ConversationOptions:
    """What to build; every random choice comes from ``seed``."""

    out: Path = DEFAULT_OUT
    dialogues: int = 2
    dialogue_seconds: float = 75.0
    monologue: bool = True
    seed: int = 14
    snr_db: tuple[float, float] = (10.0, 20.0)
    gap_seconds: tuple[float, float] = (0.1, 0.8)
    #: Chance that a turn starts before the previous one ends (by 0.1-0.4 s).
    overlap_chance: float = 0.2
    #: Pause between two sentences of the same speaker.
    inner_gap_seconds: tuple[float, float] = (0.1, 0.3)
    sample_rate: int = SAMPLE_RATE


@dataclass(frozen=True)
class Placed:
    """One sentence placed on the clip's timeline (seconds)."""

    text: str
    start: float
    end: float
    speaker: str


def _speech(engine: str, text: str, rate: int) -> FloatArray:
    voice = "en_US-joe-medium" if engine == "piper" else ESPEAK_VOICE
    spoken = tts.synthesize(engine, voice, text)
    return normalise_peak(trim_silence(resample(spoken.audio, spoken.sample_rate, rate)))


def mix(pieces: list[tuple[FloatArray, float]], rate: int, tail: float = 2.5) -> FloatArray:
    """Sum pieces placed at ``start`` seconds (overlaps add up) into one clip with a tail."""
    length = max(round(start * rate) + p.size for p, start in pieces) + round(tail * rate)
    out = np.zeros(length, dtype=np.float32)
    for piece, start in pieces:
        at = round(start * rate)
        out[at : at + piece.size] += piece
    peak = float(np.max(np.abs(out)))
    if peak > 0.95:  # an overlap of two loud voices: scale down rather than clip
        out *= 0.95 / peak
    return out


def add_noise(audio: FloatArray, spans: list[tuple[float, float]], snr_db: float, rate: int,
              rng: np.random.Generator) -> FloatArray:
    """Add white noise at ``snr_db`` below the RMS of the speech inside ``spans``."""
    voiced = np.concatenate([audio[round(a * rate) : round(b * rate)] for a, b in spans])
    speech_rms = float(np.sqrt(np.mean(np.square(voiced, dtype=np.float64))))
    noise_rms = speech_rms / (10.0 ** (snr_db / 20.0))
    noise = rng.standard_normal(audio.size).astype(np.float32) * noise_rms
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def plan_dialogue(rng: np.random.Generator, options: ConversationOptions) -> list[tuple[str, str, float]]:
    """(speaker engine, text, gap before it) for each sentence, until the target length is
    likely reached (about 3 s a sentence). A negative gap is an overlap."""
    order = list(rng.permutation(len(SENTENCES)))
    plan: list[tuple[str, str, float]] = []
    speaker = "piper"
    budget = options.dialogue_seconds
    lo, hi = options.gap_seconds
    while budget > 0 and order:
        for k in range(int(rng.integers(1, 4))):
            if not order:
                break
            text = SENTENCES[order.pop()]
            if k:
                gap = float(rng.uniform(*options.inner_gap_seconds))
            elif plan and rng.random() < options.overlap_chance:
                gap = -float(rng.uniform(0.1, 0.4))
            else:
                gap = float(rng.uniform(lo, hi)) if plan else 0.5
            plan.append((speaker, text, gap))
            budget -= 3.0 + max(gap, 0.0)
        speaker = "espeak" if speaker == "piper" else "piper"
    return plan


def render(plan: list[tuple[str, str, float]], rate: int) -> tuple[FloatArray, list[Placed]]:
    """Synthesise and place each sentence; returns the clean clip and the sentence times."""
    pieces: list[tuple[FloatArray, float]] = []
    placed: list[Placed] = []
    cursor = 0.0
    for engine, text, gap in plan:
        audio = _speech(engine, text, rate)
        start = max(0.0, cursor + gap)
        end = start + audio.size / rate
        pieces.append((audio, start))
        placed.append(Placed(text, start, end, engine))
        cursor = max(cursor, end)
    return mix(pieces, rate), placed


def _clip(name: str, audio: FloatArray, placed: list[Placed], options: ConversationOptions,
          engine: str) -> tuple[bytes, Clip]:
    data = wav_bytes(audio, options.sample_rate)
    ordered = sorted(placed, key=lambda p: p.start)
    clip = Clip(
        name=name,
        file=f"{name}.wav",
        language="en",
        sample_rate=options.sample_rate,
        duration=audio.size / options.sample_rate,
        utterances=tuple(Utterance(text=p.text, start=p.start, end=p.end) for p in ordered),
        engine=engine,
        sha256=hashlib.sha256(data).hexdigest(),
        input_hash=f"conversation-v{GENERATOR_VERSION}-seed{options.seed}",
    )
    return data, clip


def build_dialogue(index: int, options: ConversationOptions) -> tuple[bytes, Clip]:
    rng = np.random.default_rng([options.seed, index])
    plan = plan_dialogue(rng, options)
    clean, placed = render(plan, options.sample_rate)
    snr = float(rng.uniform(*options.snr_db))
    noisy = add_noise(clean, [(p.start, p.end) for p in placed], snr, options.sample_rate, rng)
    engine = f"{tts.engine_id('piper')} + {tts.engine_id('espeak')}; snr={snr:.1f}dB"
    return _clip(f"dialogue{index}", noisy, placed, options, engine)


def build_monologue(options: ConversationOptions, sentences: tuple[str, ...] = MONOLOGUE,
                    name: str = "monologue") -> tuple[bytes, Clip]:
    rng = np.random.default_rng([options.seed, 999])
    lo, hi = options.inner_gap_seconds
    plan = [("piper", text, 0.5 if i == 0 else float(rng.uniform(lo, min(hi, 0.3))))
            for i, text in enumerate(sentences)]
    clean, placed = render(plan, options.sample_rate)
    snr = float(rng.uniform(*options.snr_db))
    noisy = add_noise(clean, [(p.start, p.end) for p in placed], snr, options.sample_rate, rng)
    return _clip(name, noisy, placed, options, f"{tts.engine_id('piper')}; snr={snr:.1f}dB")


def build(options: ConversationOptions) -> Manifest:
    """Write the clips that are missing (same seed = same clip) and return the manifest."""
    options.out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(options.out)
    wanted = [f"dialogue{i}" for i in range(options.dialogues)] + (["monologue"] if options.monologue else [])
    tag = f"conversation-v{GENERATOR_VERSION}-seed{options.seed}"
    for name in wanted:
        known = manifest.clips.get(name)
        path = options.out / f"{name}.wav"
        if known is not None and known.input_hash == tag and path.exists() \
                and hashlib.sha256(path.read_bytes()).hexdigest() == known.sha256:
            continue
        log.info("synthesising %s", name)
        data, clip = build_monologue(options) if name == "monologue" else build_dialogue(int(name[8:]), options)
        path.write_bytes(data)
        manifest.clips[name] = clip
    (options.out / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dialogues", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=75.0, help="length of each dialogue")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifest = build(ConversationOptions(out=args.out, dialogues=args.dialogues,
                                             dialogue_seconds=args.seconds, seed=args.seed))
    except tts.TTSUnavailable as exc:
        log.error("%s", exc)
        return 2
    for name, clip in sorted(manifest.clips.items()):
        log.info("%s: %.1f s, %d sentences (%s)", name, clip.duration, len(clip.utterances), clip.engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
