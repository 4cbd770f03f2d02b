// The output cards: one per target, live from the stream while a run is on, from the `outputs` trait
// after it; tool-call cards, the answer (markdown, JSON, media), a word diff against the previous run,
// and the stats footer. Cards are kept and updated in place (a stream redraws many times a second).

import { wordDiff } from "../lib/diff";
import { append, h } from "../lib/dom";
import { formatBytes, formatStats, parseJson, prettyJson } from "../lib/format";
import { renderMarkdown } from "../lib/markdown";
import type { StreamState, TargetStream } from "../lib/reducer";
import type { MediaInfo, RunResult, ToolCallInfo } from "../lib/types";
import { parseArguments } from "./common";

const SAFE_MIME = /^[\w.+-]+\/[\w.+-]+$/;

/** What the cards are drawn from. */
export interface OutputsState {
  stream: StreamState;
  /** The `outputs` trait: the last finished run's results. */
  outputs: (RunResult | null)[];
  /** The `previous` trait: each target's text of the run before (for the diff). */
  previous: (string | null)[];
  /** Model names of the editor's targets (a card's title before its run says otherwise). */
  models: (string | undefined)[];
  manual: boolean;
}

interface CardView {
  el: HTMLDivElement;
  title: HTMLSpanElement;
  badge: HTMLSpanElement;
  diffToggle: HTMLButtonElement;
  tools: HTMLDivElement;
  text: HTMLDivElement;
  diff: HTMLDivElement;
  stats: HTMLDivElement;
  key: string;
  result: RunResult | null;
  diffOpen: boolean;
  diffKey: string;
}

interface CardData {
  model: string;
  status: string;
  streaming: boolean;
  text: string;
  result: RunResult | null;
  toolCalls: ToolCallInfo[];
  tokens_in: number | null;
  tokens_out: number | null;
  error: string | null;
}

function cardData(s: OutputsState, i: number): CardData {
  const stream = s.stream;
  const live: TargetStream | undefined = stream.running ? stream.targets[i] : undefined;
  if (live) {
    return {
      model: live.model || live.result?.model || s.models[i] || "",
      status: live.status === "idle" ? "streaming" : live.status,
      streaming: live.status === "streaming" || live.status === "idle",
      text: live.text,
      result: live.result,
      toolCalls: live.toolCalls,
      tokens_in: live.tokens_in,
      tokens_out: live.tokens_out,
      error: live.error,
    };
  }
  const r = s.outputs[i] ?? null;
  return {
    model: r?.model ?? s.models[i] ?? "",
    status: r?.status ?? "idle",
    streaming: false,
    text: r?.text ?? "",
    result: r,
    toolCalls: r?.tool_calls ?? [],
    tokens_in: r?.tokens_in ?? null,
    tokens_out: r?.tokens_out ?? null,
    error: r?.error ?? null,
  };
}

/** Owns `.nbp-outputs` (`el`). `redraw` is asked for when a card's diff is toggled. */
export class OutputsView {
  readonly el: HTMLDivElement;
  private cards: CardView[] = [];

  constructor(private readonly redraw: () => void) {
    this.el = h("div", { class: "nbp-grid nbp-outputs" });
  }

  render(s: OutputsState): void {
    const count = s.stream.running ? s.stream.targets.length : Math.max(s.outputs.length, 1);
    while (this.cards.length > count) this.cards.pop()!.el.remove();
    while (this.cards.length < count) {
      const card = this.newCard(this.cards.length);
      this.cards.push(card);
      this.el.append(card.el);
    }
    this.cards.forEach((card, i) => updateCard(card, cardData(s, i), s.previous[i], s.manual));
  }

  private newCard(i: number): CardView {
    const title = h("span", { class: "nbp-card-title" });
    const badge = h("span", { class: "nbp-badge" });
    const diffToggle = h("button", { class: "nbp-btn nbp-btn-ghost nbp-btn-small", testid: "nbp-diff-toggle", type: "button", text: "Diff", title: "Word diff against the previous run of this model", "aria-pressed": "false", hidden: true });
    const tools = h("div", { class: "nbp-tools" });
    const text = h("div", { class: "nbp-output-text nbp-md", testid: "nbp-output-text" });
    const diff = h("div", { class: "nbp-diff", testid: "nbp-diff", hidden: true });
    const stats = h("div", { class: "nbp-output-stats", testid: "nbp-output-stats" });
    const el = h("div", { class: "nbp-card nbp-output", testid: "nbp-output", "data-index": i, "data-status": "idle" },
      h("div", { class: "nbp-card-head" }, title, badge, h("span", { class: "nbp-spacer" }), diffToggle),
      tools, text, diff, stats);
    const card: CardView = { el, title, badge, diffToggle, tools, text, diff, stats, key: "", result: null, diffOpen: false, diffKey: "" };
    diffToggle.addEventListener("click", () => {
      card.diffOpen = !card.diffOpen;
      this.redraw();
    });
    return card;
  }
}

