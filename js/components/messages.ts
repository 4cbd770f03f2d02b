// The messages editor: one row per message (role, text with {{placeholders}} highlighted, tool calls
// and results), reordering and deleting. It edits the shell's draft list in place.

import { autosize, captureFocus, h, restoreFocus, select } from "../lib/dom";
import { prettyJson, truncate } from "../lib/format";
import { isTemplateRole, scan } from "../lib/placeholders";
import { ROLES, type Message, type Role } from "../lib/types";
import { parseArguments } from "./common";

const escapeHtml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Told after every edit of the list; `variables` says whether the placeholders may have changed
 * (the Variables section follows them).
 */
export type MessagesChanged = (variables: boolean) => void;

/** Owns the Messages section (`el`). */
export class MessagesEditor {
  readonly el: HTMLElement;
  private readonly box: HTMLDivElement;
  private readonly addRole: HTMLSelectElement;
  private highlighters: (() => void)[] = [];
  private messages: Message[] = [];
  private variables: Record<string, string> = {};

  constructor(private readonly changed: MessagesChanged) {
    this.box = h("div", { class: "nbp-messages" });
    this.addRole = select(ROLES, "user", { class: "nbp-select", testid: "nbp-add-message-role", title: "Role of the new message" });
    const addMsg = h("button", { class: "nbp-btn nbp-btn-ghost", testid: "nbp-add-message", type: "button", text: "+ Message" });
    addMsg.addEventListener("click", () => this.addMessage());
    this.el = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Messages" })),
      this.box,
      h("div", { class: "nbp-row-add" }, this.addRole, addMsg));
  }

  /** Draw `messages` (the list edits go to) with placeholders marked against `variables`. */
  render(messages: Message[], variables: Record<string, string>): void {
    this.messages = messages;
    this.variables = variables;
    this.redraw();
  }

  /** The variables changed: re-mark the placeholders (missing or not) without redrawing the rows. */
  highlight(variables: Record<string, string>): void {
    this.variables = variables;
    for (const fn of this.highlighters) fn();
  }

  private redraw(): void {
    const focus = captureFocus(this.box);
    this.highlighters = [];
    const msgs = this.messages;
    this.box.replaceChildren(...msgs.map((m, i) => this.messageRow(m, i, msgs)));
    restoreFocus(this.box, focus);
    for (const ta of this.box.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
  }

  private messageRow(m: Message, i: number, all: Message[]): HTMLDivElement {
    const role = (ROLES as readonly string[]).includes(m.role) ? m.role : "user";
    const roleSel = select(ROLES, role, { class: "nbp-select nbp-role", testid: "nbp-message-role", "aria-label": "Role" });
    roleSel.addEventListener("change", () => this.setRole(i, roleSel.value as Role));

    const backdrop = h("div", { class: "nbp-backdrop", "aria-hidden": "true" });
    const ta = h("textarea", {
      class: "nbp-textarea", testid: "nbp-message-content", rows: 1, spellcheck: "false",
      placeholder: contentPlaceholder(m, all), "aria-label": `${role} message`,
    });
    ta.value = typeof m.content === "string" ? m.content : m.content == null ? "" : JSON.stringify(m.content);
    const highlight = (): void => {
      backdrop.innerHTML = highlightHtml(ta.value, role, this.variables);
    };
    highlight();
    this.highlighters.push(highlight);
    ta.addEventListener("input", () => {
      const msg = this.messages[i];
      if (!msg) return;
      msg.content = ta.value;
      highlight();
      autosize(ta);
      this.changed(isTemplateRole(msg.role));
    });
    const editor = h("div", { class: "nbp-editor" }, backdrop, ta);

    const main = h("div", { class: "nbp-message-main" }, editor);
    if (role === "tool") {
      const call = findCall(all, m.tool_call_id, i);
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

  private setRole(i: number, role: Role): void {
    const m = this.messages[i];
    if (!m) return;
    m.role = role;
    if (role !== "tool") delete m.tool_call_id;
    if (role !== "assistant") delete m.tool_calls;
    this.redraw();
    this.changed(true);
  }

  private addMessage(): void {
    const role = (this.addRole.value as Role) || "user";
    this.messages.push({ role, content: "" });
    this.redraw();
    this.changed(false);
    const rows = this.box.querySelectorAll<HTMLTextAreaElement>('[data-testid="nbp-message-content"]');
    rows[rows.length - 1]?.focus({ preventScroll: false });
  }

  private moveMessage(i: number, delta: number): void {
    const msgs = this.messages;
    const j = i + delta;
    if (j < 0 || j >= msgs.length) return;
    [msgs[i], msgs[j]] = [msgs[j]!, msgs[i]!];
    this.redraw();
    this.changed(true);
  }

  private deleteMessage(i: number): void {
    this.messages.splice(i, 1);
    this.redraw();
    this.changed(true);
  }
}

function contentPlaceholder(m: Message, all: Message[]): string {
  if (m.role === "system") return "System instructions… use {{name}} for variables";
  if (m.role === "user") return "User message… use {{name}} for variables";
  if (m.role === "assistant") return m.tool_calls?.length ? "(tool calls)" : "Assistant answer";
  const call = findCall(all, m.tool_call_id, all.indexOf(m));
  return call ? `Type the result of ${call.function?.name ?? "the tool"}(…) here, then Run` : "Tool result";
}

function findCall(all: Message[], id: string | undefined, before: number): { function?: { name?: string } } | undefined {
  if (!id) return undefined;
  for (let j = Math.min(before, all.length) - 1; j >= 0; j--) {
    const hit = all[j]?.tool_calls?.find((c) => c.id === id);
    if (hit) return hit;
  }
  return undefined;
}

function highlightHtml(text: string, role: string, vars: Record<string, string>): string {
  // a trailing newline needs a character after it, or the backdrop is one line short
  const tail = text.endsWith("\n") ? " " : "";
  if (!isTemplateRole(role)) return escapeHtml(text) + tail;
  const found = scan(text);
  if (!found.length) return escapeHtml(text) + tail;
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
