// The page: wires the controls, the microphone, the gateway session and the transcript view.
//
// Instrumentation for tests and the closing figures: <body> carries data-onset-ms (the
// performance.now() at which the first non-silent audio chunk was sent), data-first-partial-ms
// (when the first `realtime` message arrived) and data-onset-to-partial-ms (the difference),
// plus data-chunks-sent, data-session-id and data-device-rate (the rate resampled from).

import { CaptureError, TARGET_RATE, startCapture } from "./capture.js";
import { GatewayClient, gatewayUrl } from "./connection.js";
import { LanguagePin } from "./language-pin.js";
import { SOURCE_CHOICES, TARGET_CHOICES, languageName } from "./languages.js";
import { Transcript } from "./transcript.js";

const SPEECH_RMS = 0.01; // -40 dBFS: above the noise floor of a quiet room
const STORE_KEY = "speech-pipeline.languages";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("controls"),
  start: $("start"),
  source: $("source"),
  target: $("target"),
  token: $("token"),
  status: $("status"),
  vad: $("vad"),
  transcript: $("transcript"),
  partial: $("partial"),
  empty: $("empty"),
  errors: $("errors"),
  clear: $("clear"),
  exports: document.querySelectorAll("[data-format]"),
};

const transcript = new Transcript();
const pin = new LanguagePin(
  { box: $("detected"), label: $("detected-language"), button: $("pin"), source: ui.source },
  pinLanguage,
);
let client = null;
let capture = null;
let busy = false; // start or stop in progress
let wantsToken = false; // the gateway asked for a (new) token
let turnElement = null;
const finalElements = new Map(); // segment id -> { span, tspan, line }: its final and translation
const timing = { onset: null, firstPartial: null, chunks: 0 };

function fillSelect(select, choices, value) {
  for (const [code, label] of choices) {
    const option = document.createElement("option");
    option.value = code ?? "";
    option.textContent = label;
    select.append(option);
  }
  select.value = value ?? "";
  if (select.selectedIndex < 0) select.selectedIndex = 0; // a remembered choice no longer offered
}

function savedLanguages() {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY)) || {};
  } catch {
    return {};
  }
}

