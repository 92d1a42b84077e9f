// Small DOM helpers shared by the panels: errors shown next to their control, numbers read from inputs.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

// Show `message` in the error slot `slot` (an element whose id the control names in aria-describedby).
export function showError(slot, message) {
  if (!slot) return;
  slot.textContent = message || "";
  const control = slot.id && document.querySelector(`[aria-describedby~="${slot.id}"]`);
  if (control) control.setAttribute("aria-invalid", message ? "true" : "false");
}

export function clearErrors(root) {
  for (const slot of $$(".error", root)) showError(slot, "");
}

// The request field an API message is about: the earliest of `fields` named in it as a word
// ("duration=0.0 is not allowed: …" → "duration"; "\"prompt\" is missing" → "prompt"), or null.
export function fieldOf(message, fields) {
  let best = null;
  let at = Infinity;
  for (const name of fields) {
    const match = new RegExp(`(^|[^A-Za-z0-9_])${name}([^A-Za-z0-9_]|$)`).exec(message || "");
    if (match && match.index < at) {
      at = match.index;
      best = name;
    }
  }
  return best;
}

// An <input type=number>'s value as a number, or undefined when empty; text that is not a number is sent as it is
// so that the API answers with its own message.
export function numberOf(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw;
}

export function randomSeed() {
  const words = new Uint32Array(1);
  crypto.getRandomValues(words);
  return words[0] % 2147483648;
}

export function seconds(value) {
  return `${Number(value).toFixed(value < 10 ? 2 : 1)} s`;
}

export function when(iso) {
  if (!iso) return "";
  const date = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}
