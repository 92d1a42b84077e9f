// A sound card: one job of the history (or one uploaded / recorded clip) with a take per output. Each take is an
// <audio controls> with its picture (waveform + mel spectrogram), its settings and CLAP score, downloads, and the
// edit tools: Regenerate selection (inpaint), Extend, Transfer (strength), Upscale — each submits a new job whose
// input is the take's audio (uploaded once with POST /v1/uploads).

import { playableUrl, starJob, submit, upload } from "./api.js";
import { Picture } from "./picture.js";
import { LOUDNESS } from "./make.js";
import { describe } from "./queue.js";
import { $, clearErrors, fieldOf, numberOf, randomSeed, showError, when } from "./ui.js";

// What an edit keeps from the job it edits (fields every audio task reads; request.py's GENERATION).
const CARRIED = ["model", "negative_prompt", "steps", "guidance", "sampler", "quality"];
const EDIT_FIELDS = { masks: "regen", seconds: "extend", strength: "transfer", cutoff: "upscale", prompt: "edit-prompt" };

const observer = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        observer.unobserve(entry.target);
        entry.target.dispatchEvent(new Event("visible"));
      }
    }
  }, { rootMargin: "200px" })
  : null;

function whenVisible(element, action) {
  if (!observer) return action();
  element.addEventListener("visible", action, { once: true });
  observer.observe(element);
}

function settingsOf(request = {}) {
  const parts = [];
  if (request.model) parts.push(request.model);
  if (request.seed !== undefined && request.seed !== null) parts.push(`seed ${request.seed}`);
  if (request.duration) parts.push(`${Number(request.duration).toFixed(2).replace(/\.?0+$/, "")} s`);
  if (request.quality) parts.push(request.quality);
  if (request.steps) parts.push(`${request.steps} steps`);
  if (request.guidance !== undefined && request.guidance !== null) parts.push(`guidance ${request.guidance}`);
  if (request.sampler && request.sampler !== "default") parts.push(request.sampler);
  if (request.candidates > 1) parts.push(`${request.candidates} candidates`);
  if (request.negative_prompt) parts.push(`not “${request.negative_prompt}”`);
  if (request.masks) parts.push(`span ${request.masks.map((m) => `${m[0]}–${m[1]} s`).join(", ")}`);
  if (request.seconds) parts.push(`+${request.seconds} s`);
  if (request.strength !== undefined && request.strength !== null) parts.push(`strength ${request.strength}`);
  if (request.cutoff) parts.push(`above ${request.cutoff} Hz`);
  return parts.join(" · ");
}

export class SoundCard {
  // job: the API's job object, or a clip {id, clip: true, name, input, url, seconds, sample_rate}.
  // context: {make (MakePanel), onSubmitted(job)}.
  constructor(job, context) {
    this.context = context;
    this.element = $("#sound-template").content.firstElementChild.cloneNode(true);
    this.element.dataset.job = job.id;
    this.takes = [];
    this.render(job);
  }

  render(job) {
    this.job = job;
    const el = this.element;
    const request = job.request || {};
    el.dataset.status = job.status || "clip";
    $(".title", el).textContent = job.clip ? `clip: ${job.name}` : describe(request);
    $(".settings", el).textContent = job.clip
      ? `${job.seconds ? job.seconds.toFixed(2) + " s" : ""} uploaded · ${when(job.created)}`
      : [settingsOf({ ...request, ...(job.ran || {}) }), job.status === "succeeded" ? "" : job.status, when(job.created)].filter(Boolean).join(" · ");
    const error = job.status === "failed" ? job.error || "failed"
      : job.status === "cancelled" ? "cancelled" : "";
    showError($(".job-error", el), error);
    const star = $(".star", el);
    star.hidden = Boolean(job.clip);
    this.showStar(Boolean(job.starred));
    star.onclick = () => this.toggleStar();
    for (const button of [".again", ".vary", ".reuse"]) $(button, el).hidden = Boolean(job.clip);
    $(".again", el).onclick = () => this.resubmit(request.seed);
    $(".vary", el).onclick = () => this.resubmit(randomSeed());
    $(".reuse", el).onclick = () => this.context.make.fill(request);
    const outputs = job.clip ? [{ url: job.url, seconds: job.seconds, sample_rate: job.sample_rate, input: job.input }]
      : job.outputs || [];
    const box = $(".takes", el);
    if (box.children.length !== outputs.length) {
      box.replaceChildren();
      this.takes = outputs.map((output, i) => this.take(output, i, outputs.length, box));
    }
  }

  showStar(on) {
    const star = $(".star", this.element);
    star.setAttribute("aria-pressed", on ? "true" : "false");
    star.textContent = on ? "★" : "☆";
    star.setAttribute("aria-label", on ? "Starred (press to unstar)" : "Star");
  }

  async toggleStar() {
    const on = $(".star", this.element).getAttribute("aria-pressed") !== "true";
    showError($(".err-actions", this.element), "");
    try {
      const job = await starJob(this.job.id, on);
      this.job = { ...this.job, starred: job && "starred" in job ? job.starred : on };
      this.showStar(this.job.starred);
    } catch (err) {
      showError($(".err-actions", this.element), err.detail || String(err));
    }
  }

