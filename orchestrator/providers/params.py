"""Which of a request's optional parameters each wire protocol can carry.

A gateway client's `tool_choice`, `response_format`, `stop`, `seed` and the rest are
carried to the deployment's API, translated where it has an equivalent (OpenAI's
`required` is Anthropic's `any`, `stop` is `stop_sequences`, `user` is
`metadata.user_id`). Where it has none (`seed` or a JSON schema for the answer on
Anthropic's Messages API, `top_k` on OpenAI's), dropping the parameter would change what
the client asked for without a word, so the gateway refuses the request instead; this
module is the one table both it and the adapters' tests read.
"""

from __future__ import annotations

from orchestrator.providers.messages import ModelRequest

__all__ = ["PARAMS", "asks", "unsupported"]

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
)
"""`ModelRequest`'s optional parameters, None unless a gateway client sent them."""

_NOT_CARRIED: dict[str, frozenset[str]] = {
    "openai": frozenset({"top_k"}),
    "anthropic": frozenset({"seed", "frequency_penalty", "presence_penalty"}),
    "openai_responses": frozenset(
        {"stop", "seed", "top_k", "frequency_penalty", "presence_penalty"}
    ),
}
"""Each provider kind's parameters with no equivalent in its API."""


def asks(request: ModelRequest) -> bool:
    """Whether the request carries any of the optional parameters at all."""
    return any(getattr(request, name) is not None for name in PARAMS)


def unsupported(request: ModelRequest, kind: str) -> list[str]:
    """The parameters `request` sets that a deployment of `kind` has no equivalent for.

    Anthropic takes a `response_format` of plain text only (its default): it has no
    JSON mode or answer schema.
    """
    barred = _NOT_CARRIED.get(kind, frozenset())
    out: list[str] = []
    for name in PARAMS:
        value = getattr(request, name)
        if value is None:
            continue
        if name in barred or (
            name == "response_format" and kind == "anthropic" and value.get("type") != "text"
        ):
            out.append(name)
    return out
