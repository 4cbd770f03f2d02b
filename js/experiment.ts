// The experiment view (`exp.show()`): data rows × variants, each answer with its scores coloured.
// The kernel pages the matrix (src/nbplayground/widgets/experiment_view.py): this view writes the `query`
// trait (filters and offset) and draws the `page` trait it gets back. A click on an answer sends
// {type: "open", run_id}; the kernel shows that run in a Playground below the matrix.
// Every text here comes from a model or a data row: it is set as textContent, never parsed as HTML.

import { h, isTextEntry, select } from "./lib/dom";
import type { AnyModel } from "./lib/types";

// -- the protocol (this widget's own; see the module docstring of experiment_view.py) -------------------

export interface ScoreState {
  value: number | null;
  passed: boolean | null;
  reason: string | null;
  error: string | null;
}

export interface CellState {
  run_id: string | null;
  repeat: number;
  status: string;
  output: string;
  truncated: boolean;
  error: string | null;
  latency_ms: number | null;
  cost_usd: number | null;
  scores: Record<string, ScoreState>;
}

export interface RowState {
  key: string;
  cells: Record<string, CellState[]>;
}

export interface PageState {
  offset: number;
  limit: number;
  total: number;
  all: number;
  rows: RowState[];
}

export interface Query {
  variant?: string;
  status?: string;
  evaluator?: string;
  outcome?: string;
  text?: string;
  /** "<evaluator>:asc" (lowest scores first) or "<evaluator>:desc". */
  sort?: string;
  offset?: number;
  limit?: number;
}

export interface ExperimentTraits {
  title: string;
  variants: string[];
  evaluators: string[];
  statuses: string[];
  query: Query;
  page: PageState;
  opened: string;
  error: string;
}

export type ExperimentCommand = { type: "open"; run_id: string };
export type ExperimentModel = AnyModel<ExperimentTraits>;

const DEBOUNCE_MS = 300;
const OUTCOMES: [string, string][] = [["", "any outcome"], ["pass", "passed"], ["fail", "failed"],
  ["error", "errored"], ["disagree", "variants disagree"]];

/** What a score says: pass, fail, error, or a plain value. */
export function outcome(s: ScoreState): "pass" | "fail" | "error" | "value" {
  if (s.error !== null || s.value === null) return "error";
  if (s.passed === null) return "value";
  return s.passed ? "pass" : "fail";
}

function scoreLabel(name: string, s: ScoreState): string {
  const kind = outcome(s);
  if (kind === "error") return `${name}: error`;
  if (kind === "value") return `${name}: ${Number(s.value).toPrecision(3).replace(/\.?0+$/, "")}`;
  return `${name}: ${kind}`;
}

/** A value in [0, 1] as a hue from red (0) to green (1); other values get no colour. */
function valueColour(value: number | null): string | null {
  if (value === null || !(value >= 0 && value <= 1)) return null;
  return `hsl(${Math.round(value * 120)} 55% 45% / 0.25)`;
}

// -- one view -------------------------------------------------------------------------------------------

