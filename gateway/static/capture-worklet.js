// AudioWorklet processor: microphone audio at the device rate -> 16 kHz mono PCM16 chunks.
//
// Runs on the audio rendering thread. Channels are averaged to mono, then a windowed-sinc
// resampler (Blackman window, 8 zero crossings each side, cut-off at 90 % of the lower
// Nyquist frequency, 64 precomputed phases) converts to the target rate, so 44.1 or 48 kHz
// input does not alias into the speech band. Every `chunkSamples` output samples are posted to
// the main thread as an ArrayBuffer of little-endian int16 (transferred, not copied), with the
// chunk's RMS level so the page can show a level and time the first non-silent chunk.

const PHASES = 64;
const ZERO_CROSSINGS = 8;

function buildKernel(inRate, outRate) {
  const cutoff = (0.45 * Math.min(inRate, outRate)) / inRate; // cycles per input sample
  const half = Math.ceil(ZERO_CROSSINGS / (2 * cutoff));
  const taps = 2 * half;
  const table = new Float32Array(PHASES * taps);
  for (let p = 0; p < PHASES; p++) {
    const frac = p / PHASES;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const t = j - (half - 1) - frac; // distance from the output instant, in input samples
      const x = 2 * cutoff * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = t / half; // -1..1 across the window
      const blackman = Math.abs(w) >= 1 ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
      const h = sinc * blackman;
      table[p * taps + j] = h;
      sum += h;
    }
    for (let j = 0; j < taps; j++) table[p * taps + j] /= sum; // unity gain at DC
  }
  return { half, taps, table };
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.chunkSamples = opts.chunkSamples || 640;
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.passThrough = sampleRate === this.outRate;
    this.kernel = this.passThrough ? null : buildKernel(sampleRate, this.outRate);
    const half = this.kernel ? this.kernel.half : 0;
    this.buf = new Float32Array(2 * half + 4096);
    this.len = half; // history starts as silence
    this.pos = half; // position of the next output sample, in input samples
    this.out = new Int16Array(this.chunkSamples);
    this.outLen = 0;
    this.sumSquares = 0;
    // On stop: the samples still buffered go out as a last (short) chunk, marked `last`.
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush(true);
    };
  }

  emit(sample) {
    const clipped = sample > 1 ? 1 : sample < -1 ? -1 : sample;
    this.out[this.outLen++] = Math.round(clipped * 32767);
    this.sumSquares += clipped * clipped;
    if (this.outLen === this.chunkSamples) this.flush();
  }

  flush(last = false) {
    if (this.outLen === 0 && !last) return;
    const pcm = this.outLen === this.out.length ? this.out : this.out.slice(0, this.outLen);
    const rms = this.outLen ? Math.sqrt(this.sumSquares / this.outLen) : 0;
    this.port.postMessage({ pcm: pcm.buffer, rms, last }, [pcm.buffer]);
    this.out = new Int16Array(this.chunkSamples);
    this.outLen = 0;
    this.sumSquares = 0;
  }

  append(mono) {
    if (this.len + mono.length > this.buf.length) {
      const bigger = new Float32Array(2 * (this.len + mono.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(mono, this.len);
    this.len += mono.length;
  }

  resample() {
    const { half, taps, table } = this.kernel;
    const buf = this.buf;
    while (Math.floor(this.pos) + half < this.len) {
      let i = Math.floor(this.pos);
      let phase = Math.round((this.pos - i) * PHASES);
      if (phase === PHASES) {
        phase = 0;
        i += 1;
      }
      const base = i - (half - 1);
      const row = phase * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += buf[base + j] * table[row + j];
      this.emit(acc);
      this.pos += this.step;
    }
    // Keep only the history the next outputs still need.
    const drop = Math.floor(this.pos) - half;
    if (drop > 0) {
      buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.pos -= drop;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    const mono = new Float32Array(frames);
    for (const channel of channels) {
      for (let i = 0; i < frames; i++) mono[i] += channel[i] / channels.length;
    }
    if (this.passThrough) {
      for (let i = 0; i < frames; i++) this.emit(mono[i]);
    } else {
      this.append(mono);
      this.resample();
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
