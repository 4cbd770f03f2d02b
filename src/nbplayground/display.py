"""Rich, portable outputs for runs: MIME bundles that render in JupyterLab, Notebook 7, VS Code and GitHub.

Every bundle has ``text/plain`` and ``text/markdown`` (plus JSON, PNG, WAV or HTML where they apply), and
its metadata carries the run's provenance under ``"nbplayground"`` — never parameters or secrets.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from nbplayground.core.types import RunResult, jsonable

CURSOR = "▌"
FORMATS = ("markdown", "text", "json", "html")


def footer(r: RunResult) -> str:
    """``model · 12→34 tok · $0.000012 · 345 ms · run 1a2b3c4d`` (plus the status when not ok)."""
    parts = [r.model]
    if r.tokens_in is not None or r.tokens_out is not None:
        parts.append(
            f"{r.tokens_in if r.tokens_in is not None else '?'}→{r.tokens_out if r.tokens_out is not None else '?'} tok"
        )
    parts.append(f"${r.cost_usd:.6f}" if r.cost_usd is not None else "cost n/a")
    if r.latency_ms is not None:
        parts.append(f"{r.latency_ms:.0f} ms")
    parts.append(f"run {r.id[:8]}")
    if r.status != "ok":
        parts.append(r.status)
    return " · ".join(parts)


def metadata(r: RunResult) -> dict[str, Any]:
    """Provenance for the output's metadata (no params, no variables, no secrets)."""
    return {
        "nbplayground": {
            "run_id": r.id, "model": r.model, "status": r.status, "tokens_in": r.tokens_in,
            "tokens_out": r.tokens_out, "cost_usd": r.cost_usd, "latency_ms": r.latency_ms,
            "ttft_ms": r.ttft_ms, "thread_id": r.thread_id, "group_id": r.group_id,
        }
    }  # fmt: skip


def error_line(r: RunResult) -> str:
    """One readable line: what went wrong and the run id."""
    kind = r.error_type or "Error"
    return f"{kind}: {r.error} (run {r.id[:8]})"


def _tool_lines(r: RunResult, chat: str | None) -> list[str]:
    lines = []
    for tc in r.tool_calls:
        if tc.result is not None or tc.error is not None:
            outcome = (
                f"error: {tc.error}" if tc.error else json.dumps(jsonable(tc.result), ensure_ascii=False)
            )
            lines.append(f"🔧 `{tc.name}({tc.arguments})` → {outcome}")
        else:
            how = (
                f"answer with `%%prompt --chat {chat} --tool-result {tc.id}` and the result as the cell body"
                if chat
                else "run it in a thread (`--chat NAME`) to answer with `--tool-result`"
            )
            lines.append(f"🔧 the model asks for `{tc.name}({tc.arguments})` (call `{tc.id}`): {how}")
    return lines


def markdown(r: RunResult, chat: str | None = None) -> str:
    """The markdown body of a finished run: tools, text, media, error line, footer."""
    blocks = _tool_lines(r, chat)
    if r.text:
        blocks.append(
            r.text
            if r.data is None
            else f"```json\n{json.dumps(jsonable(r.data), indent=2, ensure_ascii=False)}\n```"
        )
    for m in r.media:
        blocks.append(m._repr_html_())
    if r.status == "error":
        blocks.append(f"**{html.escape(error_line(r))}**")
    elif r.status == "stopped":
        blocks.append("*stopped — the partial text is kept*")
    blocks.append(f"<sub>{html.escape(footer(r))}</sub>")
    return "\n\n".join(blocks)


def plain(r: RunResult, chat: str | None = None) -> str:
    """The text/plain body: text, then an error line or status, then the footer."""
    lines = [line.replace("`", "") for line in _tool_lines(r, chat)]
    if r.text:
        lines.append(r.text)
    if r.status == "error":
        lines.append(error_line(r))
    lines.append(f"[{footer(r)}]")
    return "\n".join(lines)


def bundle(
    r: RunResult, fmt: str = "markdown", chat: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final MIME bundle and metadata of a run."""
    data: dict[str, Any] = {"text/plain": plain(r, chat)}
    if fmt in ("markdown", "json", "html"):
        data["text/markdown"] = markdown(r, chat)
    if r.data is not None or fmt == "json":
        value = (
            jsonable(r.data) if r.data is not None else {"text": r.text, "status": r.status, "error": r.error}
        )
        data["application/json"] = value
    for m in r.media:
        if m.mime == "image/png" and m.data:
            data["image/png"] = base64.b64encode(m.data).decode("ascii")
        elif m.mime.startswith("audio/") and m.data:
            data[m.mime] = base64.b64encode(m.data).decode("ascii")
            data["text/html"] = f"{m._repr_html_()}<br><sub>{html.escape(footer(r))}</sub>"
        elif m.mime.startswith("image/") and m.data:
            data["text/html"] = f"{m._repr_html_()}<br><sub>{html.escape(footer(r))}</sub>"
    if fmt == "html":
        body = html.escape(r.text).replace("\n", "<br>")
        err = f"<p><b>{html.escape(error_line(r))}</b></p>" if r.status == "error" else ""
        data["text/html"] = f"<div>{body}</div>{err}<sub>{html.escape(footer(r))}</sub>"
    return data, metadata(r)


def partial(text: str, model: str, note: str = "") -> dict[str, Any]:
    """A bundle for text still streaming (a cursor marks that it is not finished)."""
    tail = f"\n\n<sub>{html.escape(model)} · streaming{html.escape(note)}…</sub>"
    return {"text/plain": text + CURSOR, "text/markdown": text + CURSOR + tail}


def compare_bundle(
    models: list[str], texts: list[str], results: list[RunResult | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Side-by-side columns (HTML), with markdown sections and plain text as fallbacks."""
    cols, sections, plains = [], [], []
    for model, text, r in zip(models, texts, results, strict=True):
        if r is None:
            body_md, foot = text + CURSOR, f"{model} · streaming…"
            body_html = html.escape(text + CURSOR).replace("\n", "<br>")
        else:
            body_md = markdown(r)
            foot = footer(r)
            shown = r.text + ("" if r.status != "error" else f"\n\n{error_line(r)}")
            body_html = html.escape(shown).replace("\n", "<br>")
        cols.append(
            '<div style="flex:1;min-width:0;border:1px solid #8884;border-radius:6px;padding:8px">'
            f"<div><b>{html.escape(model)}</b></div><div>{body_html}</div>"
            f"<div style='opacity:.7;font-size:smaller;margin-top:6px'>{html.escape(foot)}</div></div>"
        )
        sections.append(f"#### {model}\n\n{body_md}")
        plains.append(
            f"== {model} ==\n{r.text if r else text}\n[{foot}]"
            + (f"\n{error_line(r)}" if r and r.status == "error" else "")
        )
    data = {
        "text/html": f'<div style="display:flex;gap:8px;align-items:flex-start">{"".join(cols)}</div>',
        "text/markdown": "\n\n".join(sections),
        "text/plain": "\n\n".join(plains),
    }
    meta = {"nbplayground": {"group_id": next((r.group_id for r in results if r), None),
                             "runs": [metadata(r)["nbplayground"] for r in results if r is not None]}}  # fmt: skip
    return data, meta
