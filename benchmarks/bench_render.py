"""What sanitized rendering costs: a final answer, and the streaming display of a growing one.

Baselines in the same run: ``html.escape`` of the same text (the cheapest safe HTML, no markdown), and
re-rendering the whole growing text at every display update (what the streaming display would cost
without :class:`~nbplayground.core.render.StreamingMarkdown`).

    python benchmarks/bench_render.py
"""

from __future__ import annotations

import html
import statistics
import time

from nbplayground.core import render


def answer(paragraphs: int) -> str:
    para = (
        "The **tide** rises twice a day; see [the chart](https://example.org/tides) and `tide()`. " * 3
    ).strip()
    return "\n\n".join(f"{i}. {para}" for i in range(paragraphs))


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    render.markdown("warm up")
    text = answer(45)  # ~12.5k characters, about 2,000 tokens
    print(f"final answer, {len(text):,} chars (median of 30):")
    md = timed(lambda: render.markdown(text), 30)
    esc = timed(lambda: html.escape(text), 30)
    print(f"  render.markdown (markdown-it-py + nh3)  {md:8.2f} ms")
    print(f"  html.escape (baseline)                  {esc:8.3f} ms   ratio {md / esc:,.0f}x")

    # the display refreshes at most 20 times a second; a 2,000-token answer at 1 ms/token gives ~45 updates
    cuts = [len(text) * (i + 1) // 45 for i in range(45)]

    def streaming() -> None:
        stream = render.StreamingMarkdown()
        for end in cuts:
            stream(text[:end])

    def full() -> None:
        for end in cuts:
            render.markdown(text[:end])

    inc = timed(streaming, 5) / len(cuts)
    whole = timed(full, 5) / len(cuts)
    print(f"streaming display, {len(cuts)} updates of a growing answer (median of 5, per update):")
    print(f"  StreamingMarkdown                       {inc:8.2f} ms")
    print(f"  full re-render (baseline)               {whole:8.2f} ms   ratio {inc / whole:.3f}x")
    print(f"  share of the 50 ms refresh period       {inc / 50:8.1%}")


if __name__ == "__main__":
    main()
