"""Rich, portable outputs for runs: MIME bundles that render in JupyterLab, Notebook 7, VS Code and GitHub.

Every bundle has ``text/plain`` and sanitized ``text/html`` from :mod:`nbplayground.core.render` (plus JSON,
PNG or WAV where they apply), never raw ``text/markdown``: model text is untrusted. Its metadata carries the
run's provenance under ``"nbplayground"`` — never parameters or secrets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from nbplayground.core import render
from nbplayground.core.types import RunResult, jsonable

CURSOR = "▌"
FORMATS = ("markdown", "text", "json", "html")


def footer(r: RunResult) -> str:
    """``model · 12→34 tok · $0.000012 · 345 ms · run 1a2b3c4d`` (plus the status when not ok).

    A result without an id was not stored (``--no-history``): its footer says ``not stored`` instead.
    """
    parts = [r.model]
    counted = "~" if r.tokens_estimated else ""  # counted here: the server reported no usage
    if r.tokens_in is not None and r.tokens_out is not None:
        parts.append(f"{counted}{r.tokens_in}→{r.tokens_out} tok")
    elif r.tokens_out is not None:  # a transcription: only what came out is counted
        parts.append(f"{counted}{r.tokens_out} tok out")
    elif r.tokens_in is not None:
        parts.append(f"{counted}{r.tokens_in} tok in")
    parts.append(f"${r.cost_usd:.6f}" if r.cost_usd is not None else "cost unknown")
    if r.latency_ms is not None:
        parts.append(f"{r.latency_ms:.0f} ms")
    parts.append(f"run {r.id[:8]}" if r.id else "not stored")
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
    return f"{kind}: {r.error}" + (f" (run {r.id[:8]})" if r.id else "")


#: The label before a tool line: text, not an emoji (headless and minimal fonts draw 🔧 as an empty box).
_TOOL = '<span style="font-size:smaller;font-weight:600;opacity:.7">tool</span>'


def _tool_lines(r: RunResult, chat: str | None) -> list[tuple[str, str]]:
    """Each tool call as (plain line, HTML line); names, arguments and results are escaped."""
    lines = []
    for tc in r.tool_calls:
        call = f"{tc.name}({tc.arguments})"
        if tc.result is not None or tc.error is not None:
            outcome = (
                f"error: {tc.error}" if tc.error else json.dumps(jsonable(tc.result), ensure_ascii=False)
            )
            lines.append((f"tool: {call} → {outcome}",
                          f"<div>{_TOOL} <code>{render.escape(call)}</code> → {render.escape(outcome)}</div>"))  # fmt: skip
        else:
            how = (
                f"answer with %%prompt --chat {chat} --tool-result {tc.id} and the result as the cell body"
                if chat
                else "run it in a thread (--chat NAME) to answer with --tool-result"
            )
            lines.append((f"tool: the model asks for {call} (call {tc.id}): {how}",
                          f"<div>{_TOOL} the model asks for <code>{render.escape(call)}</code> "
                          f"(call <code>{render.escape(tc.id)}</code>): {render.escape(how)}</div>"))  # fmt: skip
    return lines


def _body_html(r: RunResult, fmt: str) -> str:
    """The answer itself: data as JSON, text as sanitized markdown (or escaped text for ``--format html``)."""
    if r.data is not None:
        return render.preformatted(json.dumps(jsonable(r.data), indent=2, ensure_ascii=False))
    if not r.text:
        return ""
    return render.paragraph(r.text) if fmt == "html" else render.markdown(r.text)


_MUTED = "opacity:.7;font-size:smaller;margin-top:6px"
#: A failed run's error line: a red block like an error output (no parentheses: no var(), see htmlcheck).
_ERROR = "color:#c62828;background:#d32f2f1a;border-left:4px solid #d32f2f;padding:4px 8px;margin:4px 0"


def html_body(r: RunResult, chat: str | None = None, fmt: str = "markdown") -> str:
    """The HTML of a finished run (inside the output container): tools, answer, media, error, footer."""
    blocks = [h for _, h in _tool_lines(r, chat)]
    if r.reasoning:  # folded: the answer comes first
        blocks.append(f"<details><summary style=\"{_MUTED}\">reasoning</summary>{render.paragraph(r.reasoning, style=_MUTED)}</details>")
    blocks.append(_body_html(r, fmt))
    blocks.extend(render.media(m) for m in r.media)
    if r.status == "error":
        blocks.append(render.paragraph(error_line(r), style=_ERROR))
    elif r.status == "stopped":
        blocks.append("<p><i>stopped — the partial text is kept</i></p>")
    blocks.append(render.paragraph(footer(r), style=_MUTED))
    return "".join(blocks)


def plain(r: RunResult, chat: str | None = None) -> str:
    """The text/plain body: text, then an error line or status, then the footer."""
    lines = [p for p, _ in _tool_lines(r, chat)]
    if r.text:
        lines.append(r.text)
    if r.status == "error":
        lines.append(error_line(r))
    lines.append(f"[{footer(r)}]")
    return "\n".join(lines)


def bundle(
    r: RunResult, fmt: str = "markdown", chat: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final MIME bundle and metadata of a run: sanitized HTML (unless ``fmt="text"``) and plain text."""
    data: dict[str, Any] = {"text/plain": plain(r, chat)}
    if fmt != "text":
        data["text/html"] = render.page(html_body(r, chat, fmt))
    if r.data is not None or fmt == "json":
        value = (
            jsonable(r.data) if r.data is not None else {"text": r.text, "status": r.status, "error": r.error}
        )
        data["application/json"] = value
    for m in r.media:
        if m.mime == "image/png" and m.data:
            data["image/png"] = base64.b64encode(m.data).decode("ascii")
        elif m.mime in ("audio/wav", "audio/mpeg") and m.data:
            data[m.mime] = base64.b64encode(m.data).decode("ascii")
    return data, metadata(r)


