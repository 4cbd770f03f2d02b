// The Playground anywidget front end (anywidget >= 0.9: `export default { initialize, render }`).
// Contract: docs/widget-protocol.md. State lives in traits; streaming arrives as custom messages that
// `initialize` folds (once per model) into a shared StreamState every view of the model reads.

import { wordDiff } from "./lib/diff";
import {
  append,
  autosize,
  captureFocus,
  h,
  isTextEntry,
  restoreFocus,
  select,
  uniqueId,
} from "./lib/dom";
import { formatBytes, formatCost, formatStats, formatTime, formatTokens, parseJson, prettyJson, splitList, truncate } from "./lib/format";
import { renderMarkdown } from "./lib/markdown";
import { isTemplateRole, messageVariableNames, scan } from "./lib/placeholders";
import {
  applyEvents,
  applySnapshot,
  emptyState,
  markIdle,
  runFinished,
  runStarted,
  type StreamState,
  type TargetStream,
} from "./lib/reducer";
import {
  ROLES,
  type AnyModel,
  type Command,
  type KernelMsg,
  type MediaInfo,
  type Message,
  type ModelChoice,
  type PlaygroundModel,
  type Role,
  type RunResult,
  type Target,
  type ToolCallInfo,
} from "./lib/types";

const MAX_TARGETS = 4;
const DEBOUNCE_MS = 300;
const STREAM_RENDER_MS = 100;
const HISTORY_PAGE = 20;

// -- per-model shared state ---------------------------------------------------------------------------

type Notice = { text: string; kind: "info" | "error" } | null;
type SharedEvent = "stream" | "started" | "finished" | "notice";

interface Shared {
  stream: StreamState;
  notice: Notice;
  /** Views redraw on these. */
  listeners: Set<(what: SharedEvent) => void>;
  /** Each view's "write my pending edits now"; every command runs them all first. */
  flushers: Set<() => void>;
  detach: () => void;
}

/*
 * anywidget hands `initialize` and each `render` a different proxy of the same model, so a WeakMap on
 * the proxy cannot carry state from one to the other. The proxies do return the same attribute
 * objects, so `initialize` registers its state under every object-valued trait it can see (re-done
 * on every change) and `render` looks it up through any of them.
 */
const KEY_TRAITS = [
  "layout", "messages", "targets", "outputs", "previous", "history", "models", "variables",
  "variable_names", "base_messages", "missing", "tool_names",
] as const;
const registry = new WeakMap<object, Shared>();

function traitObjects(model: PlaygroundModel): object[] {
  const loose = model as unknown as AnyModel<Record<string, unknown>>;
  const out: object[] = [];
  for (const key of KEY_TRAITS) {
    let value: unknown;
    try {
      value = loose.get(key);
    } catch {
      continue;
    }
    if (value !== null && typeof value === "object") out.push(value);
  }
  return out;
}

function lookupShared(model: PlaygroundModel): Shared | undefined {
  for (const obj of traitObjects(model)) {
    const found = registry.get(obj);
    if (found) return found;
  }
  return undefined;
}

function createShared(model: PlaygroundModel): Shared {
  const shared: Shared = {
    stream: emptyState(),
    notice: null,
    listeners: new Set(),
    flushers: new Set(),
    detach: () => undefined,
  };
  const notify = (what: SharedEvent): void => {
    for (const fn of [...shared.listeners]) {
      try {
        fn(what);
      } catch (err) {
        console.error("nbplayground: view update failed", err);
      }
    }
  };
  const onMessage = (msg: KernelMsg): void => {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "run_started":
        runStarted(shared.stream, msg);
        shared.notice = null;
        notify("started");
        break;
      case "events":
        applyEvents(shared.stream, msg.events ?? []);
        notify("stream");
        break;
      case "snapshot":
        applySnapshot(shared.stream, msg);
        notify("started");
        break;
      case "run_finished":
        runFinished(shared.stream, msg);
        notify("finished");
        break;
      case "saved":
        shared.notice = { text: `Saved ${msg.ref}`, kind: "info" };
        notify("notice");
        break;
      case "error":
        shared.notice = { text: msg.message, kind: "error" };
        notify("notice");
        break;
      default:
        break;
    }
  };
  const onStatus = (): void => {
    if (model.get("status") === "idle" && shared.stream.running) {
      markIdle(shared.stream);
      notify("finished");
    }
  };
  const register = (): void => {
    for (const obj of traitObjects(model)) registry.set(obj, shared);
  };
  model.on("msg:custom", onMessage);
  model.on("change:status", onStatus);
  model.on("change", register);
  register();
  shared.detach = () => {
    model.off("msg:custom", onMessage);
    model.off("change:status", onStatus);
    model.off("change", register);
    shared.listeners.clear();
    shared.flushers.clear();
  };
  return shared;
}

// -- helpers ------------------------------------------------------------------------------------------

const clone = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

const escapeHtml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

const SAFE_MIME = /^[\w.+-]+\/[\w.+-]+$/;

function keyLabel(status: string): string {
  if (status === "set") return "key set";
  if (status === "missing") return "key missing";
  if (status === "not needed") return "no key needed";
  return status ? `key ${status}` : "";
}

