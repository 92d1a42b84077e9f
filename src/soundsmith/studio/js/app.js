// The studio: wires the panels to each other and to the service. Served at / by `soundsmith serve`.

import { api, listModels, setToken, token } from "./api.js";
import { ClipsPanel } from "./clips.js";
import { HistoryPanel } from "./history.js";
import { MakePanel } from "./make.js";
import { FINISHED, QueuePanel } from "./queue.js";
import { $, showError } from "./ui.js";

const context = {};
const history = new HistoryPanel(context);
const queue = new QueuePanel($("#queue-list"), $("#queue-empty"), { onFinished: (job) => history.put(job) });
context.onSubmitted = (job) => {
  queue.track(job);
  history.put(job);
};
context.make = new MakePanel($("#make-form"), { onSubmitted: context.onSubmitted });
context.clips = new ClipsPanel(context);

async function start() {
  const state = $("#server-state");
  try {
    const health = await api("/healthz");
    state.textContent = health && health.status ? `server ${health.status}` : "server ready";
  } catch (err) {
    state.textContent = `server: ${err.detail}`;
  }
  try {
    await listModels();
  } catch (err) {
    if (err.status === 401) {
      $("#token-form").hidden = false;
      showError($("#err-token"), token() ? "the server refused this token" : err.detail);
      $("#token").focus();
      return;
    }
  }
  $("#token-form").hidden = !token();
  await context.make.loadModels();
  const jobs = await history.load();
  for (const job of jobs) if (!FINISHED.includes(job.status)) queue.track(job);
  document.body.dataset.ready = "true";
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("#token").value.trim());
  start();
});

start();
