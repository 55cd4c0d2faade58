"""Provider-neutral chat shapes that cross the workflow/activity boundary.

These are the only conversation types the workflow sees. Vendor adapters translate them
to and from their wire format, so a later provider (Anthropic's Messages API) adds an
adapter, not a new conversation model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.types import JsonObject

__all__ = [
    "TRUNCATED",
    "CacheMark",
    "ChatMessage",
    "ModelRequest",
    "ModelResponse",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
]

TRUNCATED = frozenset({"length", "max_tokens"})
"""Finish reasons meaning the output limit cut the answer off (OpenAI's and Anthropic's)."""


class ToolCall(BaseModel):
    """One tool call the model asked for.

    `arguments_json` is kept verbatim so the conversation sent back to the model is exactly
    what it produced; `arguments` is the parsed object, or None with `parse_error` set when
    the model produced something that is not a JSON object.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments_json: str
    arguments: JsonObject | None = None
    parse_error: str | None = None


class ChatMessage(BaseModel):
    """One message of a conversation, in OpenAI chat-completions roles."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    thinking_blocks: list[JsonObject] = Field(default_factory=list, exclude_if=lambda v: not v)
    """An Anthropic answer's `thinking` and `redacted_thinking` blocks, verbatim and in
    order (their signatures included): Anthropic takes them back only unmodified, and
    requires them beside the tool calls of a tool loop when thinking is on. Only the
    Anthropic adapter writes them; an empty list is left out of dumps, so a message
    without any serialises (and keys caches) as it did before."""


class ToolDefinition(BaseModel):
    """A tool offered to the model: a skill's name, description and input JSON Schema."""

    name: str
    description: str
    parameters: JsonObject


