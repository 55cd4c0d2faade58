"""Which adapter class speaks each provider `kind` of `models.yaml`.

The runtime and the gateway both build adapters from provider entries; one table keeps a
new kind from being served by the wrong wire protocol in one of them.
"""

from __future__ import annotations

import httpx

from orchestrator.providers.anthropic import AnthropicProvider
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.providers.openai_responses import OpenAIResponsesProvider
from orchestrator.providers.registry import ProviderEntry

__all__ = ["ADAPTERS", "ChatProvider", "adapter_for"]

ChatProvider = OpenAIProvider | AnthropicProvider | OpenAIResponsesProvider
"""Any adapter: each has `complete(request, on_delta)` and `aclose()`."""

ADAPTERS: dict[str, type[ChatProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "openai_responses": OpenAIResponsesProvider,
}


def adapter_for(entry: ProviderEntry, http_client: httpx.AsyncClient | None = None) -> ChatProvider:
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
