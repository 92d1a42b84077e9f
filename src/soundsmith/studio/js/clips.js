// Clips brought in by the user: an uploaded file (sent as it is to POST /v1/uploads) or a recording from the
// microphone (decoded and sent as 16-bit mono WAV, a format the service reads). Each becomes a card with the same
// picture and edit tools as a result; the edits' results join the history.

import { upload } from "./api.js";
import { SoundCard } from "./sound.js";
import { $, showError } from "./ui.js";

// AudioBuffer → 16-bit PCM mono WAV (channels averaged). Bytes: 44-byte RIFF header, then samples little-endian.
export function wavBlob(buffer) {
  const n = buffer.length;
  const mono = new Float32Array(n);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += data[i] / buffer.numberOfChannels;
  }
  const bytes = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (at, s) => { for (let i = 0; i < s.length; i++) bytes.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); bytes.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); bytes.setUint32(16, 16, true); bytes.setUint16(20, 1, true); bytes.setUint16(22, 1, true);
  bytes.setUint32(24, buffer.sampleRate, true); bytes.setUint32(28, buffer.sampleRate * 2, true);
  bytes.setUint16(32, 2, true); bytes.setUint16(34, 16, true);
  text(36, "data"); bytes.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) bytes.setInt16(44 + 2 * i, Math.round(Math.max(-1, Math.min(1, mono[i])) * 32767), true);
  return new Blob([bytes], { type: "audio/wav" });
}

async function decode(blob) {
  const context = new (window.AudioContext || window.webkitAudioContext)();
  try {
    return await context.decodeAudioData(await blob.arrayBuffer());
  } finally {
    context.close();
  }
}

export class ClipsPanel {
  constructor(context) {
    this.context = context;
    this.list = $("#clip-list");
    this.error = $("#err-upload");
    this.count = 0;
    $("#upload").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) this.add(file, file.name);
      event.target.value = "";
    });
    this.recordButton = $("#record");
    this.recordButton.addEventListener("click", () => this.toggleRecording());
    if (!navigator.mediaDevices || !window.MediaRecorder) this.recordButton.hidden = true;
  }

  async add(blob, name) {
    showError(this.error, "");
    let buffer = null;
    try {
      buffer = await decode(blob);
    } catch (err) {
      // the browser cannot decode it: the server may still read it, and answers if it cannot
    }
    let input;
    try {
      input = await upload(blob, /\.[A-Za-z0-9]+$/.test(name) ? name : `${name}.wav`);
    } catch (err) {
      showError(this.error, err.detail || String(err));
      return null;
    }
    this.count += 1;
    const clip = { id: `clip-${this.count}`, clip: true, name, input, url: URL.createObjectURL(blob),
                   seconds: buffer ? buffer.duration : null, sample_rate: buffer ? buffer.sampleRate : null,
                   created: new Date().toISOString() };
    const card = new SoundCard(clip, this.context);
    this.list.prepend(card.element);
    return card;
  }

  async toggleRecording() {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    showError(this.error, "");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError(this.error, `recording: ${err.message || err.name}`);
      return;
    }
    const chunks = [];
    this.recorder = new MediaRecorder(stream);
    this.recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
    this.recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      this.recorder = null;
      this.recordButton.textContent = "Record";
      this.recordButton.setAttribute("aria-pressed", "false");
      const recorded = new Blob(chunks, { type: chunks[0] ? chunks[0].type : "audio/webm" });
      try {
        const wav = wavBlob(await decode(recorded));
        await this.add(wav, `recording ${new Date().toLocaleTimeString()}`);
      } catch (err) {
        showError(this.error, `recording: ${err.message || err}`);
      }
    });
    this.recorder.start();
    this.recordButton.textContent = "Stop recording";
    this.recordButton.setAttribute("aria-pressed", "true");
  }
}
