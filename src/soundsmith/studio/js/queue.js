// The queue panel: every job not yet finished, with live progress from GET /v1/jobs/{id}/events (server-sent
// events; polling GET /v1/jobs/{id} where the stream breaks) and a Cancel button (DELETE /v1/jobs/{id}).

import { cancelJob, followEvents, getJob } from "./api.js";
import { showError } from "./ui.js";

export const FINISHED = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1000;

export function describe(request = {}) {
  const prompt = Array.isArray(request.prompt) ? request.prompt.join(" | ") : request.prompt;
  const task = request.task && request.task !== "generate" ? `${request.task}: ` : "";
  return `${task}${prompt || "(no prompt)"}`;
}

export class QueuePanel {
  constructor(list, empty, { onFinished }) {
    this.list = list;
    this.empty = empty;
    this.onFinished = onFinished;
    this.rows = new Map();
  }

  track(job) {
    if (this.rows.has(job.id) || FINISHED.includes(job.status)) return;
    const row = document.createElement("li");
    row.className = "queued";
    row.dataset.job = job.id;
    const title = document.createElement("span");
    title.className = "what";
    title.textContent = describe(job.request);
    const state = document.createElement("span");
    state.className = "status";
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.setAttribute("aria-label", `Progress of ${title.textContent}`);
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel ${title.textContent}`);
    const error = document.createElement("p");
    error.className = "error";
    error.setAttribute("role", "alert");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        this.update(await cancelJob(job.id));
      } catch (err) {
        showError(error, err.detail || String(err));
        cancel.disabled = false;
      }
    });
    row.append(title, state, bar, cancel, error);
    this.list.prepend(row);
    this.rows.set(job.id, { row, state, bar, cancel, controller: new AbortController() });
    this.empty.hidden = true;
    this.update(job);
    this.follow(job.id);
  }

  update(job) {
    const entry = this.rows.get(job.id);
    if (!entry) return;
    if (job.status) {
      entry.state.textContent = job.status;
      entry.row.dataset.status = job.status;
    }
    if (typeof job.progress === "number") {
      entry.bar.value = job.progress;
      entry.state.textContent = `${job.status || entry.row.dataset.status || ""} ${Math.round(job.progress * 100)} %`;
    }
    if (job.status === "queued" && typeof job.position === "number") {
      entry.state.textContent = job.position ? `queued, ${job.position} ahead` : "queued, next";
    }
    if (job.status && FINISHED.includes(job.status)) this.finish(job.id);
  }

  async follow(id) {
    const entry = this.rows.get(id);
    try {
      await followEvents(id, (event) => this.update({ id, ...event }), entry.controller.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    while (this.rows.has(id)) {  // the stream ended or broke before the job finished: ask until it has
      try {
        this.update(await getJob(id));
      } catch (err) {
        if (err.status === 404) this.finish(id);
      }
      if (this.rows.has(id)) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async finish(id) {
    const entry = this.rows.get(id);
    if (!entry) return;
    this.rows.delete(id);
    entry.controller.abort();
    entry.row.remove();
    this.empty.hidden = this.rows.size > 0;
    try {
      this.onFinished(await getJob(id));
    } catch (err) {
      // gone from the server: nothing to show
    }
  }
}