function selectedConfig() {
  return { source_language: ui.source.value || "auto", target_language: ui.target.value || null };
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function showError(text) {
  ui.errors.textContent = text;
}

function addError(text) {
  // After the gateway's own error message, the close that follows it adds to it.
  ui.errors.textContent = ui.errors.textContent ? `${ui.errors.textContent} ${text}` : text;
}

function setRunning(running) {
  ui.start.textContent = running ? "Stop" : "Start";
  ui.start.setAttribute("aria-pressed", String(running));
  ui.start.classList.toggle("recording", running);
  ui.token.disabled = running;
}

function setVad(speaking) {
  ui.vad.dataset.state = speaking ? "speech" : "silence";
  ui.vad.setAttribute("aria-label", speaking ? "Speech detected" : "No speech");
  ui.vad.querySelector(".vad-label").textContent = speaking ? "speech" : "silence";
}

function updateExports() {
  const empty = transcript.finals.length === 0;
  ui.exports.forEach((button) => (button.disabled = empty));
  ui.empty.hidden = !transcript.isEmpty;
}

// -- rendering ---------------------------------------------------------------------------

function renderFinal(entry) {
  if (!turnElement || turnElement.dataset.turn !== String(entry.turn)) {
    turnElement = document.createElement("div");
    turnElement.className = "turn";
    turnElement.dataset.turn = String(entry.turn);
    const text = document.createElement("p");
    text.className = "turn-text";
    const translation = document.createElement("p");
    translation.className = "turn-translation";
    translation.hidden = true;
    turnElement.append(text, translation);
    ui.transcript.append(turnElement);
  }
  const [textLine, translationLine] = turnElement.children;
  const span = document.createElement("span");
  span.className = "final";
  span.dataset.segmentId = entry.segmentId;
  if (entry.language) {
    span.dataset.language = entry.language; // shown by CSS, so it is not part of the text
    span.lang = entry.language;
    span.title = `Detected language: ${languageName(entry.language)}`;
  }
  span.textContent = (textLine.childElementCount ? " " : "") + entry.text;
  textLine.append(span);
  const tspan = document.createElement("span");
  tspan.className = "translation";
  tspan.dataset.segmentId = entry.segmentId;
  translationLine.append(tspan);
  finalElements.set(entry.segmentId, { span, tspan, line: translationLine });
  if (entry.translation) renderTranslation(entry);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function renderTranslation(entry) {
  const el = finalElements.get(entry.segmentId);
  if (!el || !entry.translation) return;
  const text = entry.translation.text;
  el.tspan.textContent = (el.tspan.previousElementSibling ? " " : "") + text;
  if (entry.translation.language) el.tspan.lang = entry.translation.language;
  el.line.hidden = !el.line.textContent.trim();
}

function renderAll() {
  finalElements.clear();
  turnElement = null;
  ui.transcript.replaceChildren();
  for (const entry of transcript.finals) if (entry.text) renderFinal(entry);
}

function renderPartial() {
  ui.partial.textContent = transcript.partial ? transcript.partial.text : "";
  ui.empty.hidden = !transcript.isEmpty;
}

// -- messages from the gateway -----------------------------------------------------------

const ERROR_HELP = {
  auth_required: "This gateway needs a token: paste it in the Token field and press Start.",
  token_missing: "This gateway needs a token: paste it in the Token field and press Start.",
  auth_failed: "The token was refused.",
  token_expired: "The token expired.",
};

function onMessage(msg) {
  switch (msg.type) {
    case "ready":
      document.body.dataset.sessionId = msg.session_id;
      break;
    case "vad":
      setVad(msg.event === "speech_start");
      break;
    case "realtime":
      if (timing.firstPartial === null && timing.onset !== null) {
        timing.firstPartial = performance.now();
        document.body.dataset.firstPartialMs = timing.firstPartial.toFixed(1);
        document.body.dataset.onsetToPartialMs = (timing.firstPartial - timing.onset).toFixed(1);
      }
      if (transcript.setPartial(msg)) renderPartial();
      break;
    case "final": {
      const entry = transcript.addFinal(msg);
      if (entry && entry.text) renderFinal(entry);
      if (entry) pin.observe(msg);
      renderPartial();
      updateExports();
      break;
    }
    case "turn_end":
      if (transcript.endTurn()) renderAll();
      break;
    case "translation": {
      const entry = transcript.addTranslation(msg);
      if (entry) renderTranslation(entry);
      break;
    }
    case "error":
      showError(ERROR_HELP[msg.code] ? `${ERROR_HELP[msg.code]} (${msg.code})` : `${msg.message} (${msg.code})`);
      if (msg.code in ERROR_HELP) wantsToken = true; // focused once the field is enabled again
      break;
    case "done":
      setStatus("stopped", "Finished");
      break;
    default:
      break; // pong and newer message types
  }
}

function onState(owner, state, detail) {
  if (client && owner !== client) return; // an older session still draining: the new one owns the status
  const labels = {
    connecting: "Connecting…",
    connected: "Connected · listening",
    reconnecting: "Reconnecting…",
    stopping: "Finishing…",
    stopped: "Not connected",
  };
  setStatus(state, detail ? `${labels[state]} (${detail})` : labels[state]);
  if (state === "stopped" && owner === client) finishCapture();
}

// -- start and stop ----------------------------------------------------------------------

function onChunk(pcm, rms) {
  if (!client) return;
  if (client.sendAudio(pcm)) timing.chunks += 1;
  if (timing.onset === null && rms >= SPEECH_RMS) {
    timing.onset = performance.now();
    document.body.dataset.onsetMs = timing.onset.toFixed(1);
  }
  if (timing.chunks % 25 === 0) document.body.dataset.chunksSent = String(timing.chunks);
}

async function start() {
  showError("");
  timing.onset = null;
  timing.firstPartial = null;
  timing.chunks = 0;
  for (const key of ["onsetMs", "firstPartialMs", "onsetToPartialMs"]) delete document.body.dataset[key];
  pin.reset();
  const session = new GatewayClient(
    gatewayUrl(window.location),
    { token: ui.token.value.trim(), config: selectedConfig(), sampleRate: TARGET_RATE },
    { onState: (state, detail) => onState(session, state, detail), onMessage, onError: addError },
  );
  client = session;
  try {
    capture = await startCapture(onChunk);
  } catch (err) {
    client = null;
    showError(err instanceof CaptureError ? err.message : String(err));
    return;
  }
  document.body.dataset.deviceRate = String(capture.deviceRate);
  setRunning(true);
  client.start();
}

async function finishCapture() {
  const stopping = capture;
  capture = null;
  client = null;
  setRunning(false);
  setVad(false);
  if (wantsToken) {
    wantsToken = false;
    ui.token.focus();
  }
  if (stopping) await stopping.stop();
}

async function toggle(event) {
  event.preventDefault();
  if (busy) return;
  busy = true;
  try {
    if (capture) {
      // Stop capturing (the worklet's last samples still go out), then end the session: it
      // drains (finals still on their way) on its own.
      const session = client;
      const stopping = capture;
      capture = null;
      setRunning(false);
      setVad(false);
      await stopping.stop();
      client = null;
      if (session) session.stop();
    } else {
      await start();
    }
  } finally {
    busy = false;
  }
}

// -- export ------------------------------------------------------------------------------

const FORMATS = {
  txt: { type: "text/plain", build: () => transcript.toTxt() },
  srt: { type: "application/x-subrip", build: () => transcript.toSrt() },
  vtt: { type: "text/vtt", build: () => transcript.toVtt() },
};

function download(format) {
  const { type, build } = FORMATS[format];
  const blob = new Blob([build()], { type: `${type};charset=utf-8` });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  link.href = url;
  link.download = `transcript-${stamp}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function clearTranscript() {
  transcript.clear();
  renderAll();
  renderPartial();
  updateExports();
}

// -- wiring ------------------------------------------------------------------------------

function languageChanged() {
  const config = selectedConfig();
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(config));
  } catch {
    // private mode: the choice is just not remembered
  }
  if (client) client.updateConfig(config); // live, like the desktop client: from the next utterance
  pin.render();
}

function pinLanguage(code) {
  // One click: the detected language becomes the spoken language, sent and remembered like a
  // choice in the select. The button goes with auto-detect; the focus goes to the select.
  ui.source.value = code;
  languageChanged();
  ui.source.focus();
}

const saved = savedLanguages();
fillSelect(ui.source, SOURCE_CHOICES, saved.source_language || "auto");
fillSelect(ui.target, TARGET_CHOICES, saved.target_language || null);
ui.form.addEventListener("submit", toggle);
ui.source.addEventListener("change", languageChanged);
ui.target.addEventListener("change", languageChanged);
ui.clear.addEventListener("click", clearTranscript);
ui.exports.forEach((button) => button.addEventListener("click", () => download(button.dataset.format)));
updateExports();
document.body.dataset.ready = "true";
