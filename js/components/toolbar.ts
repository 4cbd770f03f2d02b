// The toolbar (Run / Clear & Run / Stop, tool mode, status line) and the error banner under it.

import { h, select } from "../lib/dom";
import type { PlaygroundStatus } from "../lib/types";

/** A one-line message from the kernel (a save, a refused command), shown in the status line. */
export type Notice = { text: string; kind: "info" | "error" } | null;

export type ToolMode = "auto" | "manual";

export interface ToolbarState {
  status: PlaygroundStatus;
  notice: Notice;
  /** The banner's error (a notice repeating it is not shown twice). */
  error: string;
  /** Placeholders with no value, shown as a warning when nothing else is. */
  missing: string[];
}

export interface ToolbarCallbacks {
  onRun(): void;
  onClearAndRun(): void;
  onStop(): void;
  onToolMode(mode: ToolMode): void;
}

/** Owns `.nbp-toolbar` (`el`) and `.nbp-error` (`errorBox`); the shell places both. */
export class Toolbar {
  readonly el: HTMLDivElement;
  readonly errorBox: HTMLDivElement;
  private readonly runBtn: HTMLButtonElement;
  private readonly clearRunBtn: HTMLButtonElement;
  private readonly stopBtn: HTMLButtonElement;
  private readonly toolMode: HTMLSelectElement;
  private readonly statusText: HTMLSpanElement;
  private readonly errorText: HTMLSpanElement;
  private error = "";
  private dismissedError = "";

  constructor(toolMode: ToolMode, callbacks: ToolbarCallbacks) {
    this.runBtn = h("button", { class: "nbp-btn nbp-btn-primary", testid: "nbp-run", type: "button", text: "Run", title: "Run every model (Ctrl/Cmd+Enter)" });
    this.clearRunBtn = h("button", { class: "nbp-btn", testid: "nbp-clear-run", type: "button", text: "Clear & Run", title: "Start again from the editor's messages, then run" });
    this.stopBtn = h("button", { class: "nbp-btn nbp-btn-stop", testid: "nbp-stop", type: "button", text: "Stop", title: "Stop every model (Esc)" });
    this.toolMode = select([["auto", "tools: auto"], ["manual", "tools: manual"]], toolMode, {
      class: "nbp-select", testid: "nbp-tool-mode", title: "auto: the kernel runs the tool functions; manual: you type each result",
    });
    this.statusText = h("span", { class: "nbp-status", "aria-live": "polite" });
    this.el = h("div", { class: "nbp-toolbar" },
      this.runBtn, this.clearRunBtn, this.stopBtn, this.toolMode, this.statusText);

    this.errorText = h("span", { class: "nbp-error-text" });
    const dismiss = h("button", { class: "nbp-icon-btn", type: "button", title: "Dismiss", "aria-label": "Dismiss", text: "×" });
    this.errorBox = h("div", { class: "nbp-error", testid: "nbp-error", role: "alert", hidden: true }, this.errorText, dismiss);
    dismiss.addEventListener("click", () => {
      this.dismissedError = this.error;
      this.renderError(this.error);
    });

    this.runBtn.addEventListener("click", () => callbacks.onRun());
    this.clearRunBtn.addEventListener("click", () => callbacks.onClearAndRun());
    this.stopBtn.addEventListener("click", () => callbacks.onStop());
    this.toolMode.addEventListener("change", () => callbacks.onToolMode(this.toolMode.value === "manual" ? "manual" : "auto"));
  }

  /** The kernel's tool mode (a select the user did not touch follows it). */
  setToolMode(mode: ToolMode): void {
    this.toolMode.value = mode;
  }

  render({ status, notice, error, missing }: ToolbarState): void {
    const busy = status !== "idle";
    this.runBtn.disabled = busy;
    this.clearRunBtn.disabled = busy;
    this.stopBtn.disabled = status !== "running";
    let text = "";
    let kind = "";
    if (status === "running") text = "Running… (Esc stops)";
    else if (status === "stopping") text = "Stopping…";
    else if (notice && !(notice.kind === "error" && notice.text === error)) {
      // (an error the banner already shows is not repeated here)
      text = notice.text;
      kind = notice.kind;
    } else if (missing.length) {
      text = `No value for ${missing.map((n) => `{{${n}}}`).join(", ")}`;
      kind = "warn";
    } else {
      text = "Ctrl/Cmd+Enter runs";
      kind = "hint";
    }
    this.statusText.textContent = text;
    this.statusText.className = `nbp-status${kind ? ` nbp-status-${kind}` : ""}`;
    this.statusText.title = text;
  }

  /** The banner: the kernel's error until the user dismisses it (a new error shows again). */
  renderError(error: string): void {
    this.error = error;
    if (error !== this.dismissedError) this.dismissedError = "";
    this.errorText.textContent = error;
    this.errorBox.hidden = !error || error === this.dismissedError;
  }
}
