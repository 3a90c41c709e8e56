// The WebSocket session with the gateway (protocol v1): config, audio, results, reconnect.
//
// The socket goes back to the page's own origin (ws: or wss: like the page). With a token the
// first message is {type: "auth", token}: a browser cannot set an Authorization header on a
// WebSocket, and a token in the URL would end up in access logs. After a drop the client
// reconnects with backoff and resumes with config {session_id, last_seq} (plus the session's
// `resume_secret` when `ready` carried one); results at or below the last seq seen are replays
// and are dropped, so each result reaches the page once. Audio captured while disconnected
// waits in a bounded queue (the oldest is dropped past about 30 s).

const FATAL_CLOSE_CODES = new Set([1008, 1009]); // policy (auth) and frame too large
const MAX_QUEUED_CHUNKS = 750; // 30 s of 40 ms chunks
const MAX_RECONNECT_DELAY_MS = 8000;
const MAX_RECONNECT_ATTEMPTS = 20;
const DRAIN_TIMEOUT_MS = 60000; // how long to wait for `done` after `end`
// With auth off, `ready` carries the session's resume secret; a resume sends it back.
const RESUME_SECRET = "resume_secret";

export function gatewayUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/`;
}

export class GatewayClient {
  /**
   * handlers: onState(state, detail), onMessage(msg), onError(text).
   * states: connecting, connected, reconnecting, stopping, stopped.
   */
  constructor(url, { token, config, sampleRate }, handlers) {
    this.url = url;
    this.token = token || "";
    this.config = { sample_rate: sampleRate, partials: true, ...config };
    this.handlers = handlers;
    this.ws = null;
    this.sessionId = null;
    this.lastSeq = null;
    this.resumeSecret = null; // from `ready`, never shown or logged
    this.queue = [];
    this.dropped = 0;
    this.attempt = 0;
    this.stopping = false;
    this.finished = false;
    this.retryTimer = null;
    this.drainTimer = null;
  }

  start() {
    this.open();
  }

  /** Change languages now; remembered for reconnects. */
  updateConfig(fields) {
    Object.assign(this.config, fields);
    this.sendJson({ type: "config", ...fields });
  }

  /** One PCM16 chunk; queued while the socket is not open. */
  sendAudio(buffer) {
    if (this.stopping) return false;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(buffer);
      return true;
    }
    if (this.queue.length >= MAX_QUEUED_CHUNKS) {
      this.queue.shift();
      this.dropped += 1;
    }
    this.queue.push(buffer);
    return false;
  }

  /** No more audio: the gateway finishes what is pending, sends `done` and closes. */
  stop() {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "end" }));
      this.handlers.onState("stopping", "waiting for the last results");
      this.drainTimer = setTimeout(() => this.close(), DRAIN_TIMEOUT_MS);
    } else {
      this.close();
    }
  }

  close() {
    this.stopping = true;
    this.finished = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.drainTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "client stopped");
    this.handlers.onState("stopped", "");
  }

  sendJson(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  resumeFields() {
    if (!this.sessionId) return {};
    const fields = { session_id: this.sessionId };
    if (this.lastSeq !== null) fields.last_seq = this.lastSeq;
    if (this.resumeSecret) fields[RESUME_SECRET] = this.resumeSecret;
    return fields;
  }

  open() {
    this.handlers.onState(this.attempt ? "reconnecting" : "connecting", this.attempt ? `attempt ${this.attempt + 1}` : "");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.handlers.onError(`Cannot open the connection: ${err.message}`);
      this.close();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (this.token) ws.send(JSON.stringify({ type: "auth", token: this.token }));
      ws.send(JSON.stringify({ type: "config", ...this.config, ...this.resumeFields() }));
      this.attempt = 0;
      this.handlers.onState("connected", "");
      while (this.queue.length && ws.readyState === WebSocket.OPEN) ws.send(this.queue.shift());
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event);
  }

  receive(data) {
    if (typeof data !== "string") return; // the gateway sends text only
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.handlers.onError("The gateway sent a frame that is not JSON.");
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "ready") {
      this.sessionId = msg.session_id;
      if (typeof msg[RESUME_SECRET] === "string" && msg[RESUME_SECRET]) this.resumeSecret = msg[RESUME_SECRET];
    }
    if (Number.isInteger(msg.seq)) {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // replayed after a resume
      this.lastSeq = msg.seq;
    }
    if (msg.type === "done") {
      this.handlers.onMessage(msg);
      this.close();
      return;
    }
    this.handlers.onMessage(msg);
  }

  closed(ws, event) {
    if (ws !== this.ws) return; // an old socket
    this.ws = null;
    if (this.finished) return;
    if (FATAL_CLOSE_CODES.has(event.code)) {
      const reason = event.reason || (event.code === 1009 ? "frame too large" : "refused");
      this.handlers.onError(`The gateway closed the session (${event.code}: ${reason}).`);
      this.close();
      return;
    }
    if (this.stopping) {
      this.close(); // closed while draining: nothing more will come on this session
      return;
    }
    if (this.attempt >= MAX_RECONNECT_ATTEMPTS) {
      this.handlers.onError("Connection lost; gave up reconnecting.");
      this.close();
      return;
    }
    const delay = Math.min(MAX_RECONNECT_DELAY_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    const why = event.code === 1006 ? "connection lost" : `closed (${event.code}${event.reason ? ": " + event.reason : ""})`;
    this.handlers.onState("reconnecting", `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}
