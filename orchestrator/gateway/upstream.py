"""The deployments' endpoints: one adapter per deployment, over one shared HTTP client.

A deployment's provider entry says which API it speaks; the adapter of that API
(`OpenAIProvider` or `AnthropicProvider`) translates the provider-neutral conversation to
it, so a request that arrived in one format reaches a deployment of the other unchanged
in meaning. Embeddings go to OpenAI-compatible deployments only.
"""

from __future__ import annotations

import httpx
from pydantic import JsonValue

from orchestrator.gateway.errors import BadRequest
from orchestrator.gateway.relay import Relayed, read_answer
from orchestrator.providers._http import HTTPProvider
from orchestrator.providers.adapters import ChatProvider, adapter_for
from orchestrator.providers.messages import ModelRequest, ModelResponse
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.providers.registry import ModelRegistry
from orchestrator.providers.streaming import DeltaSink
from orchestrator.types import JsonObject

__all__ = ["Upstreams"]


class _Embeddings(HTTPProvider):
    """`POST {base_url}/embeddings` of an OpenAI-compatible endpoint, body passed through."""

    path = "/embeddings"
    answer_key = "data"

    async def embed(self, body: JsonObject) -> JsonValue:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return await self._post(body, headers, lambda response: response.text.strip())


class Upstreams:
    """Adapters for a models file's deployments, made on first use and kept.

    Args:
        registry: The models file.
        client: The HTTP client every adapter shares (connection pooling); its owner
            closes it.
    """

    def __init__(self, registry: ModelRegistry, client: httpx.AsyncClient) -> None:
        self._registry = registry
        self._client = client
        self._chat: dict[str, ChatProvider] = {}
        self._embed: dict[str, _Embeddings] = {}

    def _provider_args(self, deployment: str) -> tuple[str, str, str | None, float]:
        entry = self._registry.models[deployment]
        provider = self._registry.providers[entry.provider]
        return provider.kind, provider.base_url, provider.api_key(), provider.timeout_seconds

    def _adapter(self, deployment: str) -> ChatProvider:
        adapter = self._chat.get(deployment)
        if adapter is None:
            entry = self._registry.providers[self._registry.models[deployment].provider]
            adapter = adapter_for(entry, self._client)
            self._chat[deployment] = adapter
        return adapter

    async def complete(
        self, deployment: str, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send the conversation to `deployment`, under its own model id.

        With `on_delta` (a streaming client) the call streams, unless the deployment says
        `stream: false`; its deltas reach `on_delta` as they arrive.

        Raises:
            ProviderError: as the adapter raises it.
        """
        adapter = self._adapter(deployment)
        served = self._registry.models[deployment]
        # A streaming client is relayed the deployment's own stream when it can stream.
        upstream = {
            "model": served.model,
            "stream": on_delta is not None and served.stream,
            "prompt_cache": served.caches_prompts,
        }
        return await adapter.complete(request.model_copy(update=upstream), on_delta)

    def forwards(self, deployment: str) -> bool:
        """Whether `deployment` speaks chat completions: a client's body may go to it as is."""
        registry = self._registry
        return registry.providers[registry.models[deployment].provider].kind == "openai"

    async def relay(
        self, deployment: str, body: JsonObject, on_delta: DeltaSink | None = None
    ) -> ModelResponse | Relayed:
        """Send a client's chat-completions body to `deployment` under its own model id.

        A whole answer is read for what the gateway needs when it has the plain shape
        (`relay.read_answer`), else by the adapter as `complete` reads it; with `on_delta`
        the call streams as `complete`'s does, and the adapter reads the stream.

        Raises:
            ProviderError: as the adapter raises it.
        """
        adapter = self._adapter(deployment)
        if not isinstance(adapter, OpenAIProvider):
            raise TypeError(f"deployment {deployment!r} does not speak chat completions")
        served = self._registry.models[deployment]
        wire = {**body, "model": served.model}
        if on_delta is not None:
            return await adapter.complete_wire(wire, served.stream, on_delta)
        answer = await adapter.send(wire)
        return read_answer(adapter.endpoint, answer) or adapter.read(answer)

    async def embed(self, deployment: str, body: JsonObject) -> JsonValue:
        """Send an embeddings body to `deployment`, under its own model id.

        Raises:
            BadRequest: the deployment speaks the Anthropic API, which has no embeddings.
            ProviderError: as the endpoint failed.
        """
        adapter = self._embed.get(deployment)
        if adapter is None:
            kind, url, key, timeout = self._provider_args(deployment)
            if kind != "openai":
                raise BadRequest(
                    f"deployment {deployment!r} speaks {kind}, which has no embeddings"
                )
            adapter = _Embeddings(
                base_url=url, api_key=key, timeout=timeout, http_client=self._client
            )
            self._embed[deployment] = adapter
        model = self._registry.models[deployment].model
        return await adapter.embed({**body, "model": model})
