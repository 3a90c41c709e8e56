// The transcript as data (no DOM): finals grouped into turns, translations by segment id,
// the live partial, and the TXT / SRT / WebVTT exports.
//
// Turns: a gateway with streaming commits sends several finals per turn and then a
// `turn_end` message (right after the turn's last final); those finals share a paragraph. A
// gateway that never sends `turn_end` sends one final per utterance, so each final is its own
// paragraph; the first `turn_end` ever seen regroups what came before it (all of it was the
// first turn). A `turn_end: true` field on a final is read the same way. A final seen twice
// (by segment id) is kept once; a partial of a segment already final is stale and ignored.

export class Transcript {
  constructor() {
    this.clear();
  }

  clear() {
    this.turns = []; // [{ finals: [entry] }]
    this.bySegment = new Map(); // segment_id -> entry
    this.pendingTranslations = new Map(); // translation that came before its final
    this.partial = null; // { segmentId, text }
    this.turnOpen = false;
    this.turnMarked = false; // the gateway has used `turn_end` at least once
  }

  get finals() {
    return this.turns.flatMap((turn) => turn.finals);
  }

  get isEmpty() {
    return this.turns.length === 0 && !this.partial;
  }

  /** A `realtime` message. Returns true if the partial changed. */
  setPartial(msg) {
    const segmentId = String(msg.segment_id);
    if (this.bySegment.has(segmentId)) return false;
    const text = (msg.text || "").trim();
    if (this.partial && this.partial.segmentId === segmentId && this.partial.text === text) return false;
    this.partial = text ? { segmentId, text } : null;
    return true;
  }

  /** A `final` message. Returns the new entry ({turn} is its paragraph) or null if it was there. */
  addFinal(msg) {
    const segmentId = String(msg.segment_id);
    if (this.bySegment.has(segmentId)) return null;
    const entry = {
      segmentId,
      text: (msg.text || "").trim(),
      language: msg.language || null,
      start: Number.isFinite(msg.start) ? msg.start : null,
      end: Number.isFinite(msg.end) ? msg.end : null,
      translation: msg.translation ? { text: msg.translation, language: null } : null,
    };
    const early = this.pendingTranslations.get(segmentId);
    if (early) {
      entry.translation = early;
      this.pendingTranslations.delete(segmentId);
    }
    if ("turn_end" in msg) this.turnMarked = true;
    if (!this.turnOpen) this.turns.push({ finals: [] });
    entry.turn = this.turns.length - 1;
    this.turns[entry.turn].finals.push(entry);
    this.bySegment.set(segmentId, entry);
    // Without turn marks every final is a whole utterance: the next one starts a paragraph.
    this.turnOpen = this.turnMarked && !msg.turn_end;
    if (this.partial && this.partial.segmentId === segmentId) this.partial = null;
    return entry;
  }

  /** A `turn_end` message: the next final starts a paragraph. True if the paragraphs changed. */
  endTurn() {
    this.turnOpen = false;
    if (this.turnMarked) return false;
    this.turnMarked = true;
    if (this.turns.length <= 1) return false;
    // Until now each final had its own paragraph, but they were all the first turn.
    const merged = { finals: this.finals };
    merged.finals.forEach((entry) => (entry.turn = 0));
    this.turns = [merged];
    return true;
  }

  /** A `translation` message. Returns the entry it belongs to (null if its final is not here yet). */
  addTranslation(msg) {
    const segmentId = String(msg.segment_id);
    const translation = { text: (msg.text || "").trim(), language: msg.target_language || null };
    const entry = this.bySegment.get(segmentId);
    if (!entry) {
      this.pendingTranslations.set(segmentId, translation);
      return null;
    }
    entry.translation = translation;
    return entry;
  }

  /** Plain text: one paragraph per turn; translations, when there are any, on the line below. */
  toTxt() {
    const paragraphs = this.turns.map((turn) => {
      const text = joinText(turn.finals.map((e) => e.text));
      const translated = joinText(turn.finals.map((e) => (e.translation ? e.translation.text : "")));
      return translated ? `${text}\n${translated}` : text;
    });
    return paragraphs.filter(Boolean).join("\n\n") + (paragraphs.length ? "\n" : "");
  }

  /** SubRip: one cue per final with its audio times; the translation as the cue's second line. */
  toSrt() {
    return this.cues()
      .map((cue, i) => `${i + 1}\n${timestamp(cue.start, ",")} --> ${timestamp(cue.end, ",")}\n${cue.lines.join("\n")}\n`)
      .join("\n");
  }

  /** WebVTT: like SRT, with the cue text escaped as the format requires. */
  toVtt() {
    const cues = this.cues().map(
      (cue) => `${timestamp(cue.start, ".")} --> ${timestamp(cue.end, ".")}\n${cue.lines.map(escapeVtt).join("\n")}\n`,
    );
    return ["WEBVTT\n", ...cues].join("\n");
  }

  cues() {
    const cues = [];
    let clock = 0; // for finals without times: right after the previous cue
    for (const entry of this.finals) {
      if (!entry.text) continue;
      const start = entry.start ?? clock;
      const end = Math.max(entry.end ?? start + 2, start + 0.1);
      clock = end;
      const lines = [oneLine(entry.text)];
      if (entry.translation && entry.translation.text) lines.push(oneLine(entry.translation.text));
      cues.push({ start, end, lines });
    }
    return cues;
  }
}

function joinText(parts) {
  return parts.filter(Boolean).join(" ").replace(/\s+/g, " ").trim();
}

function oneLine(text) {
  // A blank line ends a cue, and "-->" would read as a timing line.
  return text.replace(/\s+/g, " ").replace(/-->/g, "->").trim();
}

function escapeVtt(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Seconds as HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (WebVTT). */
export function timestamp(seconds, separator) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000);
  const m = Math.floor((ms % 3600000) / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  const pad = (n, width) => String(n).padStart(width, "0");
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${separator}${pad(ms % 1000, 3)}`;
}
