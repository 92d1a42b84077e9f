// The picture of a sound: waveform and mel spectrogram (wavesurfer.js with its spectrogram and regions plugins,
// vendored), drawn from the <audio> element that plays it. Dragging across either selects a time span, which
// two number inputs mirror so the span can also be typed (keyboard use) — one span per sound.

import WaveSurfer from "../vendor/wavesurfer/wavesurfer.esm.js";
import RegionsPlugin from "../vendor/wavesurfer/plugins/regions.esm.js";
import SpectrogramPlugin from "../vendor/wavesurfer/plugins/spectrogram.esm.js";

const SPAN_COLOUR = "rgba(255, 196, 0, 0.28)";

export class Picture {
  // container: where to draw; audio: the <audio controls> that plays the sound; url: its audio;
  // sampleRate: Hz (the spectrogram's top is its Nyquist frequency); startInput / endInput: the span's seconds.
  constructor({ container, audio, url, sampleRate, startInput, endInput, onSpan }) {
    this.startInput = startInput;
    this.endInput = endInput;
    this.onSpan = onSpan || (() => {});
    this.region = null;
    this.regions = RegionsPlugin.create();
    const rate = sampleRate || 16000;
    this.wavesurfer = WaveSurfer.create({
      container,
      media: audio,
      mediaControls: true,
      url,
      sampleRate: rate,
      height: 56,
      waveColor: "#7a8aa6",
      progressColor: "#2f5fb3",
      cursorColor: "#c0392b",
      normalize: true,
      dragToSeek: false,
      plugins: [
        this.regions,
        SpectrogramPlugin.create({
          height: 96,
          scale: "mel",
          fftSamples: 512,
          frequencyMax: rate / 2,
          labels: false,
          colorMap: "roseus",
        }),
      ],
    });
    this.regions.enableDragSelection({ color: SPAN_COLOUR });
    this.regions.on("region-created", (region) => this.take(region));
    this.regions.on("region-updated", (region) => this.take(region));
    for (const input of [startInput, endInput]) input.addEventListener("change", () => this.typed());
  }

  take(region) {
    for (const other of this.regions.getRegions()) if (other !== region) other.remove();
    this.region = region;
    this.startInput.value = region.start.toFixed(2);
    this.endInput.value = region.end.toFixed(2);
    this.onSpan(this.span());
  }

  typed() {
    const start = Number(this.startInput.value);
    const end = Number(this.endInput.value);
    if (this.startInput.value === "" || this.endInput.value === "" || !(end > start)) return;
    if (this.region) this.region.setOptions({ start, end });
    else if (this.wavesurfer.getDuration()) {
      this.region = this.regions.addRegion({ start, end, color: SPAN_COLOUR });
    }
    this.onSpan(this.span());
  }

  // [start, end] seconds, or null when nothing is selected (from the inputs, which the drag fills).
  span() {
    if (this.startInput.value === "" || this.endInput.value === "") return null;
    return [Number(this.startInput.value), Number(this.endInput.value)];
  }

  destroy() {
    this.wavesurfer.destroy();
  }
}