function parseArguments(args: unknown): unknown {
  if (typeof args !== "string") return args;
  const parsed = parseJson(args);
  return parsed === undefined ? args : parsed;
}

type DraftKey = "messages" | "variables" | "targets";

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

// -- one view -----------------------------------------------------------------------------------------

class PlaygroundView {
  private readonly root: HTMLDivElement;
  private readonly draft: { messages: Message[]; variables: Record<string, string>; targets: Target[] };
  private readonly dirty = new Set<DraftKey>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private committing = false;
  private readonly unsubscribe: (() => void)[] = [];

  // toolbar
  private readonly runBtn: HTMLButtonElement;
  private readonly clearRunBtn: HTMLButtonElement;
  private readonly stopBtn: HTMLButtonElement;
  private readonly toolMode: HTMLSelectElement;
  private readonly statusText: HTMLSpanElement;
  private readonly errorBox: HTMLDivElement;
  private readonly errorText: HTMLSpanElement;
  private dismissedError = "";
  // editors
  private readonly messagesBox: HTMLDivElement;
  private readonly addRole: HTMLSelectElement;
  private highlighters: (() => void)[] = [];
  private readonly varsSection: HTMLElement;
  private readonly varsBox: HTMLDivElement;
  private readonly targetsBox: HTMLDivElement;
  private readonly addTargetBtn: HTMLButtonElement;
  private readonly datalist: HTMLDataListElement;
  private keyBadges: (() => void)[] = [];
  // outputs
  private readonly outputsBox: HTMLDivElement;
  private cards: CardView[] = [];
  private outTimer: ReturnType<typeof setTimeout> | undefined;
  private lastOutRender = 0;
  // history + registry
  private historyOpen = false;
  private readonly historyToggle: HTMLButtonElement;
  private readonly historyBody: HTMLDivElement;
  private readonly historyScope: HTMLSelectElement;
  private readonly historyList: HTMLDivElement;
  private readonly historyRange: HTMLSpanElement;
  private readonly historyPrev: HTMLButtonElement;
  private readonly historyNext: HTMLButtonElement;
  private readonly saveName: HTMLInputElement;
  private readonly saveLabels: HTMLInputElement;
  private readonly saveConversation: HTMLInputElement;
  private readonly promptRef: HTMLSpanElement;
  private readonly loadRef: HTMLInputElement;
  private readonly resizer: ResizeObserver | null;

  constructor(
    private readonly model: PlaygroundModel,
    private readonly host: HTMLElement,
    private readonly shared: Shared,
  ) {
    this.draft = {
      messages: clone(model.get("messages") ?? []),
      variables: clone(model.get("variables") ?? {}),
      targets: clone(model.get("targets") ?? []),
    };

    // toolbar ----------------------------------------------------------------------------------------
    this.runBtn = h("button", { class: "nbp-btn nbp-btn-primary", testid: "nbp-run", type: "button", text: "Run", title: "Run every model (Ctrl/Cmd+Enter)" });
    this.clearRunBtn = h("button", { class: "nbp-btn", testid: "nbp-clear-run", type: "button", text: "Clear & Run", title: "Start again from the editor's messages, then run" });
    this.stopBtn = h("button", { class: "nbp-btn nbp-btn-stop", testid: "nbp-stop", type: "button", text: "Stop", title: "Stop every model (Esc)" });
    this.toolMode = select([["auto", "tools: auto"], ["manual", "tools: manual"]], model.get("tool_mode") ?? "auto", {
      class: "nbp-select", testid: "nbp-tool-mode", title: "auto: the kernel runs the tool functions; manual: you type each result",
    });
    this.statusText = h("span", { class: "nbp-status", "aria-live": "polite" });
    const toolbar = h("div", { class: "nbp-toolbar" },
      this.runBtn, this.clearRunBtn, this.stopBtn, this.toolMode, this.statusText);

    this.errorText = h("span", { class: "nbp-error-text" });
    const dismiss = h("button", { class: "nbp-icon-btn", type: "button", title: "Dismiss", "aria-label": "Dismiss", text: "×" });
    this.errorBox = h("div", { class: "nbp-error", testid: "nbp-error", role: "alert", hidden: true }, this.errorText, dismiss);
    dismiss.addEventListener("click", () => {
      this.dismissedError = this.model.get("error") ?? "";
      this.renderError();
    });

    // messages ---------------------------------------------------------------------------------------
    this.messagesBox = h("div", { class: "nbp-messages" });
    this.addRole = select(ROLES, "user", { class: "nbp-select", testid: "nbp-add-message-role", title: "Role of the new message" });
    const addMsg = h("button", { class: "nbp-btn nbp-btn-ghost", testid: "nbp-add-message", type: "button", text: "+ Message" });
    addMsg.addEventListener("click", () => this.addMessage());
    const messagesSection = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Messages" })),
      this.messagesBox,
      h("div", { class: "nbp-row-add" }, this.addRole, addMsg));