  async resubmit(seed) {
    const slot = $(".err-actions", this.element);
    showError(slot, "");
    const request = { ...this.job.request, seed };
    delete request.version;
    try {
      this.context.onSubmitted(await submit(request));
    } catch (err) {
      showError(slot, err.detail || String(err));
    }
  }

  take(output, index, count, box) {
    const el = $("#take-template").content.firstElementChild.cloneNode(true);
    const audio = $("audio", el);
    const label = count > 1 ? `take ${index + 1} of ${count}` : "";
    audio.setAttribute("aria-label", `Play ${$(".title", this.element).textContent}${label ? `, ${label}` : ""}`);
    const info = [];
    if (label) info.push(label);
    if (output.seconds) info.push(`${Number(output.seconds).toFixed(2)} s`);
    if (output.sample_rate) info.push(`${output.sample_rate} Hz`);
    if (typeof output.score === "number") info.push(`CLAP score ${output.score.toFixed(3)}`);
    $(".take-info", el).textContent = info.join(" · ");
    const picture = $(".picture", el);
    picture.setAttribute("aria-label", "Waveform and mel spectrogram: drag across to select a span");
    const wav = $(".dl-wav", el);
    const flac = $(".dl-flac", el);
    const stem = (this.job.clip ? this.job.name : describe(this.job.request)).replace(/[^A-Za-z0-9]+/g, "_").slice(0, 50);
    wav.href = output.url;
    wav.download = `${stem || "sound"}.wav`;
    flac.href = output.url.startsWith("blob:") ? output.url : `${output.url}${output.url.includes("?") ? "&" : "?"}format=flac`;
    flac.download = `${stem || "sound"}.flac`;
    flac.hidden = this.job.clip;
    const state = { output, el, picture: null, input: output.input || null };
    playableUrl(output.url).then((url) => {
      audio.src = url;
      if (url !== output.url) wav.href = url;
      whenVisible(picture, () => {
        state.picture = new Picture({ container: picture, audio, url, sampleRate: output.sample_rate,
                                      startInput: $(".sel-start", el), endInput: $(".sel-end", el) });
      });
    }).catch((err) => showError($(".err-regen", el), err.detail || String(err)));
    this.edits(state);
    box.append(el);
    return state;
  }

  edits(state) {
    const el = state.el;
    const request = this.job.request || {};
    const prompt = $(".edit-prompt", el);
    prompt.value = Array.isArray(request.prompt) ? request.prompt[0] : request.prompt || "";
    const strength = $(".strength", el);
    strength.addEventListener("input", () => { $(".strength-value", el).textContent = Number(strength.value).toFixed(2); });
    const span = () => {
      const start = $(".sel-start", el).value;
      const end = $(".sel-end", el).value;
      return start === "" || end === "" ? null : [Number(start), Number(end)];
    };
    const edit = (button, slot, fields) => $(button, el).addEventListener("click", () => this.edit(state, slot, fields()));
    edit(".regen", "regen", () => {
      const masks = span();
      return masks ? { task: "inpaint", masks: [masks] } : { task: "inpaint", error: "select a span first: drag across the picture, or type From and To" };
    });
    edit(".extend", "extend", () => ({ task: "extend", seconds: Number($(".extend-seconds", el).value) }));
    edit(".transfer", "transfer", () => ({ task: "transfer", strength: Number(strength.value), loudness: LOUDNESS }));
    edit(".upscale", "upscale", () => {
      const cutoff = numberOf($(".cutoff", el));
      return cutoff === undefined ? { task: "upscale" } : { task: "upscale", cutoff };
    });
  }

  async edit(state, slot, fields) {
    clearErrors(state.el);
    if (fields.error) {
      showError($(`.err-${slot}`, state.el), fields.error);
      return;
    }
    const button = $(`.${slot}`, state.el);
    button.disabled = true;
    try {
      if (!state.input) {
        const blob = await (await fetch(state.output.url.startsWith("blob:") ? state.output.url : $("audio", state.el).src)).blob();
        state.input = await upload(blob, "take.wav");
      }
      const source = this.job.clip ? this.context.make.request() : this.job.request || {};
      const request = { ...Object.fromEntries(CARRIED.filter((k) => source[k] !== undefined && source[k] !== null)
        .map((k) => [k, source[k]])), ...fields, input: state.input, seed: randomSeed() };
      const prompt = $(".edit-prompt", state.el).value;
      if (prompt.trim() || fields.task !== "upscale") request.prompt = prompt;
      this.context.onSubmitted(await submit(request));
    } catch (err) {
      const field = fieldOf(err.detail, Object.keys(EDIT_FIELDS));
      showError($(`.err-${field ? EDIT_FIELDS[field] : slot}`, state.el), err.detail || String(err));
    } finally {
      button.disabled = false;
    }
  }
}
