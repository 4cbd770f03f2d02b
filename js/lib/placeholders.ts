// `{{ name }}` placeholders, found the way the kernel's templating module finds them
// (src/nbplayground/core/templating.py): a name followed by `.key`, `.0`, `[0]`, `["key"]` or `['key']`
// segments; `\{{name}}` (an odd number of backslashes) is an escape; in a run of three or more `{`
// only the last two can open a placeholder; `{{` around anything that is not a path stays literal.

import type { Message } from "./types";

const NAME = String.raw`[\p{L}\p{Nl}\p{No}_][\p{L}\p{N}_\-]*`;
const SEGMENT = String.raw`(?:\.[\p{L}\p{N}_\-]+|\[\s*[0-9]+\s*\]|\[\s*"[^"\n]*"\s*\]|\[\s*'[^'\n]*'\s*\])`;
const OPEN = /(\\*)(\{\{+)/gu;
const BODY = new RegExp(String.raw`\s*(${NAME}${SEGMENT}*)\s*\}\}`, "uy");
const ROOT_SPLIT = /[.[]/;

/** One placeholder in a template: `start`..`end` covers `{{ path }}` (not the escaping backslashes). */
export interface Placeholder {
  start: number;
  end: number;
  path: string;
  root: string;
}

/** Every placeholder of `template`, in order (duplicates included). */
export function scan(template: string): Placeholder[] {
  const found: Placeholder[] = [];
  if (!template || template.indexOf("{{") < 0) return found;
  OPEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = OPEN.exec(template)) !== null) {
    const slashes = m[1]!;
    const braces = m[2]!;
    const end = m.index + m[0].length;
    if (braces.length === 2 && slashes.length % 2 === 1) {
      OPEN.lastIndex = end; // escaped: literal "{{"
      continue;
    }
    BODY.lastIndex = end;
    const body = BODY.exec(template);
    if (body === null) {
      OPEN.lastIndex = end; // "{{" around something that is not a path
      continue;
    }
    const path = body[1]!;
    found.push({ start: end - 2, end: BODY.lastIndex, path, root: rootOf(path) });
    OPEN.lastIndex = BODY.lastIndex;
  }
  return found;
}

/** The root name of a path: `a` for `a.b`, `items` for `items[0]`. */
export function rootOf(path: string): string {
  return path.split(ROOT_SPLIT, 1)[0]!;
}

/** Distinct placeholder paths of a template, in order of first use. */
export function placeholders(template: string): string[] {
  return [...new Set(scan(template).map((p) => p.path))];
}

/** Distinct root names of a template's placeholders, in order of first use. */
export function rootNames(template: string): string[] {
  return [...new Set(scan(template).map((p) => p.root))];
}

/** Roles whose content is a template (assistant and tool turns hold output and are sent verbatim). */
export function isTemplateRole(role: string): boolean {
  return role === "system" || role === "user";
}

/** `variable_names`: root names of the placeholders of the system and user messages, in order. */
export function messageVariableNames(messages: readonly Message[]): string[] {
  const names = new Set<string>();
  for (const m of messages) {
    if (!isTemplateRole(m.role) || typeof m.content !== "string") continue;
    for (const p of scan(m.content)) names.add(p.root);
  }
  return [...names];
}
