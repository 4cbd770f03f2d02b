"""Conformance fakes: small, real HTTP servers on 127.0.0.1 speaking each provider's wire format.

    with WireFake("anthropic", Reply(text="Hi there"), Reply(fault="status", status=429, retry_after=1)) as fake:
        monkeypatch.setenv(...)  # fake.spec.env
        await litellm.acompletion(**fake.spec.kwargs(), messages=[...], stream=True)
        fake.requests[-1].body   # what litellm sent

Faults (``Reply.fault``):

- ``status``: HTTP ``status`` with the wire's own JSON error body (and Retry-After if set).
- ``html_page``: HTTP 200, ``text/html``, a captive-portal page.
- ``malformed_body``: HTTP 200 with the wire's content type but a body it cannot parse.
- ``json_error_stream``: HTTP ``status`` with an ``application/json`` error body, to a streaming request
  (``status=200`` gives a 200 whose body is a JSON error, as some gateways send).
- ``disconnect``: ``cut_after`` pieces, then the socket closes (no finish, no terminator); a
  non-streamed request gets half its JSON body.
- ``keepalive_stall``: ``cut_after`` pieces, then only keep-alives every 0.2 s (SSE ``: keepalive``,
  Anthropic ``ping`` events, empty NDJSON lines for Ollama; nothing on Bedrock's event stream and Cohere's
  JSON lines, which have no keep-alive) until the client hangs up.
- ``stall_first_byte``: nothing at all until the client hangs up.

Besides the script: a request that forces a tool gets a call to it (always, as real providers do); a
request whose last turn is a tool result gets ``"Tool said: <result>"``; a request for structured output
gets ``json.dumps(reply.json)`` or JSON valid for its schema, the way the wire does it.
"""

from __future__ import annotations

from support.fakes.anthropic_messages import AnthropicMessages
from support.fakes.bedrock_converse import BedrockConverse
from support.fakes.cohere_v2 import CohereV2
from support.fakes.core import FAULTS, Answer, Ask, Recorded, Reply, Wire, WireFake, WireSpec
from support.fakes.gemini import Gemini
from support.fakes.ollama import OllamaChat
from support.fakes.openai_chat import AzureOpenAI, OpenAIChat

WIRES: dict[str, type[Wire]] = {
    wire.name: wire
    for wire in (OpenAIChat, AnthropicMessages, Gemini, OllamaChat, AzureOpenAI, CohereV2, BedrockConverse)
}

__all__ = ["FAULTS", "WIRES", "Answer", "Ask", "Recorded", "Reply", "WireFake", "WireSpec"]
