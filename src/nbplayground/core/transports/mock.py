"""The ``mock`` transport: the built-in offline models (``nbplayground.core.mock``) behind the interface."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nbplayground.core import mock
from nbplayground.core.errors import BadParameterError
from nbplayground.core.transports import Capabilities
from nbplayground.core.types import MediaOutput, ProviderCall, ProviderChunk


class MockTransport:
    """Deterministic answers, tool calls, JSON and media, with no network."""

    name = "mock"
    capabilities = Capabilities(
        streaming=True,
        tools=True,
        structured_output=True,
        media=frozenset({"image", "speech", "transcription"}),
    )
    providers = frozenset({"mock"})

    async def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """A mock chat answer as chunks."""
        try:
            async for chunk in mock.stream_chat(call):
                yield chunk
        except mock.MockModelError as exc:
            raise BadParameterError(str(exc)) from None

    async def generate(self, call: ProviderCall) -> MediaOutput:
        """A mock image, speech or transcription."""
        try:
            return await mock.generate(call)
        except mock.MockModelError as exc:
            raise BadParameterError(str(exc)) from None


TRANSPORT = MockTransport()
