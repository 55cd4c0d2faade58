"""The `Model` contract every provider adapter keeps, and which adapter serves each `kind`.

The runtime and the gateway both build adapters from provider entries through
`adapter_for`; one table (`ADAPTERS`, kind of `models.yaml` → adapter class) keeps a new
kind from being served by the wrong wire protocol in one of them. A new provider is one
module with a class that keeps `Model`, plus its entry here and in `ProviderEntry.kind`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import httpx

from orchestrator.providers.anthropic import AnthropicProvider
from orchestrator.providers.messages import ModelRequest, ModelResponse
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.providers.openai_responses import OpenAIResponsesProvider
from orchestrator.providers.registry import ProviderEntry
from orchestrator.providers.streaming import DeltaSink

__all__ = ["ADAPTERS", "ChatProvider", "Model", "ModelAdapter", "adapter_for"]


@runtime_checkable
class Model(Protocol):
    """One model endpoint, whatever its wire protocol.

    `complete` sends one provider-neutral `ModelRequest` and returns the normalised
    `ModelResponse`, passing streamed text and tool-call pieces to `on_delta` as they
    arrive; every failure is raised as a `ProviderError` (retryable or not). `aclose`
    releases the adapter's own HTTP client (a client passed in stays open).
    """

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send one request and normalise the answer."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter opened."""
        ...


class ModelAdapter(Protocol):
    """How an adapter class is built from a provider entry's fields."""

    def __call__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> Model:
        """A new adapter for one endpoint."""
        ...


ChatProvider = Model
"""The former name of `Model`."""

ADAPTERS: dict[str, ModelAdapter] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "openai_responses": OpenAIResponsesProvider,
}
"""Each provider `kind` of `models.yaml` → the adapter class that speaks its protocol."""


def adapter_for(entry: ProviderEntry, http_client: httpx.AsyncClient | None = None) -> Model:
    """A new adapter for a provider entry (a client passed in is shared and left open).

    Raises:
        ConfigError: the entry's `base_url` is not an http(s) URL.
    """
    return ADAPTERS[entry.kind](
        base_url=entry.base_url,
        api_key=entry.api_key(),
        timeout=entry.timeout_seconds,
        http_client=http_client,
    )
