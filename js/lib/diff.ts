// Word-level diff of two answers (jsdiff `diffWords`) as HTML: removed words in <del>, added in <ins>.

import { diffWords } from "diff";

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

export interface WordDiff {
  html: string;
  added: number;
  removed: number;
}

/**
 * `previous` → `current` as HTML (text escaped, whitespace kept by the container's CSS). Gives up after
 * `timeoutMs` on texts too different to diff quickly, and says so instead of freezing the page.
 */
export function wordDiff(previous: string, current: string, timeoutMs = 1000): WordDiff {
  const changes = diffWords(previous ?? "", current ?? "", { timeout: timeoutMs });
  if (changes === undefined) {
    return { html: `<em>${escapeHtml("The texts are too different to compare word by word.")}</em>`, added: 0, removed: 0 };
  }
  let added = 0;
  let removed = 0;
  const parts: string[] = [];
  for (const c of changes) {
    const text = escapeHtml(c.value);
    if (c.added) {
      added += c.count ?? 1;
      parts.push(`<ins>${text}</ins>`);
    } else if (c.removed) {
      removed += c.count ?? 1;
      parts.push(`<del>${text}</del>`);
    } else {
      parts.push(text);
    }
  }
  return { html: parts.join(""), added, removed };
}
