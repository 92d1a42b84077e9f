// The Sounds panel: every job of the server's database, newest first (GET /v1/jobs), searchable by prompt (q=),
// starred only (starred=true), older pages on demand (before=). New jobs join at the top when they finish.

import { listJobs } from "./api.js";
import { SoundCard } from "./sound.js";
import { $, showError } from "./ui.js";

const PAGE = 20;
const SEARCH_DELAY_MS = 250;

export class HistoryPanel {
  constructor(context) {
    this.context = context;
    this.list = $("#sound-list");
    this.cards = new Map();
    this.search = $("#search");
    this.starred = $("#starred-only");
    this.older = $("#older");
    let timer = null;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.load(), SEARCH_DELAY_MS);
    });
    this.starred.addEventListener("change", () => this.load());
    this.older.addEventListener("click", () => this.load({ more: true }));
  }

  filters() {
    return { q: this.search.value.trim(), starred: this.starred.checked };
  }

  matches(job) {
    const { q, starred } = this.filters();
    const prompt = [].concat(job.request && job.request.prompt || []).join(" ").toLowerCase();
    return (!q || prompt.includes(q.toLowerCase())) && (!starred || job.starred);
  }

  async load({ more = false } = {}) {
    const slot = $("#err-sounds");
    showError(slot, "");
    const before = more ? this.next : null;
    const asked = (this.asked = (this.asked || 0) + 1);
    let page;
    try {
      page = await listJobs({ ...this.filters(), before, limit: PAGE });
    } catch (err) {
      showError(slot, err.detail || String(err));
      return [];
    }
    if (asked !== this.asked) return [];  // a newer search answered, or will
    const jobs = page.jobs;
    this.next = page.next;
    if (!more) {  // a fresh list keeps the card, and so the <audio> (playing on), of every job it lists again
      const kept = new Map(jobs.filter((job) => this.cards.has(job.id)).map((job) => [job.id, this.cards.get(job.id)]));
      this.list.replaceChildren();
      this.cards = kept;
    }
    for (const job of jobs) this.put(job, { append: true });
    this.older.hidden = !this.next;
    this.showEmpty();
    return jobs;
  }

  showEmpty() {
    $("#sounds-empty").hidden = this.list.children.length > 0;
  }

  // A job's card, new at the top (or at the end of the list while paging), or refreshed where it is.
  put(job, { append = false } = {}) {
    if (!job.clip && !this.matches(job)) return;
    const card = this.cards.get(job.id);
    if (card) {
      card.render(job);
      if (!card.element.isConnected) this.list.append(card.element);  // kept by a fresh list: back, in its order
      return;
    }
    const created = new SoundCard(job, this.context);
    this.cards.set(job.id, created);
    if (append) this.list.append(created.element);
    else this.list.prepend(created.element);
    this.showEmpty();
  }
}
