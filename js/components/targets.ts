// The Models section: one card per target (model picker with key badge, parameters, response
// format, tools), adding and removing cards. It edits the shell's draft list in place.

import { autosize, captureFocus, h, restoreFocus, uniqueId } from "../lib/dom";
import { parseJson, splitList, truncate } from "../lib/format";
import { MAX_TARGETS, type ModelChoice, type Target } from "../lib/types";
import { clone } from "./common";

function keyLabel(status: string): string {
  if (status === "set") return "key set";
  if (status === "missing") return "key missing";
  if (status === "not needed") return "no key needed";
  return status ? `key ${status}` : "";
}

/** Owns the Models section (`el`) and the model-name datalist in it. */
export class TargetsEditor {
  readonly el: HTMLElement;
  private readonly box: HTMLDivElement;
  private readonly addBtn: HTMLButtonElement;
  private readonly datalist: HTMLDataListElement;
  private keyBadges: (() => void)[] = [];
  private targets: Target[] = [];
  private toolNames: string[] = [];
  private models: ModelChoice[] = [];

  /** `changed` is told after every edit of the list. */
  constructor(private readonly changed: () => void) {
    this.datalist = h("datalist", { id: uniqueId("nbp-models") });
    this.box = h("div", { class: "nbp-grid nbp-targets" });
    this.addBtn = h("button", { class: "nbp-btn nbp-btn-ghost", testid: "nbp-add-target", type: "button", text: "+ Model", title: `Compare up to ${MAX_TARGETS} models` });
    this.addBtn.addEventListener("click", () => this.addTarget());
    this.el = h("section", { class: "nbp-section" },
      h("div", { class: "nbp-section-head" }, h("span", { class: "nbp-section-title", text: "Models" }), this.addBtn),
      this.box, this.datalist);
  }

  /** The models the kernel knows (datalist suggestions and key badges). */
  setModels(models: ModelChoice[]): void {
    this.models = models;
    this.datalist.replaceChildren(...models.map((m) => {
      const label = [m.provider, keyLabel(m.key_status)].filter(Boolean).join(" · ");
      return h("option", { value: m.model, label });
    }));
    for (const fn of this.keyBadges) fn();
  }

  /** Draw `targets` (the list edits go to); `toolNames` are the tools the kernel was given. */
  render(targets: Target[], toolNames: string[]): void {
    this.targets = targets;
    this.toolNames = toolNames;
    this.redraw();
  }

  private redraw(): void {
    const focus = captureFocus(this.box);
    this.keyBadges = [];
    const targets = this.targets;
    this.box.replaceChildren(...targets.map((t, i) => this.targetCard(t, i, targets.length)));
    this.addBtn.disabled = targets.length >= MAX_TARGETS;
    restoreFocus(this.box, focus);
    for (const ta of this.box.querySelectorAll<HTMLTextAreaElement>("textarea")) autosize(ta);
  }

  private targetCard(t: Target, i: number, count: number): HTMLDivElement {
    t.params ??= {};
    const edited = (): void => this.changed();

    const modelInput = h("input", { class: "nbp-input nbp-model-input", testid: "nbp-target-model", type: "text", list: this.datalist.id, spellcheck: "false", placeholder: "provider/model", "aria-label": "Model" });
    modelInput.value = t.model ?? "";
    const keyBadge = h("span", { class: "nbp-key" });
    const updateKey = (): void => {
      const choice = this.models.find((m) => m.model === modelInput.value.trim());
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

    const toolNames = this.toolNames;
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
      if (this.targets.length <= 1) return;
      this.targets.splice(i, 1);
      this.changed();
      this.redraw();
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
    if (this.targets.length >= MAX_TARGETS) return;
    const last = this.targets[this.targets.length - 1];
    this.targets.push(last ? clone(last) : { model: "", params: {}, response_format: null, tools: true, kind: "auto" });
    this.changed();
    this.redraw();
  }
}
