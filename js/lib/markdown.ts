// Markdown → sanitized HTML, the twin of the kernel's core/render.py: marked (GFM) for the markup, raw
// HTML shown as text, a model's images turned into links (never fetched), and DOMPurify with the same
// allow-list file as the kernel's nh3 (src/nbplayground/core/sanitize_profile.json).

import DOMPurify from "dompurify";
import { Marked, type Tokens } from "marked";
import PROFILE from "../../src/nbplayground/core/sanitize_profile.json";
import { escapeHtml } from "./diff";

interface Profile {
  tags: string[];
  attributes: Record<string, string[]>;
  classes: Record<string, string[]>;
  url_schemes: string[];
}

const profile = PROFILE as Profile;
const SCHEMES = new RegExp(`^(?:${profile.url_schemes.join("|")}):`, "i");
const ALL_ATTRS = [...new Set([...Object.values(profile.attributes).flat(), "target", "rel"])];

/** The DOMPurify settings of every model text the widget shows (exported for the tests). */
export const PURIFY_CONFIG = {
  ALLOWED_TAGS: profile.tags,
  ALLOWED_ATTR: ALL_ATTRS,
  ALLOWED_URI_REGEXP: SCHEMES,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  KEEP_CONTENT: true,
  FORBID_TAGS: ["style", "form", "input", "textarea", "button", "select", "iframe", "object", "embed", "img",
    "svg", "math", "meta", "base", "link", "video", "audio", "source", "template"],
  FORBID_ATTR: ["style"],
};

function imageAsLink({ href, text }: Tokens.Image): string {
  // text, not an emoji: headless and minimal installs have no emoji font and would show a box
  const label = `image: ${escapeHtml(text || "image")}`;
  if (/^https?:\/\//i.test(href ?? "")) {
    return `<span class="nbp-blocked"><a href="${escapeHtml(href)}" title="not loaded: an external image (click to open)">${label}</a></span>`;
  }
  return `<span class="nbp-blocked">[${label}, not shown]</span>`;
}

const md = new Marked({ gfm: true, breaks: false, async: false });
md.use({
  renderer: {
    // raw HTML in an answer is shown as the text it is
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(text);
    },
    image: imageAsLink,
  },
});

let hooked = false;
function purifier(): typeof DOMPurify | null {
  if (!DOMPurify.isSupported) return null; // no DOM (e.g. a server-side import)
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
      // per-tag attributes and classes, as nh3 does in the kernel
      const tag = node.tagName.toLowerCase();
      const name = data.attrName;
      if (name === "target" || name === "rel") return; // set below on links
      if (!(profile.attributes[tag] ?? []).includes(name)) {
        data.keepAttr = false;
        return;
      }
      if (name === "class") {
        const allowed = profile.classes[tag] ?? [];
        const kept = data.attrValue.split(/\s+/).filter((c) => allowed.includes(c));
        if (kept.length) data.attrValue = kept.join(" ");
        else data.keepAttr = false;
      }
    });
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        if (node.getAttribute("href")) {
          node.setAttribute("target", "_blank"); // links from model output open outside the notebook
          node.setAttribute("rel", "noopener noreferrer nofollow");
        } else {
          node.removeAttribute("target");
          node.removeAttribute("rel");
        }
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
  return purify.sanitize(html, PURIFY_CONFIG) as unknown as string;
}

/** Put rendered markdown into an element. */
export function setMarkdown(el: Element, text: string): void {
  el.innerHTML = renderMarkdown(text);
}
