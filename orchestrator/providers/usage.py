"""Token counts from each wire format's `usage` object, cache reads and writes included.

Shared by the adapters' whole-answer and streamed readers, so a usage object reads the same
whichever way the answer came. Every reader returns `input_tokens` as the whole prompt:

- chat completions: `prompt_tokens`; cache reads and writes in `prompt_tokens_details`
  (`cached_tokens`, `cache_write_tokens`).
- Responses API: `input_tokens`; the same two in `input_tokens_details`.
- Anthropic: `input_tokens` leaves the cache out, so the prompt is it plus
  `cache_read_input_tokens` (reads) plus `cache_creation_input_tokens` (writes).
"""

from __future__ import annotations

from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers.messages import Usage
from orchestrator.types import JsonObject

__all__ = [
    "anthropic_usage",
    "anthropic_usage_wire",
    "cache_counts",
    "chat_usage",
    "chat_usage_wire",
    "responses_usage",
]


def _count(endpoint: str, usage: JsonValue, path: str) -> int:
    """The integer at `path` (dotted) below `usage`; 0 when absent or null."""
    value: JsonValue = usage
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProviderResponseError(f"{endpoint}: response usage.{path} is not an integer")
    return value


def _object(endpoint: str, usage: JsonValue) -> JsonValue:
    if usage is not None and not isinstance(usage, dict):
        raise ProviderResponseError(f"{endpoint}: response usage is not an object")
    return usage


def _openai_style(endpoint: str, usage: JsonValue, prompt: str, output: str) -> Usage:
    usage = _object(endpoint, usage)
    return Usage(
        input_tokens=_count(endpoint, usage, prompt),
        output_tokens=_count(endpoint, usage, output),
        cached_input_tokens=_count(endpoint, usage, f"{prompt}_details.cached_tokens"),
        cache_write_tokens=_count(endpoint, usage, f"{prompt}_details.cache_write_tokens"),
    )


def chat_usage(endpoint: str, usage: JsonValue) -> Usage:
    """A chat-completions `usage` (OpenAI, vLLM, LiteLLM, OpenRouter)."""
    return _openai_style(endpoint, usage, "prompt_tokens", "completion_tokens")


def responses_usage(endpoint: str, usage: JsonValue) -> Usage:
    """A Responses API `usage`."""
    return _openai_style(endpoint, usage, "input_tokens", "output_tokens")


def anthropic_usage(endpoint: str, usage: JsonValue) -> Usage:
    """An Anthropic Messages `usage`, whose `input_tokens` leaves the cached part out."""
    usage = _object(endpoint, usage)
    read = _count(endpoint, usage, "cache_read_input_tokens")
    written = _count(endpoint, usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(endpoint, usage, "input_tokens") + read + written,
        output_tokens=_count(endpoint, usage, "output_tokens"),
        cached_input_tokens=read,
        cache_write_tokens=written,
    )


def chat_usage_wire(usage: Usage) -> JsonObject:
    """`usage` of a chat-completions answer (what `chat_usage` reads back)."""
    wire: JsonObject = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_input_tokens or usage.cache_write_tokens:
        wire["prompt_tokens_details"] = {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        }
    return wire


def anthropic_usage_wire(usage: Usage) -> JsonObject:
    """`usage` of a Messages answer (what `anthropic_usage` reads back).

    Anthropic counts cache reads and writes apart from `input_tokens`.
    """
    fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, fresh),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def cache_counts(usage: Usage) -> JsonObject:
    """A call's prompt-cache counts for its audit payload, when it used the cache.

    Sessions and the gateway both record them; `cost --by` and the spend reports add them up.
    """
    counts: JsonObject = {}
    if usage.cached_input_tokens:
        counts["cached_input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        counts["cache_write_tokens"] = usage.cache_write_tokens
    return counts