def partial(
    text: str, model: str, note: str = "", md: Callable[[str], str] = render.markdown
) -> dict[str, Any]:
    """A bundle for text still streaming (a cursor marks that it is not finished).

    ``md`` renders the markdown; pass a :class:`~nbplayground.core.render.StreamingMarkdown` per stream.
    """
    body = md(text + CURSOR) + render.paragraph(f"{model} · streaming{note}…", style=_MUTED)
    return render.bundle(body, text + CURSOR)


def compare_bundle(
    models: Sequence[str],
    texts: Sequence[str],
    results: Sequence[RunResult | None],
    md: Sequence[Callable[[str], str]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Side-by-side columns (sanitized HTML) with plain text as the fallback; ``md`` as in :func:`partial`."""
    cols, plains = [], []
    for i, (model, text, r) in enumerate(zip(models, texts, results, strict=True)):
        if r is None:
            foot = f"{model} · streaming…"
            body = (md[i] if md else render.markdown)(text + CURSOR) + render.paragraph(foot, style=_MUTED)
        else:
            body, foot = html_body(r), footer(r)
        cols.append(
            '<div style="flex:1;min-width:0;border:1px solid #8884;border-radius:6px;padding:8px">'
            f"<div><b>{render.escape(model)}</b></div><div>{body}</div></div>"
        )
        plains.append(
            f"== {model} ==\n{r.text if r else text}\n[{foot}]"
            + (f"\n{error_line(r)}" if r and r.status == "error" else "")
        )
    data = {
        "text/html": render.page(
            f'<div style="display:flex;gap:8px;align-items:flex-start">{"".join(cols)}</div>'
        ),
        "text/plain": "\n\n".join(plains),
    }
    meta = {"nbplayground": {"group_id": next((r.group_id for r in results if r), None),
                             "runs": [metadata(r)["nbplayground"] for r in results if r is not None]}}  # fmt: skip
    return data, meta
