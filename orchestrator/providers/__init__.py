"""Model providers: the provider-neutral chat shapes, the models file, and the adapters.

The workflow only ever sees `ChatMessage`, `ModelRequest` and `ModelResponse`; the models
file (`ModelRegistry`) says which endpoint serves a named model; an adapter
(`OpenAIProvider`, `AnthropicProvider`, `OpenAIResponsesProvider`) carries a request to
that endpoint and maps every failure to a `ProviderError`.
"""

from orchestrator.providers.anthropic import AnthropicProvider
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    Usage,
)
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.providers.openai_responses import OpenAIResponsesProvider
from orchestrator.providers.registry import (
    AliasEntry,
    ModelEntry,
    ModelRegistry,
    ProviderEntry,
    load_model_registry,
)
from orchestrator.providers.streaming import DeltaSink, ModelDelta

__all__ = [
    "AliasEntry",
    "AnthropicProvider",
    "ChatMessage",
    "DeltaSink",
    "ModelDelta",
    "ModelEntry",
    "ModelRegistry",
    "ModelRequest",
    "ModelResponse",
    "OpenAIProvider",
    "OpenAIResponsesProvider",
    "ProviderEntry",
    "ToolCall",
    "ToolDefinition",
    "Usage",
    "load_model_registry",
]
