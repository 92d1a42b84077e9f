// The service's HTTP API (issue 14's shapes): JSON in and out, errors as {"detail": "one line"}.
// A token, when the server asks for one, is kept in localStorage and sent as `Authorization: Bearer …`.

const TOKEN_KEY = "soundsmith.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const out = { ...extra };
  if (token()) out.Authorization = `Bearer ${token()}`;
  return out;
}

// The API's own words for an error: `detail` as a string, or FastAPI's list of {loc, msg} joined on one line.
export function detailOf(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return `the server answered ${status}`;
}

export async function api(path, { method = "GET", json, body, headers: extra } = {}) {
  const init = { method, headers: headers(extra) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(data, response.status));
  return data;
}

export const listModels = () => api("/v1/models");
export const getJob = (id) => api(`/v1/jobs/${encodeURIComponent(id)}`);
export const cancelJob = (id) => api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
export const starJob = (id, starred) =>
  api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "PATCH", json: { starred } });

export function submit(request) {
  const key = (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random()}`;
  return api("/v1/jobs", { method: "POST", json: request, headers: { "Idempotency-Key": key } });
}

// GET /v1/jobs, newest first, filtered by prompt text and star → {jobs: [...], next: the `before` of the next
// page, or null}.
export async function listJobs({ q = "", starred = false, before = null, limit = 30 } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (q) params.set("q", q);
  if (starred) params.set("starred", "true");
  if (before) params.set("before", before);
  const data = await api(`/v1/jobs?${params}`);
  return { jobs: data.jobs || [], next: data.next || null };
}

// POST /v1/uploads with the file's bytes as the body → the id a request's "input" names.
export async function upload(blob, filename = "clip.wav") {
  const form = new FormData();
  form.append("file", blob, filename);
  const data = await api("/v1/uploads", { method: "POST", body: form });
  return data.input || data.id;
}

// A URL an <audio> element (which cannot send headers) can play: the API's own URL when no token is needed,
// else the bytes fetched with the token as a blob URL.
export async function playableUrl(url) {
  if (!token()) return url;
  const response = await fetch(url, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, `audio: the server answered ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

// Server-sent events of a job, read with fetch so the token travels in a header. Calls onEvent(job-like object)
// for every event whose data is JSON; resolves when the stream ends (the job finished, or the connection closed).
export async function followEvents(id, onEvent, signal) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`,
                               { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok || !response.body) throw new ApiError(response.status, `events: ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      try {
        onEvent({ event: name, ...JSON.parse(data.join("\n")) });
      } catch (err) {
        // not JSON (a comment or keep-alive): nothing to show
      }
    }
  }
}
