// The footer: the History panel (a page of past runs, Restore) and the registry bar (save a version
// with labels, load one). Both only send commands; the kernel answers through traits.

import { h, select } from "../lib/dom";
import { formatCost, formatTime, formatTokens, splitList, truncate } from "../lib/format";
import type { Command, HistoryPage } from "../lib/types";

const HISTORY_PAGE = 20;

const EMPTY_PAGE: HistoryPage = { scope: "widget", offset: 0, total: 0, items: [] };

/** Sends a command to the kernel (the shell flushes pending edits first). */
export type Send = (msg: Command) => void;

/** Owns the History toggle (`toggle`, in the footer) and the panel under the footer (`el`). */
export class HistoryPanel {
  readonly toggle: HTMLButtonElement;
  readonly el: HTMLDivElement;
  private open = false;
  private readonly scope: HTMLSelectElement;
  private readonly list: HTMLDivElement;
  private readonly range: HTMLSpanElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;

  /** `page` reads the `history` trait (the page on screen) when a button needs it. */
  constructor(private readonly page: () => HistoryPage | undefined, private readonly send: Send) {
    this.toggle = h("button", { class: "nbp-btn nbp-btn-ghost nbp-history-toggle", testid: "nbp-history-toggle", type: "button", "aria-expanded": "false" });
    this.scope = select([["widget", "this playground"], ["all", "all runs"]], page()?.scope ?? "widget", { class: "nbp-select", testid: "nbp-history-scope" });
    const refresh = h("button", { class: "nbp-icon-btn", type: "button", title: "Refresh", "aria-label": "Refresh", text: "↻" });
    this.prev = h("button", { class: "nbp-btn nbp-btn-ghost", type: "button", text: "‹ Newer" });
    this.next = h("button", { class: "nbp-btn nbp-btn-ghost", type: "button", text: "Older ›" });
    this.range = h("span", { class: "nbp-muted" });
    this.list = h("div", { class: "nbp-history-list" });
    this.el = h("div", { class: "nbp-history-body", hidden: true },
      h("div", { class: "nbp-history-bar" }, this.scope, refresh, this.prev, this.range, this.next),
      this.list);
    const offset = (): number => this.page()?.offset ?? 0;
    this.toggle.addEventListener("click", () => {
      this.open = !this.open;
      this.render(this.page());
    });
    this.scope.addEventListener("change", () => this.goTo(0));
    refresh.addEventListener("click", () => this.goTo(offset()));
    this.prev.addEventListener("click", () => this.goTo(Math.max(0, offset() - HISTORY_PAGE)));
    this.next.addEventListener("click", () => this.goTo(offset() + HISTORY_PAGE));
  }

  render(current: HistoryPage | undefined): void {
    const page = current ?? EMPTY_PAGE;
    const items = page.items ?? [];
    this.toggle.textContent = `${this.open ? "▾" : "▸"} History${page.total ? ` (${page.total})` : ""}`;
    this.toggle.setAttribute("aria-expanded", String(this.open));
    this.el.hidden = !this.open;
    if (page.scope && this.scope.value !== page.scope) this.scope.value = page.scope;
    const offset = page.offset ?? 0;
    const total = page.total ?? 0;
    this.range.textContent = items.length ? `${offset + 1}–${offset + items.length} of ${total}` : total ? `– of ${total}` : "no runs yet";
    this.prev.disabled = offset <= 0;
    this.next.disabled = offset + items.length >= total;
    if (!this.open) return;
    this.list.replaceChildren(...items.map((it) => {
      const restore = h("button", { class: "nbp-btn nbp-btn-small", testid: "nbp-history-restore", type: "button", text: "Restore", title: "Load this run (and its compare group) into the editor" });
      restore.addEventListener("click", () => this.send({ type: "restore", run_id: it.id }));
      const tokens = formatTokens(it.tokens_in, it.tokens_out);
      return h("div", { class: "nbp-history-item", testid: "nbp-history-item", "data-run-id": it.id },
        h("span", { class: "nbp-muted nbp-nowrap", text: formatTime(it.created_at) }),
        h("span", { class: "nbp-history-model", text: it.model, title: it.model }),
        h("span", { class: `nbp-badge nbp-badge-${it.status}`, text: it.status }),
        h("span", { class: "nbp-history-text", text: truncate(it.text ?? "", 120), title: it.text ?? "" }),
        h("span", { class: "nbp-muted nbp-nowrap", text: [tokens, formatCost(it.cost_usd)].filter(Boolean).join(" · ") }),
        restore);
    }));
  }

