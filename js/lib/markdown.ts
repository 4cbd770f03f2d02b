// Markdown → sanitized HTML: marked (GFM) for the markup, DOMPurify so model output can never run script.

import DOMPurify from "dompurify";
import { Marked } from "marked";
import { escapeHtml } from "./diff";

const md = new Marked({ gfm: true, breaks: false, async: false });

let hooked = false;
function purifier(): typeof DOMPurify | null {
  if (!DOMPurify.isSupported) return null; // no DOM (e.g. a server-side import)
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      // links from model output open outside the notebook
      if (node.tagName === "A" && node.getAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
  }
  return DOMPurify;
}

/** Render markdown to sanitized HTML (escaped plain text when no DOM is available). */
export function renderMarkdown(text: string): string {
  const purify = purifier();
  if (purify === null) return `<pre>${escapeHtml(text)}</pre>`;
  let html: string;
  try {
    html = md.parse(text ?? "") as string;
  } catch {
    return `<pre>${escapeHtml(text)}</pre>`;
  }
  return purify.sanitize(html, { USE_PROFILES: { html: true } }) as unknown as string;
}

/** Put rendered markdown into an element. */
export function setMarkdown(el: Element, text: string): void {
  el.innerHTML = renderMarkdown(text);
}