    // variables --------------------------------------------------------------------------------------
    this.varsBox = h("div", { class: "nbp-variables" });
    this.varsSection = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Variables" })),
      this.varsBox);

    // targets ----------------------------------------------------------------------------------------
    this.datalist = h("datalist", { id: uniqueId("nbp-models") });
    this.targetsBox = h("div", { class: "nbp-grid nbp-targets" });
    this.addTargetBtn = h("button", { class: "nbp-btn nbp-btn-ghost", testid: "nbp-add-target", type: "button", text: "+ Model", title: `Compare up to ${MAX_TARGETS} models` });
    this.addTargetBtn.addEventListener("click", () => this.addTarget());
    const targetsSection = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Models" }), this.addTargetBtn),
      this.targetsBox, this.datalist);

    // outputs ----------------------------------------------------------------------------------------
    this.outputsBox = h("div", { class: "nbp-grid nbp-outputs" });

    // history ----------------------------------------------------------------------------------------
    this.historyToggle = h("button", { class: "nbp-btn nbp-btn-ghost nbp-history-toggle", testid: "nbp-history-toggle", type: "button", "aria-expanded": "false" });
    this.historyScope = select([["widget", "this playground"], ["all", "all runs"]], model.get("history")?.scope ?? "widget", { class: "nbp-select", testid: "nbp-history-scope" });
    const refresh = h("button", { class: "nbp-icon-btn", type: "button", title: "Refresh", "aria-label": "Refresh", text: "↻" });
    this.historyPrev = h("button", { class: "nbp-btn nbp-btn-ghost", type: "button", text: "‹ Newer" });
    this.historyNext = h("button", { class: "nbp-btn nbp-btn-ghost", type: "button", text: "Older ›" });
    this.historyRange = h("span", { class: "nbp-muted" });
    this.historyList = h("div", { class: "nbp-history-list" });
    this.historyBody = h("div", { class: "nbp-history-body", hidden: true },
      h("div", { class: "nbp-history-bar" }, this.historyScope, refresh, this.historyPrev, this.historyRange, this.historyNext),
      this.historyList);
    this.historyToggle.addEventListener("click", () => {
      this.historyOpen = !this.historyOpen;
      this.renderHistory();
    });
    this.historyScope.addEventListener("change", () => this.historyPage(0));
    refresh.addEventListener("click", () => this.historyPage(this.model.get("history")?.offset ?? 0));
    this.historyPrev.addEventListener("click", () => this.historyPage(Math.max(0, (this.model.get("history")?.offset ?? 0) - HISTORY_PAGE)));
    this.historyNext.addEventListener("click", () => this.historyPage((this.model.get("history")?.offset ?? 0) + HISTORY_PAGE));

    // registry ---------------------------------------------------------------------------------------
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
    const registry = h("div", { class: "nbp-registry" },
      h("span", { class: "nbp-muted", text: "Registry" }), this.saveName, this.saveLabels, conversationLabel, saveBtn, this.promptRef,
      h("span", { class: "nbp-sep" }), this.loadRef, loadBtn);

    const footer = h("div", { class: "nbp-footer" }, this.historyToggle, registry);

    this.root = h("div", { class: "nbp-root", testid: "nbp-playground", "data-status": model.get("status") ?? "idle" },
      toolbar, this.errorBox, messagesSection, this.varsSection, targetsSection, this.outputsBox, footer, this.historyBody);
    this.root.addEventListener("keydown", (e) => this.onKeydown(e));
    this.runBtn.addEventListener("click", () => this.command({ type: "run" }));
    this.clearRunBtn.addEventListener("click", () => this.command({ type: "clear_and_run" }));
    this.stopBtn.addEventListener("click", () => this.command({ type: "stop" }));
    this.toolMode.addEventListener("change", () => {
      this.model.set("tool_mode", this.toolMode.value === "manual" ? "manual" : "auto");
      this.model.save_changes();
    });

    this.resizer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => this.autosizeAll()) : null;
    this.resizer?.observe(this.root);

    host.replaceChildren(this.root);
    this.renderAll();
    this.subscribe();
  }

  // -- wiring ----------------------------------------------------------------------------------------
  private subscribe(): void {
    const on = (name: string, fn: () => void): void => {
      this.model.on(name, fn);
      this.unsubscribe.push(() => this.model.off(name, fn));
    };
    on("change:messages", () => this.fromKernel("messages"));
    on("change:variables", () => this.fromKernel("variables"));
    on("change:targets", () => this.fromKernel("targets"));
    on("change:variable_names", () => this.renderVariables());
    on("change:models", () => {
      this.renderDatalist();
      for (const fn of this.keyBadges) fn();
    });
    on("change:tool_names", () => this.renderTargets());
    on("change:tool_mode", () => {
      this.toolMode.value = this.model.get("tool_mode") ?? "auto";
      this.renderOutputs();
    });
    on("change:status", () => {
      this.renderToolbar();
      this.renderOutputs();
    });
    on("change:error", () => {
      this.renderError();
      this.renderToolbar();
    });
    on("change:outputs", () => this.renderOutputs());
    on("change:previous", () => this.renderOutputs());
    on("change:history", () => this.renderHistory());
    on("change:prompt_ref", () => this.renderRegistry());
    on("change:prompt_labels", () => this.renderLabels());

    const listener = (what: SharedEvent): void => {
      if (what === "stream") this.scheduleOutputs();
      else if (what === "notice") this.renderToolbar();
      else {
        this.renderOutputs();
        this.renderToolbar();
      }
    };
    this.shared.listeners.add(listener);
    this.unsubscribe.push(() => this.shared.listeners.delete(listener));
    const flusher = (): void => this.flush();
    this.shared.flushers.add(flusher);
    this.unsubscribe.push(() => this.shared.flushers.delete(flusher));
  }

  destroy(): void {
    this.flush(); // an edit typed just before the view went away is not lost
    clearTimeout(this.timer);
    clearTimeout(this.outTimer);
    for (const fn of this.unsubscribe.splice(0)) fn();
    this.resizer?.disconnect();
    this.host.replaceChildren();
  }

  /** A trait changed: from the kernel (or another view), unless we are writing it ourselves. */
  private fromKernel(key: DraftKey): void {
    if (this.committing) return;
    const value = clone(this.model.get(key));
    // the kernel's state wins over an edit not yet sent (there is no merging a list of messages)
    this.dirty.delete(key);
    if (key === "messages") {
      this.draft.messages = (value as Message[]) ?? [];
      this.renderMessages();
      this.renderVariables();
    } else if (key === "variables") {
      this.draft.variables = (value as Record<string, string>) ?? {};
      this.renderVariables();
      this.highlightAll();
    } else {
      this.draft.targets = (value as Target[]) ?? [];
      this.renderTargets();
    }
  }

  /** Mark a draft edited: written to the model after DEBOUNCE_MS, or at once before a command. */
  private touch(key: DraftKey): void {
    this.dirty.add(key);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), DEBOUNCE_MS);
  }

  /** Write pending edits to the model and sync them (set and save together, so no stale value lingers). */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty.size === 0) return;
    this.committing = true;
    try {
      for (const key of this.dirty) this.model.set(key, clone(this.draft[key]));
      if (this.dirty.has("messages")) this.model.set("variable_names", messageVariableNames(this.draft.messages));
      this.dirty.clear();
      this.model.save_changes();
    } finally {
      this.committing = false;
    }
  }

  /** Every command: flush all views' edits first (comm ordering then guarantees the kernel sees them). */
  private command(msg: Command): void {
    for (const fn of [...this.shared.flushers]) fn();
    this.model.save_changes();
    if (msg.type !== "stop") {
      this.shared.notice = null;
      this.renderToolbar();
    }
    this.model.send(msg);
  }

  private onKeydown(e: KeyboardEvent): void {
    const status = this.model.get("status");
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      e.stopPropagation();
      if (status === "idle" || !status) this.command({ type: "run" });
      return;
    }
    if (e.key === "Escape" && (status === "running" || status === "stopping")) {
      e.preventDefault();
      e.stopPropagation();
      if (status === "running") this.command({ type: "stop" });
      return;
    }
    // typing in the widget's fields never reaches the notebook's shortcuts (as in ipywidgets' text
    // fields); combinations with Ctrl/Cmd (save, undo...) still do
    if (isTextEntry(e.target) && !e.ctrlKey && !e.metaKey && e.key !== "Escape") e.stopPropagation();
  }

  // -- rendering -------------------------------------------------------------------------------------
  private renderAll(): void {
    this.renderToolbar();
    this.renderError();
    this.renderMessages();
    this.renderVariables();
    this.renderDatalist();
    this.renderTargets();
    this.renderOutputs();
    this.renderHistory();
    this.renderRegistry();
    this.renderLabels();
  }

  private renderToolbar(): void {
    const status = this.model.get("status") ?? "idle";
    this.root.setAttribute("data-status", status);
    const busy = status !== "idle";
    this.runBtn.disabled = busy;
    this.clearRunBtn.disabled = busy;
    this.stopBtn.disabled = status !== "running";
    const notice = this.shared.notice;
    let text = "";
    let kind = "";
    if (status === "running") text = "Running… (Esc stops)";
    else if (status === "stopping") text = "Stopping…";
    else if (notice && !(notice.kind === "error" && notice.text === this.model.get("error"))) {
      // (an error the banner already shows is not repeated here)
      text = notice.text;
      kind = notice.kind;
    } else {
      const missing = this.missingNames();
      if (missing.length) {
        text = `No value for ${missing.map((n) => `{{${n}}}`).join(", ")}`;
        kind = "warn";
      } else {
        text = "Ctrl/Cmd+Enter runs";
        kind = "hint";
      }
    }
    this.statusText.textContent = text;
    this.statusText.className = `nbp-status${kind ? ` nbp-status-${kind}` : ""}`;
    this.statusText.title = text;
  }

  private renderError(): void {
    const error = this.model.get("error") ?? "";
    if (error !== this.dismissedError) this.dismissedError = "";
    this.errorText.textContent = error;
    this.errorBox.hidden = !error || error === this.dismissedError;
  }

  // -- messages --------------------------------------------------------------------------------------
  private renderMessages(): void {
    const focus = captureFocus(this.messagesBox);
    this.highlighters = [];
    const msgs = this.draft.messages;
    this.messagesBox.replaceChildren(...msgs.map((m, i) => this.messageRow(m, i, msgs)));
    restoreFocus(this.messagesBox, focus);
    this.autosizeAll();
  }

  private messageRow(m: Message, i: number, all: Message[]): HTMLDivElement {
    const role = (ROLES as readonly string[]).includes(m.role) ? m.role : "user";
    const roleSel = select(ROLES, role, { class: "nbp-select nbp-role", testid: "nbp-message-role", "aria-label": "Role" });
    roleSel.addEventListener("change", () => this.setRole(i, roleSel.value as Role));

    const backdrop = h("div", { class: "nbp-backdrop", "aria-hidden": "true" });
    const ta = h("textarea", {
      class: "nbp-textarea", testid: "nbp-message-content", rows: 1, spellcheck: "false",
      placeholder: this.contentPlaceholder(m, all), "aria-label": `${role} message`,
    });
    ta.value = typeof m.content === "string" ? m.content : m.content == null ? "" : JSON.stringify(m.content);
    const highlight = (): void => {
      backdrop.innerHTML = this.highlightHtml(ta.value, role);
    };
    highlight();
    this.highlighters.push(highlight);
    ta.addEventListener("input", () => {
      const msg = this.draft.messages[i];
      if (!msg) return;
      msg.content = ta.value;
      highlight();
      autosize(ta);
      this.touch("messages");
      if (isTemplateRole(msg.role)) this.renderVariables();
    });
    const editor = h("div", { class: "nbp-editor" }, backdrop, ta);

    const main = h("div", { class: "nbp-message-main" }, editor);
    if (role === "tool") {
      const call = this.findCall(all, m.tool_call_id, i);
      main.prepend(h("div", { class: "nbp-message-meta" },
        h("span", { class: "nbp-chip", text: call ? `↳ ${call.function?.name ?? "tool"}` : "↳ tool result" }),
        h("code", { class: "nbp-muted", text: m.tool_call_id ? `tool_call_id ${m.tool_call_id}` : "no tool_call_id" })));
    }
    if (role === "assistant" && m.tool_calls?.length) {
      const calls = h("div", { class: "nbp-message-calls" });
      for (const c of m.tool_calls) {
        calls.append(h("div", { class: "nbp-call" },
          h("span", { class: "nbp-chip", text: `ƒ ${c.function?.name ?? "?"}` }),
          h("code", { class: "nbp-call-args", text: truncate(prettyJson(parseArguments(c.function?.arguments)).replace(/\s+/g, " "), 200) }),
          h("code", { class: "nbp-muted", text: c.id })));
      }
      main.append(calls);
    }

    const up = h("button", { class: "nbp-icon-btn", testid: "nbp-message-up", type: "button", title: "Move up", "aria-label": "Move up", text: "↑", disabled: i === 0 });
    const down = h("button", { class: "nbp-icon-btn", testid: "nbp-message-down", type: "button", title: "Move down", "aria-label": "Move down", text: "↓", disabled: i === all.length - 1 });
    const del = h("button", { class: "nbp-icon-btn nbp-danger", testid: "nbp-message-delete", type: "button", title: "Delete", "aria-label": "Delete", text: "✕" });
    up.addEventListener("click", () => this.moveMessage(i, -1));
    down.addEventListener("click", () => this.moveMessage(i, 1));
    del.addEventListener("click", () => this.deleteMessage(i));

    return h("div", { class: `nbp-message nbp-role-${role}`, testid: "nbp-message", "data-index": i, "data-role": role },
      h("div", { class: "nbp-message-side" }, roleSel),
      main,
      h("div", { class: "nbp-message-actions" }, up, down, del));
  }

  private contentPlaceholder(m: Message, all: Message[]): string {
    if (m.role === "system") return "System instructions… use {{name}} for variables";
    if (m.role === "user") return "User message… use {{name}} for variables";
    if (m.role === "assistant") return m.tool_calls?.length ? "(tool calls)" : "Assistant answer";
    const call = this.findCall(all, m.tool_call_id, all.indexOf(m));
    return call ? `Type the result of ${call.function?.name ?? "the tool"}(…) here, then Run` : "Tool result";
  }

  private findCall(all: Message[], id: string | undefined, before: number): { function?: { name?: string } } | undefined {
    if (!id) return undefined;
    for (let j = Math.min(before, all.length) - 1; j >= 0; j--) {
      const hit = all[j]?.tool_calls?.find((c) => c.id === id);
      if (hit) return hit;
    }
    return undefined;
  }

  private highlightHtml(text: string, role: string): string {
    // a trailing newline needs a character after it, or the backdrop is one line short
    const tail = text.endsWith("\n") ? " " : "";
    if (!isTemplateRole(role)) return escapeHtml(text) + tail;
    const found = scan(text);
    if (!found.length) return escapeHtml(text) + tail;
    const vars = this.draft.variables;
    let html = "";
    let pos = 0;
    for (const p of found) {
      const value = vars[p.root];
      const missing = value === undefined || value === null || String(value) === "";
      html += escapeHtml(text.slice(pos, p.start));
      html += `<mark class="nbp-ph${missing ? " nbp-ph-missing" : ""}">${escapeHtml(text.slice(p.start, p.end))}</mark>`;
      pos = p.end;
    }
    return html + escapeHtml(text.slice(pos)) + tail;
  }

  private highlightAll(): void {
    for (const fn of this.highlighters) fn();
  }

  private autosizeAll(): void {
    for (const ta of this.root.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
  }

  private setRole(i: number, role: Role): void {
    const m = this.draft.messages[i];
    if (!m) return;
    m.role = role;
    if (role !== "tool") delete m.tool_call_id;
    if (role !== "assistant") delete m.tool_calls;
    this.touch("messages");
    this.renderMessages();
    this.renderVariables();
  }

  private addMessage(): void {
    const role = (this.addRole.value as Role) || "user";
    this.draft.messages.push({ role, content: "" });
    this.touch("messages");
    this.renderMessages();
    const rows = this.messagesBox.querySelectorAll<HTMLTextAreaElement>('[data-testid="nbp-message-content"]');
    rows[rows.length - 1]?.focus({ preventScroll: false });
  }

  private moveMessage(i: number, delta: number): void {
    const msgs = this.draft.messages;
    const j = i + delta;
    if (j < 0 || j >= msgs.length) return;
    [msgs[i], msgs[j]] = [msgs[j]!, msgs[i]!];
    this.touch("messages");
    this.renderMessages();
    this.renderVariables();
  }

  private deleteMessage(i: number): void {
    this.draft.messages.splice(i, 1);
    this.touch("messages");
    this.renderMessages();
    this.renderVariables();
  }

  // -- variables -------------------------------------------------------------------------------------
  /**
   * The names shown: computed from the messages on screen, by the kernel's own rules, so they follow
   * every keystroke and every kernel change at once (`variable_names` is the same list, written on flush).
   */
  private variableNames(): string[] {
    return messageVariableNames(this.draft.messages);
  }

  private missingNames(): string[] {
    const vars = this.draft.variables;
    return this.variableNames().filter((n) => vars[n] === undefined || vars[n] === null || String(vars[n]) === "");
  }

  private renderVariables(): void {
    const names = this.variableNames();
    this.varsSection.hidden = names.length === 0;
    const existing = new Map<string, HTMLElement>();
    for (const row of this.varsBox.querySelectorAll<HTMLElement>(":scope > .nbp-variable")) {
      existing.set(row.getAttribute("data-name") ?? "", row);
    }
    const rows: HTMLElement[] = [];
    for (const name of names) {
      const value = this.draft.variables[name];
      const text = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
      let row = existing.get(name);
      if (row) {
        const input = row.querySelector<HTMLTextAreaElement>('[data-testid="nbp-variable-input"]');
        if (input && input.value !== text) input.value = text;
      } else {
        row = this.variableRow(name, text);
      }
      this.markMissing(row, text);
      rows.push(row);
    }
    const same = rows.length === this.varsBox.children.length && rows.every((r, k) => this.varsBox.children[k] === r);
    if (!same) {
      const focus = captureFocus(this.varsBox);
      this.varsBox.replaceChildren(...rows);
      restoreFocus(this.varsBox, focus);
    }
    for (const ta of this.varsBox.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
    this.renderToolbar();
  }

  private variableRow(name: string, text: string): HTMLElement {
    const input = h("textarea", { class: "nbp-textarea nbp-var-input", testid: "nbp-variable-input", rows: 1, spellcheck: "false", placeholder: "value (text, or JSON for {{a.b}} paths)", "aria-label": name });
    input.value = text;
    const row = h("div", { class: "nbp-variable", testid: "nbp-variable", "data-name": name },
      h("label", { class: "nbp-var-name", title: name, text: `{{${name}}}` }), input);
    input.addEventListener("input", () => {
      this.draft.variables = { ...this.draft.variables, [name]: input.value };
      this.markMissing(row, input.value);
      autosize(input);
      this.touch("variables");
      this.highlightAll();
      this.renderToolbar();
    });
    return row;
  }

  private markMissing(row: HTMLElement, text: string): void {
    if (text === "") row.setAttribute("data-missing", "true");
    else row.removeAttribute("data-missing");
  }

  // -- targets ---------------------------------------------------------------------------------------
  private renderDatalist(): void {
    const models: ModelChoice[] = this.model.get("models") ?? [];
    this.datalist.replaceChildren(...models.map((m) => {
      const label = [m.provider, keyLabel(m.key_status)].filter(Boolean).join(" · ");
      return h("option", { value: m.model, label });
    }));
  }

  private renderTargets(): void {
    const focus = captureFocus(this.targetsBox);
    this.keyBadges = [];
    const targets = this.draft.targets;
    this.targetsBox.replaceChildren(...targets.map((t, i) => this.targetCard(t, i, targets.length)));
    this.addTargetBtn.disabled = targets.length >= MAX_TARGETS;
    restoreFocus(this.targetsBox, focus);
    this.autosizeAll();
  }

  private targetCard(t: Target, i: number, count: number): HTMLDivElement {
    t.params ??= {};
    const edited = (): void => this.touch("targets");

    const modelInput = h("input", { class: "nbp-input nbp-model-input", testid: "nbp-target-model", type: "text", list: this.datalist.id, spellcheck: "false", placeholder: "provider/model", "aria-label": "Model" });
    modelInput.value = t.model ?? "";
    const keyBadge = h("span", { class: "nbp-key" });
    const updateKey = (): void => {
      const choice = (this.model.get("models") ?? []).find((m) => m.model === modelInput.value.trim());
      const status = choice?.key_status ?? "";
      keyBadge.textContent = keyLabel(status);
      keyBadge.className = `nbp-key nbp-key-${status.replace(/\s+/g, "-") || "unknown"}`;
      keyBadge.hidden = !status;
    };
    updateKey();
    this.keyBadges.push(updateKey);
    modelInput.addEventListener("input", () => {
      t.model = modelInput.value.trim();
      updateKey();
      edited();
    });

    const numberField = (key: string, label: string, attrs: Record<string, string | number>, integer: boolean): HTMLLabelElement => {
      const input = h("input", { class: "nbp-input", testid: `nbp-target-${key.replace(/_/g, "-")}`, type: "number", ...attrs });
      const value = t.params[key];
      input.value = typeof value === "number" ? String(value) : typeof value === "string" ? value : "";
      input.addEventListener("input", () => {
        const raw = input.value.trim();
        const n = Number(raw);
        if (raw === "" || !Number.isFinite(n)) delete t.params[key];
        else t.params[key] = integer ? Math.trunc(n) : n;
        edited();
      });
      return h("label", { class: "nbp-field" }, h("span", { text: label }), input);
    };

    const stop = h("input", { class: "nbp-input", testid: "nbp-target-stop", type: "text", placeholder: "comma-separated", spellcheck: "false" });
    const stopValue = t.params.stop;
    stop.value = Array.isArray(stopValue) ? stopValue.join(", ") : typeof stopValue === "string" ? stopValue : "";
    stop.addEventListener("input", () => {
      const list = splitList(stop.value);
      if (list.length) t.params.stop = list;
      else delete t.params.stop;
      edited();
    });

    const rf = h("textarea", { class: "nbp-textarea nbp-code", testid: "nbp-target-response-format", rows: 1, spellcheck: "false", placeholder: "JSON schema (empty: free text)", "aria-label": "Response format" });
    rf.value = t.response_format ?? "";
    const checkRf = (): void => {
      const v = rf.value.trim();
      const bad = v.startsWith("{") && parseJson(v) === undefined;
      rf.classList.toggle("nbp-invalid", bad);
      rf.title = bad ? "Not valid JSON" : "";
    };
    checkRf();
    rf.addEventListener("input", () => {
      t.response_format = rf.value.trim() ? rf.value : null;
      checkRf();
      autosize(rf);
      edited();
    });

    const toolNames = this.model.get("tool_names") ?? [];
    const tools = h("input", { testid: "nbp-target-tools", type: "checkbox" });
    tools.checked = t.tools !== false;
    tools.disabled = toolNames.length === 0;
    tools.addEventListener("change", () => {
      t.tools = tools.checked;
      edited();
    });
    const toolsLabel = h("label", { class: "nbp-check", title: toolNames.length ? toolNames.join(", ") : "No tools were passed (tools=[...])" },
      tools, h("span", { text: toolNames.length ? `tools (${truncate(toolNames.join(", "), 40)})` : "tools" }));

    const remove = h("button", { class: "nbp-icon-btn nbp-danger", testid: "nbp-target-remove", type: "button", title: "Remove this model", "aria-label": "Remove this model", text: "✕", disabled: count <= 1 });
    remove.addEventListener("click", () => {
      if (this.draft.targets.length <= 1) return;
      this.draft.targets.splice(i, 1);
      this.touch("targets");
      this.renderTargets();
    });

    return h("div", { class: "nbp-card nbp-target", testid: "nbp-target", "data-index": i },
      h("div", { class: "nbp-card-head" }, h("span", { class: "nbp-card-title", text: `Model ${i + 1}` }), keyBadge, h("span", { class: "nbp-spacer" }), remove),
      modelInput,
      h("div", { class: "nbp-params" },
        numberField("temperature", "temperature", { step: 0.1, min: 0, max: 2 }, false),
        numberField("max_tokens", "max tokens", { step: 1, min: 1 }, true),
        numberField("top_p", "top p", { step: 0.05, min: 0, max: 1 }, false),
        numberField("seed", "seed", { step: 1 }, true)),
      h("label", { class: "nbp-field" }, h("span", { text: "stop" }), stop),
      h("label", { class: "nbp-field" }, h("span", { text: "response format" }), rf),
      toolsLabel);
  }

  private addTarget(): void {
    if (this.draft.targets.length >= MAX_TARGETS) return;
    const last = this.draft.targets[this.draft.targets.length - 1];
    this.draft.targets.push(last ? clone(last) : { model: "", params: {}, response_format: null, tools: true });
    this.touch("targets");
    this.renderTargets();
  }

  // -- outputs ---------------------------------------------------------------------------------------
  private scheduleOutputs(): void {
    if (this.outTimer !== undefined) return;
    const wait = Math.max(0, STREAM_RENDER_MS - (Date.now() - this.lastOutRender));
    this.outTimer = setTimeout(() => {
      this.outTimer = undefined;
      this.renderOutputs();
    }, wait);
  }

  private cardData(i: number): CardData {
    const stream = this.shared.stream;
    const live: TargetStream | undefined = stream.running ? stream.targets[i] : undefined;
    if (live) {
      return {
        model: live.model || live.result?.model || this.draft.targets[i]?.model || "",
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
    const r = (this.model.get("outputs") ?? [])[i] ?? null;
    return {
      model: r?.model ?? this.draft.targets[i]?.model ?? "",
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

  private renderOutputs(): void {
    clearTimeout(this.outTimer);
    this.outTimer = undefined;
    this.lastOutRender = Date.now();
    const stream = this.shared.stream;
    const count = stream.running ? stream.targets.length : Math.max((this.model.get("outputs") ?? []).length, 1);
    while (this.cards.length > count) this.cards.pop()!.el.remove();
    while (this.cards.length < count) {
      const card = this.newCard(this.cards.length);
      this.cards.push(card);
      this.outputsBox.append(card.el);
    }
    const previous = this.model.get("previous") ?? [];
    const manual = this.model.get("tool_mode") === "manual";
    this.cards.forEach((card, i) => this.updateCard(card, this.cardData(i), previous[i], manual));
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
      this.renderOutputs();
    });
    return card;
  }

  private updateCard(card: CardView, d: CardData, previous: string | null | undefined, manual: boolean): void {
    const calls = d.toolCalls.map((c) => `${c.id}:${c.result === undefined || c.result === null ? 0 : 1}:${c.error ? 1 : 0}`).join(",");
    const key = [d.status, d.model, d.streaming, d.text.length, d.text.slice(-24), calls, d.tokens_in, d.tokens_out, d.error, manual].join("|");
    if (key === card.key && d.result === card.result) {
      this.updateDiff(card, d, previous); // (the diff toggle, or a new `previous`)
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
    card.tools.replaceChildren(...d.toolCalls.map((c) => this.toolCard(c, manual)));

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
      for (const m of r?.media ?? []) card.text.append(this.mediaBlock(m));
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

    this.updateDiff(card, d, previous);
  }

  private updateDiff(card: CardView, d: CardData, previous: string | null | undefined): void {
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

  private toolCard(c: ToolCallInfo, manual: boolean): HTMLElement {
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

  private mediaBlock(m: MediaInfo): HTMLElement {
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

  // -- history ---------------------------------------------------------------------------------------
  private historyPage(offset: number): void {
    const scope = this.historyScope.value === "all" ? "all" : "widget";
    this.command({ type: "history", scope, offset: Math.max(0, offset) });
  }

  private renderHistory(): void {
    const page = this.model.get("history") ?? { scope: "widget", offset: 0, total: 0, items: [] };
    const items = page.items ?? [];
    this.historyToggle.textContent = `${this.historyOpen ? "▾" : "▸"} History${page.total ? ` (${page.total})` : ""}`;
    this.historyToggle.setAttribute("aria-expanded", String(this.historyOpen));
    this.historyBody.hidden = !this.historyOpen;
    if (page.scope && this.historyScope.value !== page.scope) this.historyScope.value = page.scope;
    const offset = page.offset ?? 0;
    const total = page.total ?? 0;
    this.historyRange.textContent = items.length ? `${offset + 1}–${offset + items.length} of ${total}` : total ? `– of ${total}` : "no runs yet";
    this.historyPrev.disabled = offset <= 0;
    this.historyNext.disabled = offset + items.length >= total;
    if (!this.historyOpen) return;
    this.historyList.replaceChildren(...items.map((it) => {
      const restore = h("button", { class: "nbp-btn nbp-btn-small", testid: "nbp-history-restore", type: "button", text: "Restore", title: "Load this run (and its compare group) into the editor" });
      restore.addEventListener("click", () => this.command({ type: "restore", run_id: it.id }));
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

  // -- registry --------------------------------------------------------------------------------------
  private renderRegistry(): void {
    const ref = this.model.get("prompt_ref") ?? "";
    this.promptRef.textContent = ref || "not saved";
    this.promptRef.classList.toggle("nbp-muted", !ref);
    if (ref) this.saveName.placeholder = ref.split("@")[0] ?? "ns/slug";
  }

  /** The labels of the last save (from the widget or `pg.save_version(..., labels=[...])`). */
  private renderLabels(): void {
    const text = (this.model.get("prompt_labels") ?? []).join(", ");
    if (splitList(this.saveLabels.value).join(", ") !== text) this.saveLabels.value = text;
  }

  private saveVersion(): void {
    const name = this.saveName.value.trim() || this.saveName.placeholder.trim();
    if (!name || name === "ns/slug") {
      this.saveName.focus();
      return;
    }
    this.command({ type: "save_version", name, labels: splitList(this.saveLabels.value), conversation: this.saveConversation.checked });
  }

  private loadVersion(): void {
    const ref = this.loadRef.value.trim();
    if (!ref) {
      this.loadRef.focus();
      return;
    }
    this.command({ type: "load_version", ref });
  }
}

// -- the anywidget module -----------------------------------------------------------------------------

export default {
  initialize({ model }: { model: PlaygroundModel }): () => void {
    const shared = createShared(model);
    return () => shared.detach();
  },

  render({ model, el }: { model: PlaygroundModel; el: HTMLElement }): () => void {
    // a host that does not call initialize (or a proxy we cannot match): this view keeps its own state
    let shared = lookupShared(model);
    const own = shared === undefined;
    if (shared === undefined) shared = createShared(model);
    const view = new PlaygroundView(model, el, shared);
    model.send({ type: "ready" } satisfies Command);
    return () => {
      view.destroy();
      if (own) shared.detach();
    };
  },
};
