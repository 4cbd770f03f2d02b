// A tiny DOM builder and a few helpers for the vanilla-DOM views.

type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue>;
export type Child = Node | string | number | null | undefined | false;

/**
 * `h("button", { class: "x", testid: "nbp-run", text: "Run", title: "..." }, ...children)`.
 * `class` sets className, `testid` sets data-testid, `text` sets textContent; `false`/`null`/`undefined`
 * attributes are left out and `true` sets an empty attribute.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = String(value);
    else if (key === "testid") el.setAttribute("data-testid", String(value));
    else if (key === "text") el.textContent = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "number" ? String(c) : c);
  }
}

export function select(
  options: readonly (string | [value: string, label: string])[],
  value: string,
  attrs: Attrs = {},
): HTMLSelectElement {
  const el = h("select", attrs);
  for (const o of options) {
    const [v, label] = typeof o === "string" ? [o, o] : o;
    el.append(h("option", { value: v, text: label }));
  }
  el.value = value;
  return el;
}

/** Grow a textarea to fit its content (no inner scrollbar). Skipped while it is not laid out. */
export function autosize(ta: HTMLTextAreaElement): void {
  if (!ta.isConnected) return;
  ta.style.height = "auto";
  const height = ta.scrollHeight;
  if (height > 0) ta.style.height = `${height}px`;
  else ta.style.removeProperty("height");
}

/** Elements that take typing: their keys must not reach the notebook's shortcuts. */
export function isTextEntry(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  const tag = target.tagName;
  return tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT" || target.isContentEditable;
}

/** A value for a double-quoted attribute selector. */
function attrEscape(value: string): string {
  return value.replace(/["\\]/g, "\\$&");
}

interface FocusMark {
  testid: string;
  key: string | null;
  start: number | null;
  end: number | null;
}

/** Where the focus is inside `container` (by test id and the nearest data-index / data-name). */
export function captureFocus(container: Element): FocusMark | null {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !container.contains(active)) return null;
  const testid = active.getAttribute("data-testid");
  if (!testid) return null;
  const owner = active.parentElement?.closest("[data-index],[data-name]");
  const key = owner ? owner.getAttribute("data-index") ?? `name:${owner.getAttribute("data-name")}` : null;
  let start: number | null = null;
  let end: number | null = null;
  if (active instanceof HTMLTextAreaElement || active instanceof HTMLInputElement) {
    try {
      start = active.selectionStart;
      end = active.selectionEnd;
    } catch {
      // number inputs have no selection
    }
  }
  return { testid, key, start, end };
}

/** Put the focus back after `container` was rebuilt. */
export function restoreFocus(container: Element, mark: FocusMark | null): void {
  if (mark === null) return;
  let scope: Element | null = container;
  if (mark.key !== null) {
    const sel = mark.key.startsWith("name:")
      ? `[data-name="${attrEscape(mark.key.slice(5))}"]`
      : `[data-index="${attrEscape(mark.key)}"]`;
    scope = container.querySelector(sel);
  }
  const el = scope?.querySelector<HTMLElement>(`[data-testid="${attrEscape(mark.testid)}"]`);
  if (!el) return;
  el.focus({ preventScroll: true });
  if ((el instanceof HTMLTextAreaElement || el instanceof HTMLInputElement) && mark.start !== null) {
    try {
      el.setSelectionRange(mark.start, mark.end ?? mark.start);
    } catch {
      // not a text input
    }
  }
}

let uid = 0;
export function uniqueId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}-${Math.random().toString(36).slice(2, 8)}`;
}