  private goTo(offset: number): void {
    const scope = this.scope.value === "all" ? "all" : "widget";
    this.send({ type: "history", scope, offset: Math.max(0, offset) });
  }
}

/** Owns `.nbp-registry` (`el`): save the prompt as a version (name, labels, conversation), load one. */
export class RegistryBar {
  readonly el: HTMLDivElement;
  private readonly saveName: HTMLInputElement;
  private readonly saveLabels: HTMLInputElement;
  private readonly saveConversation: HTMLInputElement;
  private readonly promptRef: HTMLSpanElement;
  private readonly loadRef: HTMLInputElement;

  constructor(private readonly send: Send) {
    this.saveName = h("input", { class: "nbp-input", testid: "nbp-save-name", type: "text", placeholder: "ns/slug", spellcheck: "false", "aria-label": "Version name" });
    this.saveLabels = h("input", { class: "nbp-input nbp-labels-input", testid: "nbp-save-labels", type: "text", placeholder: "labels: prod, …", spellcheck: "false", "aria-label": "Labels", title: "Labels for this version, comma-separated (e.g. prod, staging)" });
    this.saveConversation = h("input", { testid: "nbp-save-conversation", type: "checkbox" });
    const conversationLabel = h("label", { class: "nbp-check", title: "Also save the model's answers and the turns after them. Unticked, only the prompt you wrote is saved." },
      this.saveConversation, h("span", { text: "with conversation" }));
    const saveBtn = h("button", { class: "nbp-btn", testid: "nbp-save", type: "button", text: "Save version", title: "Save the prompt you wrote (messages, model 1 and its parameters) as a new version" });
    this.promptRef = h("span", { class: "nbp-ref", testid: "nbp-prompt-ref" });
    this.loadRef = h("input", { class: "nbp-input", testid: "nbp-load-ref", type: "text", placeholder: "ns/slug[@3|@label]", spellcheck: "false", "aria-label": "Version to load" });
    const loadBtn = h("button", { class: "nbp-btn", testid: "nbp-load", type: "button", text: "Load" });
    saveBtn.addEventListener("click", () => this.saveVersion());
    loadBtn.addEventListener("click", () => this.loadVersion());
    this.saveName.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) this.saveVersion(); });
    this.loadRef.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) this.loadVersion(); });
    this.el = h("div", { class: "nbp-registry" },
      h("span", { class: "nbp-muted", text: "Registry" }), this.saveName, this.saveLabels, conversationLabel, saveBtn, this.promptRef,
      h("span", { class: "nbp-sep" }), this.loadRef, loadBtn);
  }

  /** The version the editor was last saved as or loaded from ("" for none). */
  renderRef(ref: string): void {
    this.promptRef.textContent = ref || "not saved";
    this.promptRef.classList.toggle("nbp-muted", !ref);
    if (ref) this.saveName.placeholder = ref.split("@")[0] ?? "ns/slug";
  }

  /** The labels of the last save (from the widget or `pg.save_version(..., labels=[...])`). */
  renderLabels(labels: string[]): void {
    const text = labels.join(", ");
    if (splitList(this.saveLabels.value).join(", ") !== text) this.saveLabels.value = text;
  }

  private saveVersion(): void {
    const name = this.saveName.value.trim() || this.saveName.placeholder.trim();
    if (!name || name === "ns/slug") {
      this.saveName.focus();
      return;
    }
    this.send({ type: "save_version", name, labels: splitList(this.saveLabels.value), conversation: this.saveConversation.checked });
  }

  private loadVersion(): void {
    const ref = this.loadRef.value.trim();
    if (!ref) {
      this.loadRef.focus();
      return;
    }
    this.send({ type: "load_version", ref });
  }
}
