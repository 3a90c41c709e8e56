// Microphone capture: getUserMedia -> AudioWorklet (capture-worklet.js) -> 16 kHz PCM16 chunks.
//
// The browser's own speech processing (echo cancellation, noise suppression, automatic gain)
// is turned off: the gateway has its own voice activity detection and Whisper does best on the
// raw signal. Chunks are 40 ms (640 samples): short enough for live partials, few enough
// messages for the gateway's per-second limit.

export const TARGET_RATE = 16000;
export const CHUNK_SAMPLES = 640;

export class CaptureError extends Error {}

/** Start capturing; `onChunk(ArrayBuffer pcm16, rms)` is called for every chunk. */
export async function startCapture(onChunk) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new CaptureError("This browser cannot capture audio here (the page needs https or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
  } catch (err) {
    const reason = err && err.name === "NotAllowedError" ? "microphone permission was refused" : String(err && err.message || err);
    throw new CaptureError(`No microphone: ${reason}.`);
  }
  const context = new AudioContext({ latencyHint: "interactive" });
  try {
    await context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm16-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: TARGET_RATE, chunkSamples: CHUNK_SAMPLES },
    });
    let lastChunk = null; // resolves when the worklet has sent what it still held
    node.port.onmessage = (event) => {
      if (event.data.pcm.byteLength) onChunk(event.data.pcm, event.data.rms);
      if (event.data.last && lastChunk) lastChunk();
    };
    // A muted path to the destination keeps the node pulled by the render graph in every browser.
    const mute = new GainNode(context, { gain: 0 });
    source.connect(node).connect(mute).connect(context.destination);
    if (context.state === "suspended") await context.resume();
    return {
      deviceRate: context.sampleRate,
      label: (stream.getAudioTracks()[0] || {}).label || "microphone",
      async stop() {
        stream.getTracks().forEach((track) => track.stop());
        await new Promise((resolve) => {
          lastChunk = resolve;
          setTimeout(resolve, 250); // a suspended context never answers
          node.port.postMessage("flush");
        });
        source.disconnect();
        node.disconnect();
        await context.close();
      },
    };
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    await context.close();
    throw new CaptureError(`Audio processing could not start: ${err && err.message || err}`);
  }
}