class Usage(BaseModel):
    """Token counts of one model call.

    `input_tokens` counts every prompt token, cached or not (as OpenAI reports it; the
    Anthropic adapter adds its cache reads and writes back in), so token budgets see the
    whole prompt; the cache counts say which part of it is priced differently.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of `input_tokens`)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the prompt cache (Anthropic; part of `input_tokens`)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class CacheMark(BaseModel):
    """A client's own prompt-cache breakpoint (Anthropic `cache_control`), kept in place.

    `at` is the index in `ModelRequest.tools` (`where="tool"`) or `ModelRequest.messages`
    (`where="message"`: the message's last content block carries it); `control` is the
    client's `cache_control` object, passed on unchanged (`{"type": "ephemeral"}`, a `ttl`).
    """

    model_config = ConfigDict(frozen=True)

    where: Literal["tool", "message"]
    at: int = Field(ge=0)
    control: JsonObject


class ToolChoice(BaseModel):
    """Whether the model may, must or must not call tools, or which one it must call.

    `auto`, `none` and `required` are OpenAI's words (Anthropic's `auto`, `none`, `any`);
    `tool` names the one tool to call (OpenAI's named function, Anthropic's `tool`).
    """

    model_config = ConfigDict(frozen=True)

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


class ModelRequest(BaseModel):
    """What a provider is asked: the deployment's model id, the conversation, the tools."""

    model: str
    messages: list[ChatMessage]
    tools: list[ToolDefinition] = Field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    """Ask the endpoint to stream its answer (SSE); the result is the same either way.
    The model-call activity sets it from the deployment's `stream` setting."""
    prompt_cache: bool = False
    """Mark the stable prefix for the provider's prompt cache (Anthropic's adapter sends
    `cache_control` breakpoints on the last tool, the system text and the last message);
    set from the deployment's `ModelEntry.caches_prompts`. OpenAI's APIs cache on their own."""
    cache_marks: list[CacheMark] = Field(default_factory=list)
    """A client's own breakpoints (the gateway's Anthropic wire). When there are any, the
    Anthropic adapter sends exactly these and adds none; other adapters drop them."""

    # A gateway client's sampling and tool parameters, carried to whichever API the
    # deployment speaks. None (the default, and all a session sends) writes nothing, so a
    # session's requests are the bytes they were; `providers.params.unsupported` says
    # which of them a deployment's API has no equivalent for (the gateway refuses those).
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    """False: at most one tool call per answer (Anthropic's `disable_parallel_tool_use`)."""
    strict_tools: list[bool | None] | None = None
    """Each tool's `strict` as the client gave it (None: not given), in `tools`' order."""
    response_format: JsonObject | None = None
    """OpenAI's `response_format` object as the client sent it (`json_object`, `json_schema`)."""
    stop: list[str] | None = None
    """Stop sequences (OpenAI `stop`, Anthropic `stop_sequences`)."""
    seed: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    user: str | None = None
    """The end user (OpenAI `user`, Anthropic `metadata.user_id`)."""
    reasoning_effort: str | None = None
    """How hard a reasoning model thinks: OpenAI's `reasoning_effort` (the Responses
    API's `reasoning.effort`), Anthropic's `output_config.effort`."""
    thinking: JsonObject | None = None
    """Anthropic's `thinking` configuration as the client sent it (`enabled` with a
    `budget_tokens`, `adaptive`, `disabled`)."""
    max_completion_tokens: bool | None = None
    """True: the client named its limit `max_completion_tokens` (which OpenAI's reasoning
    models require instead of `max_tokens`); chat completions is sent that name."""
    metadata: dict[str, str] | None = None
    """OpenAI's `metadata`, the client's tags on the stored completion."""
    store: bool | None = None
    """OpenAI's `store`: keep the completion on the provider's side."""
    service_tier: str | None = None
    """The processing tier (OpenAI's `auto`, `default`, `flex`, ...; Anthropic's `auto`,
    `standard_only`, which are OpenAI's `auto` and `default`)."""
    logit_bias: dict[str, int | float] | None = None
    """OpenAI's `logit_bias`: token ids of the deployment's tokenizer, biased."""
    prompt_cache_key: str | None = None
    """OpenAI's hint for which requests share a prompt cache (Anthropic caches at the
    breakpoints the gateway or the client marks, and is not sent it)."""
    safety_identifier: str | None = None
    """OpenAI's stable end-user id for abuse detection (Anthropic's `metadata.user_id`)."""
    verbosity: str | None = None
    """How long an answer OpenAI's GPT-5 models give (`low`, `medium`, `high`)."""
    inference_geo: str | None = None
    """Where Anthropic runs the request (data residency); OpenAI takes no such choice."""
    speed: str | None = None
    """Anthropic's `standard` or `fast` output (fast is priced apart)."""
    cache_control: JsonObject | None = None
    """A Messages body's top-level `cache_control`: Anthropic's automatic breakpoint, sent
    on beside any others; OpenAI's APIs cache by themselves and are not sent it."""
    prompt_cache_retention: str | None = None
    """OpenAI's `prompt_cache_retention` (`in_memory`, `24h`); Anthropic has no such choice."""
    prompt_cache_options: JsonObject | None = None
    """OpenAI's `prompt_cache_options` (`mode`, `ttl`), as the client sent it."""
    anthropic_fields: JsonObject | None = None
    """Messages fields an Anthropic deployment is sent as they came (`container`,
    `context_management`, `mcp_servers`, ...: `params.ANTHROPIC_ONLY`); no OpenAI API has
    an equivalent, so a request with any is refused there."""
    anthropic_beta: list[str] | None = None
    """The beta features an Anthropic client named (its `anthropic-beta` header: what the
    SDK's `betas=[...]` sends), sent on to an Anthropic deployment: Anthropic refuses a
    beta field (`context_management`, `mcp_servers`, ...) without its beta. An OpenAI
    deployment is not sent them: they name Anthropic's features, and the fields that need
    them are refused there already."""


class ModelResponse(BaseModel):
    """What a provider answered, normalised."""

    message: ChatMessage
    usage: Usage
    finish_reason: str | None = None
    """Why the answer ended, as the endpoint said it (`stop`, `tool_calls`, `length`;
    Anthropic's `end_turn`, `tool_use`, `max_tokens`)."""
    provider_model: str | None = None
    """The model id the endpoint reports having used (may differ from the request)."""

    @property
    def truncated(self) -> bool:
        """The answer was cut off at the output limit (`length` or `max_tokens`)."""
        return self.finish_reason in TRUNCATED
