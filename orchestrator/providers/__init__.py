"""Model providers: the provider-neutral chat shapes, the models file, and the adapters.

The workflow only ever sees `ChatMessage`, `ModelRequest` and `ModelResponse`; the models
file (`ModelRegistry`) says which endpoint serves a named model; an adapter such as
`OpenAIProvider` carries a request to that endpoint and maps every failure to a
`ProviderError`.
"""

from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    Usage,
)
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.providers.registry import (
    ModelEntry,
    ModelRegistry,
    ProviderEntry,
    load_model_registry,
)

__all__ = [
    "ChatMessage",
    "ModelEntry",
    "ModelRegistry",
    "ModelRequest",
    "ModelResponse",
    "OpenAIProvider",
    "ProviderEntry",
    "ToolCall",
    "ToolDefinition",
    "Usage",
    "load_model_registry",
]
