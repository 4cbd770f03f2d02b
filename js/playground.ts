// The Playground anywidget front end (anywidget >= 0.9: `export default { initialize, render }`).
// Contract: docs/widget-protocol.md. State lives in traits; streaming arrives as custom messages that
// `initialize` folds (once per model) into a shared StreamState every view of the model reads.
// The view is a shell: it owns the drafts (edits not yet written to the model) and the wiring of
// traits and commands; the sections are components (js/components/), each drawing its own DOM.

import { clone } from "./components/common";
import { HistoryPanel, RegistryBar } from "./components/history";
import { MessagesEditor } from "./components/messages";
import { OutputsView } from "./components/outputs";
import { TargetsEditor } from "./components/targets";
import { Toolbar } from "./components/toolbar";
import { VariablesEditor } from "./components/variables";
import { autosize, h, isTextEntry } from "./lib/dom";
import { messageVariableNames } from "./lib/placeholders";
import type { Command, Message, PlaygroundModel, Target } from "./lib/types";
import { createShared, lookupShared, type Shared, type SharedEvent } from "./shared";

const DEBOUNCE_MS = 300;
const STREAM_RENDER_MS = 100;

// -- one view -----------------------------------------------------------------------------------------

type DraftKey = "messages" | "variables" | "targets";

class PlaygroundView {
  private readonly root: HTMLDivElement;
  private readonly draft: { messages: Message[]; variables: Record<string, string>; targets: Target[] };
  private readonly dirty = new Set<DraftKey>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private committing = false;
  private readonly unsubscribe: (() => void)[] = [];

  private readonly toolbar: Toolbar;
  private readonly messages: MessagesEditor;
  private readonly variables: VariablesEditor;
  private readonly targets: TargetsEditor;
  private readonly outputs: OutputsView;
  private outTimer: ReturnType<typeof setTimeout> | undefined;
  private lastOutRender = 0;
  private readonly history: HistoryPanel;
  private readonly registry: RegistryBar;
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

    this.toolbar = new Toolbar(model.get("tool_mode") ?? "auto", {
      onRun: () => this.command({ type: "run" }),
      onClearAndRun: () => this.command({ type: "clear_and_run" }),
      onStop: () => this.command({ type: "stop" }),
      onToolMode: (mode) => {
        this.model.set("tool_mode", mode);
        this.model.save_changes();
      },
    });
    this.messages = new MessagesEditor((variables) => {
      this.touch("messages");
      if (variables) this.renderVariables();
    });
    this.variables = new VariablesEditor((name, value) => {
      this.draft.variables = { ...this.draft.variables, [name]: value };
      this.touch("variables");
      this.messages.highlight(this.draft.variables);
      this.renderToolbar();
    });
    this.targets = new TargetsEditor(() => this.touch("targets"));
    this.outputs = new OutputsView(() => this.renderOutputs());
    const send = (msg: Command): void => this.command(msg);
    this.history = new HistoryPanel(() => this.model.get("history"), send);
    this.registry = new RegistryBar(send);

    const footer = h("div", { class: "nbp-footer" }, this.history.toggle, this.registry.el);
    this.root = h("div", { class: "nbp-root", testid: "nbp-playground", "data-status": model.get("status") ?? "idle" },
      this.toolbar.el, this.toolbar.errorBox, this.messages.el, this.variables.el, this.targets.el, this.outputs.el,
      footer, this.history.el);
    this.root.addEventListener("keydown", (e) => this.onKeydown(e));

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
    on("change:models", () => this.targets.setModels(this.model.get("models") ?? []));
    on("change:tool_names", () => this.renderTargets());
    on("change:tool_mode", () => {
      this.toolbar.setToolMode(this.model.get("tool_mode") ?? "auto");
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
    on("change:history", () => this.history.render(this.model.get("history")));
    on("change:prompt_ref", () => this.registry.renderRef(this.model.get("prompt_ref") ?? ""));
    on("change:prompt_labels", () => this.registry.renderLabels(this.model.get("prompt_labels") ?? []));

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
      this.messages.highlight(this.draft.variables);
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
    this.targets.setModels(this.model.get("models") ?? []);
    this.renderTargets();
    this.renderOutputs();
    this.history.render(this.model.get("history"));
    this.registry.renderRef(this.model.get("prompt_ref") ?? "");
    this.registry.renderLabels(this.model.get("prompt_labels") ?? []);
  }

  private renderToolbar(): void {
    const status = this.model.get("status") ?? "idle";
    this.root.setAttribute("data-status", status);
    this.toolbar.render({ status, notice: this.shared.notice, error: this.model.get("error"), missing: this.missingNames() });
  }

  private renderError(): void {
    this.toolbar.renderError(this.model.get("error") ?? "");
  }

  private renderMessages(): void {
    this.messages.render(this.draft.messages, this.draft.variables);
    this.autosizeAll();
  }

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
    this.variables.render(this.variableNames(), this.draft.variables);
    this.renderToolbar();
  }

  private renderTargets(): void {
    this.targets.render(this.draft.targets, this.model.get("tool_names") ?? []);
    this.autosizeAll();
  }

  private autosizeAll(): void {
    for (const ta of this.root.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
  }

  // -- outputs ---------------------------------------------------------------------------------------
  /** Stream updates redraw at most every STREAM_RENDER_MS. */
  private scheduleOutputs(): void {
    if (this.outTimer !== undefined) return;
    const wait = Math.max(0, STREAM_RENDER_MS - (Date.now() - this.lastOutRender));
    this.outTimer = setTimeout(() => {
      this.outTimer = undefined;
      this.renderOutputs();
    }, wait);
  }

  private renderOutputs(): void {
    clearTimeout(this.outTimer);
    this.outTimer = undefined;
    this.lastOutRender = Date.now();
    this.outputs.render({
      stream: this.shared.stream,
      outputs: this.model.get("outputs") ?? [],
      previous: this.model.get("previous") ?? [],
      models: this.draft.targets.map((t) => t.model),
      manual: this.model.get("tool_mode") === "manual",
    });
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
