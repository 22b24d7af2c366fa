// Audio worklets of the talk page. The AudioContext runs at the call's sampling rate, so the
// microphone arrives already resampled and the receptionist's audio plays as sent.

const FRAME_MS = 20;

// The microphone as 16-bit PCM, posted to the page in 20 ms frames.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round((sampleRate * FRAME_MS) / 1000);
    this.frame = new Int16Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.size) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // detaches this.frame
        this.frame = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}

// A small jitter buffer: playback starts once 80 ms is queued (40 ms after running dry),
// like the platform's, and "kill" (killAudio) drops everything queued at once.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunks = [];
    this.offset = 0;
    this.queued = 0;
    this.playing = false;
    this.started = false;
    this.port.onmessage = (event) => {
      if (event.data === "kill") {
        this.chunks = [];
        this.offset = 0;
        this.queued = 0;
        this.playing = false;
        return;
      }
      const chunk = new Int16Array(event.data);
      this.chunks.push(chunk);
      this.queued += chunk.length;
    };
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const threshold = (sampleRate * (this.started ? 40 : 80)) / 1000;
    if (!this.playing && this.queued >= threshold) this.playing = this.started = true;
    for (let i = 0; i < out.length; i++) {
      if (!this.playing || this.chunks.length === 0) {
        out[i] = 0;
        continue;
      }
      const chunk = this.chunks[0];
      out[i] = chunk[this.offset++] / 0x8000;
      this.queued--;
      if (this.offset >= chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    if (this.queued === 0) this.playing = false;
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
registerProcessor("playback", PlaybackProcessor);
