// The Variables section: one value box per {{placeholder}} of the messages, marked when empty.

import { autosize, captureFocus, h, restoreFocus } from "../lib/dom";

/** Told when the user types a value. */
export type VariableChanged = (name: string, value: string) => void;

/** Owns the Variables section (`el`), hidden while the messages have no placeholder. */
export class VariablesEditor {
  readonly el: HTMLElement;
  private readonly box: HTMLDivElement;

  constructor(private readonly changed: VariableChanged) {
    this.box = h("div", { class: "nbp-variables" });
    this.el = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Variables" })),
      this.box);
  }

  /** One row per name, in order; rows already on screen are kept (focus and caret stay put). */
  render(names: string[], variables: Record<string, string>): void {
    this.el.hidden = names.length === 0;
    const existing = new Map<string, HTMLElement>();
    for (const row of this.box.querySelectorAll<HTMLElement>(":scope > .nbp-variable")) {
      existing.set(row.getAttribute("data-name") ?? "", row);
    }
    const rows: HTMLElement[] = [];
    for (const name of names) {
      const value = variables[name];
      const text = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
      let row = existing.get(name);
      if (row) {
        const input = row.querySelector<HTMLTextAreaElement>('[data-testid="nbp-variable-input"]');
        if (input && input.value !== text) input.value = text;
      } else {
        row = this.variableRow(name, text);
      }
      markMissing(row, text);
      rows.push(row);
    }
    const same = rows.length === this.box.children.length && rows.every((r, k) => this.box.children[k] === r);
    if (!same) {
      const focus = captureFocus(this.box);
      this.box.replaceChildren(...rows);
      restoreFocus(this.box, focus);
    }
    for (const ta of this.box.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
  }

  private variableRow(name: string, text: string): HTMLElement {
    const input = h("textarea", { class: "nbp-textarea nbp-var-input", testid: "nbp-variable-input", rows: 1, spellcheck: "false", placeholder: "value (text, or JSON for {{a.b}} paths)", "aria-label": name });
    input.value = text;
    const row = h("div", { class: "nbp-variable", testid: "nbp-variable", "data-name": name },
      h("label", { class: "nbp-var-name", title: name, text: `{{${name}}}` }), input);
    input.addEventListener("input", () => {
      markMissing(row, input.value);
      autosize(input);
      this.changed(name, input.value);
    });
    return row;
  }
}

function markMissing(row: HTMLElement, text: string): void {
  if (text === "") row.setAttribute("data-missing", "true");
  else row.removeAttribute("data-missing");
}
