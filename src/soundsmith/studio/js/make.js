// The Make panel: labelled controls → a request (request.py's JSON) → POST /v1/jobs. Generate or Ctrl+Enter;
// the dice draws a seed; an API error is shown under the control it names, in the API's words.

import { listModels, submit } from "./api.js";
import { $, clearErrors, fieldOf, numberOf, randomSeed, showError } from "./ui.js";

export const LOUDNESS = -16; // LUFS, as the command line writes new sounds (the API itself keeps the raw level)
const FIELDS = ["prompt", "negative_prompt", "model", "quality", "duration", "candidates", "steps", "guidance", "seed"];

export class MakePanel {
  constructor(form, { onSubmitted }) {
    this.form = form;
    this.onSubmitted = onSubmitted;
    this.models = [];
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.generate();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.generate();
      }
    });
    $("#dice", form).addEventListener("click", () => {
      $("#seed", form).value = String(randomSeed());
      showError($("#err-seed"), "");
    });
    $("#model", form).addEventListener("change", () => this.describeModel());
  }

  async loadModels() {
    const select = $("#model", this.form);
    try {
      const data = await listModels();
      this.models = Array.isArray(data) ? data : data.models || [];
    } catch (err) {
      showError($("#err-model"), err.detail || String(err));
      return;
    }
    select.replaceChildren(...this.models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      const family = m.family ? ` — ${m.family}` : "";
      const rate = m.sample_rate ? `, ${(m.sample_rate / 1000).toFixed(m.sample_rate % 1000 ? 2 : 0)} kHz` : "";
      option.textContent = `${m.name}${family}${rate}`;
      return option;
    }));
    this.describeModel();
  }

  describeModel() {
    const model = this.models.find((m) => m.name === $("#model", this.form).value);
    const duration = $("#duration", this.form);
    duration.placeholder = model && model.default_seconds
      ? `default ${Number(model.default_seconds).toFixed(2).replace(/\.?0+$/, "")}` : "default";
    const steps = $("#steps", this.form);
    steps.placeholder = model && model.default_steps ? `default ${model.default_steps}` : "default";
  }

  // The request the controls describe. Empty controls are left out (the model's defaults apply); the seed is drawn
  // here when empty, so every job can be made again with "Again with this seed".
  request() {
    const f = (id) => $(`#${id}`, this.form);
    const request = { task: "generate", prompt: f("prompt").value, loudness: LOUDNESS };
    const negative = f("negative_prompt").value.trim();
    if (negative) request.negative_prompt = negative;
    if (f("model").value) request.model = f("model").value;
    if (f("quality").value) request.quality = f("quality").value;
    for (const name of ["duration", "candidates", "steps", "guidance", "seed"]) {
      const value = numberOf(f(name));
      if (value !== undefined) request[name] = value;
    }
    if (request.seed === undefined) request.seed = randomSeed();
    return request;
  }

  // Fill the controls from a request (a result's "Use settings").
  fill(request) {
    const f = (id) => $(`#${id}`, this.form);
    f("prompt").value = Array.isArray(request.prompt) ? request.prompt[0] : request.prompt || "";
    f("negative_prompt").value = request.negative_prompt || "";
    if (request.model && [...f("model").options].some((o) => o.value === request.model)) f("model").value = request.model;
    f("quality").value = request.quality || "";
    for (const name of ["duration", "candidates", "steps", "guidance", "seed"]) {
      f(name).value = request[name] ?? (name === "candidates" ? "1" : "");
    }
    f("prompt").focus();
  }

  async generate() {
    clearErrors(this.form);
    const button = $("#generate", this.form);
    button.disabled = true;
    try {
      const job = await submit(this.request());
      this.onSubmitted(job);
    } catch (err) {
      const field = fieldOf(err.detail, FIELDS);
      showError($(`#err-${field || "generate"}`), err.detail || String(err));
      if (field) $(`#${field}`, this.form).focus();
    } finally {
      button.disabled = false;
    }
  }
}
