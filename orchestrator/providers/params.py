"""Which of a request's optional parameters each wire protocol can carry.

A gateway client's `tool_choice`, `response_format`, `stop`, `seed` and the rest are
carried to the deployment's API, translated where it has an equivalent (OpenAI's
`required` is Anthropic's `any`, `stop` is `stop_sequences`, `user` is
`metadata.user_id`, a `json_schema` answer format is Anthropic's
`output_config.format`, `reasoning_effort` is its `output_config.effort`, `service_tier`
`default` is its `standard_only`, `safety_identifier` its `metadata.user_id`, and a
`prompt_cache_key` is not needed where the gateway marks the cache's breakpoints). Where
it has none (`seed`, `logit_bias`, `verbosity` or JSON mode on Anthropic's Messages API,
`top_k` on OpenAI's), dropping the parameter would change what the client asked for
without a word, so the gateway refuses the request instead; this module is the one table
both it and the adapters' tests read.

Anthropic's `thinking` reaches an OpenAI deployment as a reasoning effort:
`adaptive` (the model decides how much to think) is what OpenAI's reasoning models do
unasked, so nothing is written; `enabled` with a `budget_tokens` is the effort of its band
(`effort_of_budget`); `disabled` has no equivalent there (a reasoning model cannot be told
not to reason), and is refused. An effort the client gave itself wins over its thinking.

A Messages body's fields that only Anthropic has (`ANTHROPIC_ONLY`: a code-execution
`container`, `context_management`, `mcp_servers`, ...) go to an Anthropic deployment as they
came and are refused by an OpenAI one; OpenAI's `prompt_cache_retention` and
`prompt_cache_options` the other way round. `CHAT_FIELDS` and `MESSAGES_FIELDS` list every
top-level field of each API, so that a parser can refuse the other API's fields and ignore
only what neither defines (a vendor's extra).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import JsonValue

from orchestrator.providers.messages import ModelRequest

__all__ = [
    "ANTHROPIC_EFFORTS",
    "ANTHROPIC_ONLY",
    "ANTHROPIC_TIERS",
    "CHAT_AS_IS",
    "CHAT_FIELDS",
    "MESSAGES_FIELDS",
    "OPENAI_EFFORTS",
    "PARAMS",
    "asks",
    "effort_of",
    "effort_of_budget",
    "unsupported",
]

PARAMS = (
    "tool_choice",
    "parallel_tool_calls",
    "strict_tools",
    "response_format",
    "stop",
    "seed",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "user",
    "reasoning_effort",
    "thinking",
    "metadata",
    "store",
    "service_tier",
    "logit_bias",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
    "inference_geo",
    "speed",
    "cache_control",
    "prompt_cache_retention",
    "prompt_cache_options",
    "anthropic_fields",
)
"""`ModelRequest`'s optional parameters, None unless a gateway client sent them."""

CHAT_AS_IS = (
    "parallel_tool_calls",
    "response_format",
    "stop",
    "seed",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "user",
    "metadata",
    "store",
    "service_tier",
    "logit_bias",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "verbosity",
)
"""The optional parameters chat completions takes under their own names, as they are:
what the OpenAI adapter writes unchanged, and what the gateway's relay forwards."""

ANTHROPIC_ONLY = (
    "container",
    "context_management",
    "mcp_servers",
    "diagnostics",
    "compaction",
    "thread",
    "billing_policy",
    "fallbacks",
    "fallback_credit_token",
)
"""Messages fields (`anthropic` 2.17, beta ones too) an Anthropic deployment is sent as they
came (`ModelRequest.anthropic_fields`): server-side state, tools and services that no
OpenAI API has, so a request with any of them is refused by an OpenAI deployment."""

CHAT_FIELDS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "moderation", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier",
        "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
        "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
        "web_search_options",
    }
)  # fmt: skip
"""Every top-level field of a chat completions body (`openai` 3.63's
`completion_create_params`)."""

MESSAGES_FIELDS = frozenset(
    {
        "max_tokens", "messages", "model", "cache_control", "inference_geo", "metadata",
        "output_config", "service_tier", "speed", "stop_sequences", "stream", "system",
        "thinking", "tool_choice", "tools", "temperature", "top_p", "top_k",
        *ANTHROPIC_ONLY,
    }
)  # fmt: skip
"""Every top-level field of a Messages body (`anthropic` 2.17's `message_create_params`,
beta ones too, and the sampling fields `temperature`, `top_p`, `top_k` earlier versions
send)."""