function updateCard(card: CardView, d: CardData, previous: string | null | undefined, manual: boolean): void {
  const calls = d.toolCalls.map((c) => `${c.id}:${c.result === undefined || c.result === null ? 0 : 1}:${c.error ? 1 : 0}`).join(",");
  const key = [d.status, d.model, d.streaming, d.text.length, d.text.slice(-24), calls, d.tokens_in, d.tokens_out, d.error, manual].join("|");
  if (key === card.key && d.result === card.result) {
    updateDiff(card, d, previous); // (the diff toggle, or a new `previous`)
    return;
  }
  card.key = key;
  card.result = d.result;

  card.el.setAttribute("data-status", d.status);
  card.title.textContent = d.model || "—";
  card.title.title = d.model;
  card.badge.textContent = d.status === "idle" ? "" : d.status;
  card.badge.className = `nbp-badge nbp-badge-${d.status}`;
  card.badge.hidden = d.status === "idle";

  // tool calls
  card.tools.replaceChildren(...d.toolCalls.map((c) => toolCard(c, manual)));

  // the answer
  const r = d.result;
  if (d.streaming) {
    card.text.innerHTML = d.text ? renderMarkdown(d.text) : "";
  } else {
    card.text.replaceChildren();
    if (r?.reasoning) {
      // folded: the answer comes first; textContent keeps the model's reasoning inert
      card.text.append(h("details", { class: "nbp-reasoning", testid: "nbp-reasoning" },
        h("summary", { text: "reasoning" }), h("div", { class: "nbp-reasoning-text", text: r.reasoning })));
    }
    if (r && r.data !== undefined && r.data !== null) {
      card.text.append(h("pre", { class: "nbp-json", text: prettyJson(r.data) }));
    } else if (d.text) {
      const json = parseJson(d.text);
      if (json !== undefined) card.text.append(h("pre", { class: "nbp-json", text: JSON.stringify(json, null, 2) }));
      else card.text.innerHTML = renderMarkdown(d.text);
    }
    for (const m of r?.media ?? []) card.text.append(mediaBlock(m));
    if (d.status === "error" && d.error) {
      card.text.append(h("div", { class: "nbp-output-error", text: r?.error_type ? `${r.error_type}: ${d.error}` : d.error }));
    }
  }

  // stats
  // (the status is in the badge only)
  card.stats.textContent = formatStats({
    tokens_in: d.tokens_in,
    tokens_out: d.tokens_out,
    cost_usd: r?.cost_usd ?? null,
    latency_ms: r?.latency_ms ?? null,
    ttft_ms: r?.ttft_ms ?? null,
    estimated: r?.tokens_estimated === true,
  });
  card.stats.hidden = card.stats.textContent === "";

  updateDiff(card, d, previous);
}

function updateDiff(card: CardView, d: CardData, previous: string | null | undefined): void {
  const can = typeof previous === "string" && !d.streaming && d.status !== "idle";
  card.diffToggle.hidden = !can;
  card.diffToggle.textContent = card.diffOpen ? "Hide diff" : "Diff";
  card.diffToggle.setAttribute("aria-pressed", String(card.diffOpen));
  const show = can && card.diffOpen;
  card.diff.hidden = !show;
  if (!show) return;
  const diffKey = `${previous as string}\u0000${d.text}`;
  if (diffKey === card.diffKey) return;
  card.diffKey = diffKey;
  const { html, added, removed } = wordDiff(previous as string, d.text);
  card.diff.innerHTML = `<div class="nbp-diff-head">previous → this run · <ins>+${added}</ins> <del>−${removed}</del></div><div class="nbp-diff-body">${html}</div>`;
}

function toolCard(c: ToolCallInfo, manual: boolean): HTMLElement {
  const hasResult = c.result !== undefined && c.result !== null;
  const state = c.error ? "error" : hasResult ? "done" : manual ? "waiting for you" : "running";
  const card = h("div", { class: `nbp-tool-card nbp-tool-${c.error ? "error" : hasResult ? "done" : "pending"}`, testid: "nbp-tool-card", "data-call-id": c.id },
    h("div", { class: "nbp-tool-head" },
      h("span", { class: "nbp-chip", text: `ƒ ${c.name}` }),
      h("span", { class: "nbp-muted", text: state }),
      h("span", { class: "nbp-spacer" }),
      h("code", { class: "nbp-muted nbp-small", text: c.id })),
    h("pre", { class: "nbp-json", text: prettyJson(parseArguments(c.arguments)) }));
  if (c.error) card.append(h("div", { class: "nbp-output-error", text: c.error }));
  else if (hasResult) card.append(h("div", { class: "nbp-tool-result" }, h("span", { class: "nbp-muted", text: "result" }), h("pre", { class: "nbp-json", text: prettyJson(c.result) })));
  else if (manual) card.append(h("div", { class: "nbp-hint", text: "Type the result in the tool message row (above, in Messages), then Run." }));
  return card;
}

function mediaBlock(m: MediaInfo): HTMLElement {
  const mime = SAFE_MIME.test(m.mime ?? "") ? m.mime : "application/octet-stream";
  const src = m.data_b64 ? `data:${mime};base64,${m.data_b64}` : "";
  const fig = h("figure", { class: "nbp-media" });
  if (src && mime.startsWith("image/")) {
    fig.append(h("img", { src, alt: m.revised_prompt ?? "generated image", loading: "lazy" }));
  } else if (src && mime.startsWith("audio/")) {
    fig.append(h("audio", { controls: true, src }));
  } else {
    fig.append(h("code", { class: "nbp-muted", text: [mime, formatBytes(m.size), m.path ?? (src ? "" : "not inline")].filter(Boolean).join(" · ") }));
  }
  const caption = h("figcaption", { class: "nbp-media-meta" });
  const params = Object.entries(m.params ?? {});
  if (params.length) {
    const dl = h("dl", { class: "nbp-kv" });
    for (const [k, v] of params) append(dl, [h("dt", { text: k }), h("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })]);
    caption.append(dl);
  }
  if (m.revised_prompt) caption.append(h("div", {}, h("span", { class: "nbp-muted", text: "revised prompt: " }), m.revised_prompt));
  if (caption.childNodes.length) fig.append(caption);
  return fig;
}