class ExperimentView {
  private readonly root: HTMLDivElement;
  private readonly heading = h("div", { class: "nbp-x-title" });
  private readonly counts = h("span", { class: "nbp-x-counts", testid: "nbp-exp-counts" });
  private readonly errorBox = h("div", { class: "nbp-x-error", testid: "nbp-exp-error", hidden: true });
  private readonly table = h("table", { class: "nbp-x-table", testid: "nbp-exp-matrix" });
  private readonly filters = h("div", { class: "nbp-x-filters" });
  private readonly pager = h("div", { class: "nbp-x-pager" });
  private readonly text = h("input", { type: "search", class: "nbp-x-text", testid: "nbp-exp-filter-text",
    placeholder: "search answers, errors, rows", "aria-label": "search" });
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly model: ExperimentModel, host: HTMLElement) {
    this.root = h("div", { class: "nbp-x-root", testid: "nbp-experiment" },
      h("div", { class: "nbp-x-head" }, this.heading, this.counts), this.filters, this.errorBox,
      h("div", { class: "nbp-x-scroll" }, this.table), this.pager);
    this.root.addEventListener("keydown", (e) => {
      // typing in the filters never reaches the notebook's shortcuts
      if (isTextEntry(e.target) && !e.ctrlKey && !e.metaKey && e.key !== "Escape") e.stopPropagation();
    });
    this.text.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.setQuery({ text: this.text.value }), DEBOUNCE_MS);
    });
    host.replaceChildren(this.root);
    const on = (name: string, fn: () => void): void => {
      this.model.on(name, fn);
      this.unsubscribe.push(() => this.model.off(name, fn));
    };
    on("change:page", () => this.renderPage());
    on("change:opened", () => this.markOpened());
    on("change:error", () => this.renderError());
    on("change:variants", () => this.renderAll());
    on("change:evaluators", () => this.renderFilters());
    on("change:statuses", () => this.renderFilters());
    this.renderAll();
  }

  destroy(): void {
    clearTimeout(this.timer);
    for (const off of this.unsubscribe) off();
  }

  private query(): Query {
    return { ...(this.model.get("query") ?? {}) };
  }

  /** A new filter starts again at the first page; `offset` alone moves the page. */
  private setQuery(change: Query): void {
    const next = { ...this.query(), ...change };
    if (!("offset" in change)) next.offset = 0;
    this.model.set("query", next);
    this.model.save_changes();
  }

  private renderAll(): void {
    this.heading.textContent = `Experiment ${this.model.get("title") ?? ""}`;
    this.renderFilters();
    this.renderError();
    this.renderPage();
  }

  private renderFilters(): void {
    const q = this.query();
    const choice = (testid: string, key: keyof Query, any: string, values: (string | [string, string])[],
      label: string): HTMLSelectElement => {
      const el = select([["", any], ...values], String(q[key] ?? ""), { testid, "aria-label": label });
      el.addEventListener("change", () => this.setQuery({ [key]: el.value }));
      return el;
    };
    const evaluators = this.model.get("evaluators") ?? [];
    const clear = h("button", { type: "button", class: "nbp-x-button", testid: "nbp-exp-clear", text: "Clear" });
    clear.addEventListener("click", () => {
      this.text.value = "";
      this.model.set("query", { limit: this.query().limit ?? 50 });
      this.model.save_changes();
      this.renderFilters();
    });
    this.text.value = q.text ?? "";
    this.filters.replaceChildren(
      choice("nbp-exp-filter-variant", "variant", "every variant", this.model.get("variants") ?? [], "variant"),
      choice("nbp-exp-filter-status", "status", "any status", this.model.get("statuses") ?? [], "status"),
      choice("nbp-exp-filter-evaluator", "evaluator", "any evaluator", evaluators, "evaluator"),
      choice("nbp-exp-filter-outcome", "outcome", "any outcome", OUTCOMES.slice(1), "outcome"),
      choice("nbp-exp-sort", "sort", "in row order", evaluators.flatMap((ev): [string, string][] =>
        [[`${ev}:asc`, `${ev}: lowest first`], [`${ev}:desc`, `${ev}: highest first`]]), "sort"),
      this.text, clear,
    );
  }

  private renderError(): void {
    const error = this.model.get("error") ?? "";
    this.errorBox.textContent = error;
    this.errorBox.hidden = !error;
  }

  private renderPage(): void {
    const page = this.model.get("page") ?? { offset: 0, limit: 50, total: 0, all: 0, rows: [] };
    const variants = this.model.get("variants") ?? [];
    const first = page.rows.length ? page.offset + 1 : 0;
    const last = page.offset + page.rows.length;
    this.counts.textContent = page.total === page.all
      ? `rows ${first}–${last} of ${page.total}`
      : `rows ${first}–${last} of ${page.total} matching (${page.all} in all)`;
    const head = h("tr", {}, h("th", { text: "row" }), ...variants.map((v) => h("th", { text: v })));
    const body = h("tbody");
    for (const row of page.rows) {
      const tr = h("tr", { testid: "nbp-exp-row", "data-row": row.key },
        h("th", { class: "nbp-x-key", text: row.key, title: row.key }));
      for (const v of variants) {
        const cells = row.cells[v] ?? [];
        const td = h("td", { "data-variant": v });
        if (!cells.length) td.append(h("span", { class: "nbp-x-none", text: "—", title: "no answer" }));
        for (const c of cells) td.append(this.cell(row.key, v, c, cells.length > 1));
        tr.append(td);
      }
      body.append(tr);
    }
    if (!page.rows.length) {
      body.append(h("tr", {}, h("td", { class: "nbp-x-empty", colspan: variants.length + 1,
        text: page.all ? "No row matches these filters." : "This experiment has no answers yet." })));
    }
    this.table.replaceChildren(h("thead", {}, head), body);
    this.renderPager(page);
    this.markOpened();
  }

  private cell(row: string, variant: string, c: CellState, repeats: boolean): HTMLElement {
    const el = h("div", { class: "nbp-x-cell", testid: "nbp-exp-cell", "data-row": row, "data-variant": variant,
      "data-run-id": c.run_id ?? "", "data-status": c.status, role: c.run_id ? "button" : null,
      tabindex: c.run_id ? 0 : null, title: c.run_id ? "Open this run in a Playground" : "not run" });
    if (repeats) el.append(h("span", { class: "nbp-x-repeat", text: `#${c.repeat + 1}` }));
    if (c.status !== "ok") el.append(h("span", { class: "nbp-x-status", text: c.status }));
    const text = c.output || c.error || "";
    el.append(h("div", { class: "nbp-x-output", testid: "nbp-exp-output", text, "data-truncated": c.truncated ? "true" : null }));
    const scores = h("div", { class: "nbp-x-scores" });
    for (const [name, s] of Object.entries(c.scores)) {
      const kind = outcome(s);
      const chip = h("span", { class: "nbp-x-score", testid: "nbp-exp-score", "data-evaluator": name,
        "data-outcome": kind, text: scoreLabel(name, s), title: s.error ?? s.reason ?? null });
      const colour = kind === "value" ? valueColour(s.value) : null;
      if (colour) chip.style.background = colour;
      scores.append(chip);
    }
    el.append(scores);
    if (c.run_id) {
      const open = (): void => this.model.send({ type: "open", run_id: c.run_id ?? "" } satisfies ExperimentCommand);
      el.addEventListener("click", open);
      el.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          open();
        }
      });
    }
    return el;
  }

  private renderPager(page: PageState): void {
    const button = (testid: string, label: string, offset: number, disabled: boolean): HTMLButtonElement => {
      const b = h("button", { type: "button", class: "nbp-x-button", testid, text: label, disabled });
      b.addEventListener("click", () => this.setQuery({ offset }));
      return b;
    };
    const pages = Math.max(1, Math.ceil(page.total / page.limit));
    const current = Math.floor(page.offset / page.limit) + 1;
    this.pager.replaceChildren(
      button("nbp-exp-prev", "‹ Previous", Math.max(0, page.offset - page.limit), page.offset <= 0),
      h("span", { testid: "nbp-exp-page", text: `page ${current} of ${pages}` }),
      button("nbp-exp-next", "Next ›", page.offset + page.limit, page.offset + page.limit >= page.total),
    );
  }

  private markOpened(): void {
    const opened = this.model.get("opened") ?? "";
    for (const el of this.table.querySelectorAll<HTMLElement>(".nbp-x-cell")) {
      el.classList.toggle("nbp-x-opened", !!opened && el.dataset.runId === opened);
    }
  }
}

export default {
  render({ model, el }: { model: ExperimentModel; el: HTMLElement }): () => void {
    const view = new ExperimentView(model, el);
    return () => view.destroy();
  },
};