OPENAI_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
"""`reasoning_effort`'s levels (the Responses API's `reasoning.effort`)."""
ANTHROPIC_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
"""`output_config.effort`'s levels: OpenAI's `reasoning_effort` of the same names.
OpenAI's `minimal` has no equivalent; its `none` is Anthropic's thinking `disabled`."""
ANTHROPIC_TIERS = {"auto": "auto", "default": "standard_only"}
"""OpenAI's service tiers that Anthropic has (`standard_only`: never the priority tier)."""

_BANDS = ((4096, "low"), (16384, "medium"))
"""Thinking budgets below each bound, as reasoning efforts; a larger one is `high`."""


def effort_of_budget(budget: int) -> str:
    """The reasoning effort of an Anthropic thinking budget.

    `low` below 4,096 tokens, `medium` below 16,384, else `high` (Anthropic's minimum
    budget is 1,024); OpenAI's reasoning models take no budget.
    """
    for bound, effort in _BANDS:
        if budget < bound:
            return effort
    return "high"


def effort_of(request: ModelRequest) -> str | None:
    """The reasoning effort an OpenAI API is sent: the client's own, else its thinking's.

    `thinking` of type `enabled` gives its budget's band; any other type gives none
    (`adaptive` is a reasoning model's default; `unsupported` refuses `disabled`).
    """
    if request.reasoning_effort is not None:
        return request.reasoning_effort
    thinking = request.thinking
    if thinking is None or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    return effort_of_budget(budget) if isinstance(budget, int) else None


def _never(value: JsonValue) -> bool:
    return False


def _openai_thinking(value: JsonValue) -> bool:
    return isinstance(value, dict) and value.get("type") in ("enabled", "adaptive")


def _anthropic_format(value: JsonValue) -> bool:
    return isinstance(value, dict) and value.get("type") in ("text", "json_schema")


def _anthropic_effort(value: JsonValue) -> bool:
    return value == "none" or value in ANTHROPIC_EFFORTS


_Takes = Callable[[JsonValue], bool]
_OPENAI: dict[str, _Takes] = {
    "top_k": _never,
    "thinking": _openai_thinking,
    # Where the request runs is no per-request choice there: never silently elsewhere.
    "inference_geo": _never,
    "speed": lambda value: value == "standard",
}
_NOT_CARRIED: dict[str, dict[str, _Takes]] = {
    "openai": _OPENAI,
    "anthropic": {
        "seed": _never,
        "frequency_penalty": _never,
        "presence_penalty": _never,
        "logit_bias": _never,
        "response_format": _anthropic_format,
        "reasoning_effort": _anthropic_effort,
        # Anthropic's metadata is `user_id` only (OpenAI's `user`); it keeps no completion
        # to tag or store, so `store: false` asks for what it does anyway.
        "metadata": lambda value: value == {},
        "store": lambda value: value is False,
        "service_tier": lambda value: value in ANTHROPIC_TIERS,
        "verbosity": _never,
        # Anthropic keeps its cache five minutes or an hour, at breakpoints (`cache_control`).
        "prompt_cache_retention": _never,
        "prompt_cache_options": _never,
    },
    "openai_responses": {
        **_OPENAI,
        "stop": _never,
        "seed": _never,
        "frequency_penalty": _never,
        "presence_penalty": _never,
        "logit_bias": _never,
    },
}
"""Each provider kind's parameters it has an equivalent for only of some values (or of
none): whether it takes the value given."""


def asks(request: ModelRequest) -> bool:
    """Whether the request carries any of the optional parameters at all."""
    return any(getattr(request, name) is not None for name in PARAMS)


def unsupported(request: ModelRequest, kind: str) -> list[str]:
    """The parameters `request` sets that a deployment of `kind` has no equivalent for.

    Anthropic takes a `response_format` of plain text (its default) or a JSON schema
    (`output_config.format`), not JSON mode; a reasoning effort of its levels or `none`;
    the service tiers `auto` and `default`. OpenAI's APIs take Anthropic's thinking
    `enabled` and `adaptive`, not `disabled`, and none of `ANTHROPIC_ONLY` (each is named
    by its own field's name).
    """
    checks = _NOT_CARRIED.get(kind, {})
    out: list[str] = []
    for name in PARAMS:
        value = getattr(request, name)
        if value is None:
            continue
        if name == "anthropic_fields":
            out += [] if kind == "anthropic" else list(request.anthropic_fields or {})
            continue
        takes = checks.get(name)
        if takes is not None and not takes(_plain(value)):
            out.append(name)
    return out


def _plain(value: object) -> JsonValue:
    """A parameter's value as JSON (a `ToolChoice` is never checked by value)."""
    return value if isinstance(value, str | int | float | bool | dict | list) else None
