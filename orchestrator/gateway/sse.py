"""Server-sent events in each client's format: OpenAI chunks or Anthropic message events.

Pure encoders with a little state (which content block is open), no I/O: the route feeds
them the provider's deltas and the final answer, and writes what they return. A stream
that fails after it started ends with an error event in the client's format; it is never
continued by another model, whose answer would not fit the half already sent.
"""

from __future__ import annotations

import json

from orchestrator.gateway.anthropic_wire import stop_reason
from orchestrator.gateway.errors import GatewayError
from orchestrator.gateway.openai_wire import finish_reason
from orchestrator.providers.messages import ModelResponse
from orchestrator.providers.streaming import ModelDelta
from orchestrator.providers.usage import anthropic_usage_wire, chat_usage_wire
from orchestrator.types import JsonObject

__all__ = ["AnthropicStream", "OpenAIStream", "StreamEncoder"]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _data(payload: JsonObject) -> bytes:
    return f"data: {_json(payload)}\n\n".encode()


def _event(name: str, payload: JsonObject) -> bytes:
    return f"event: {name}\ndata: {_json(payload)}\n\n".encode()


class OpenAIStream:
    """`chat.completion.chunk` events, then `[DONE]`.

    A tool call's `id`, `type` and `function.name` go out once, in its first chunk (by
    index), as OpenAI sends them; later chunks hold `index` and `function.arguments` only.
    Clients fold chunks by joining the string fields they see (the `openai` SDK's
    `accumulate_delta`, pydantic-ai), so a name in every chunk reads as
    `get_orderget_order...`. Providers may repeat them on every delta (`ModelDelta`).
    """

    def __init__(self, deployment: str, call_id: str, created: int, include_usage: bool) -> None:
        self._head: JsonObject = {
            "id": call_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": deployment,
        }
        # Every chunk's JSON up to its delta, written once: `_data` of the whole chunk
        # writes the same bytes, dumping the head again for each of a stream's events.
        head = _json({**self._head, "choices": [{"index": 0, "delta": None}]})
        self._opening = "data: " + head.removesuffix("null}]}")
        self._include_usage = include_usage
        self._said: dict[int, set[str]] = {}
        """Per tool call index, which of `id`, `type` and `name` its chunks have carried."""

    def _chunk(self, delta: JsonObject, finish: str | None = None) -> bytes:
        closing = "null" if finish is None else _json(finish)
        return f'{self._opening}{_json(delta)},"finish_reason":{closing}}}]}}\n\n'.encode()

    def start(self) -> list[bytes]:
        """The opening chunk (the assistant role)."""
        return [self._chunk({"role": "assistant", "content": ""})]

    def delta(self, delta: ModelDelta) -> list[bytes]:
        """One piece of text or of a tool call's arguments."""
        if delta.kind == "text":
            return [self._chunk({"content": delta.text})]
        call: JsonObject = {"index": delta.index}
        function: JsonObject = {}
        said = self._said.setdefault(delta.index, set())
        if delta.call_id is not None and "id" not in said:
            call["id"] = delta.call_id
            said.add("id")
        if "type" not in said:
            call["type"] = "function"
            said.add("type")
        if delta.name is not None and "name" not in said:
            function["name"] = delta.name
            said.add("name")
        function["arguments"] = delta.text
        call["function"] = function
        return [self._chunk({"tool_calls": [call]})]

    def finish(self, response: ModelResponse) -> list[bytes]:
        """The finish reason, the usage when asked for, and `[DONE]`."""
        out = [self._chunk({}, finish_reason(response))]
        if self._include_usage:
            usage = response.usage
            out.append(
                _data(
                    {
                        **self._head,
                        "choices": [],
                        "usage": chat_usage_wire(usage),
                    }
                )
            )
        out.append(b"data: [DONE]\n\n")
        return out

    def error(self, error: GatewayError) -> list[bytes]:
        """An error event the `openai` SDK raises as an `APIError`."""
        return [
            _data({"error": {"message": error.message, "type": error.openai_type, "code": None}})
        ]


class AnthropicStream:
    """`message_start`, content blocks with their deltas, `message_delta`, `message_stop`."""

    def __init__(self, deployment: str, call_id: str) -> None:
        self._deployment = deployment
        self._id = call_id
        self._open: tuple[str, int] | None = None
        """The open block: its kind and the tool call index it holds."""
        self._blocks = 0

    def start(self) -> list[bytes]:
        """The message's opening event."""
        message: JsonObject = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._deployment,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        index = self._blocks - 1
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _begin(self, kind: str, tool: int, block: JsonObject) -> list[bytes]:
        out = self._close()
        self._open = (kind, tool)
        index = self._blocks
        self._blocks += 1
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return out

    def delta(self, delta: ModelDelta) -> list[bytes]:
        """One piece of text or of a tool call's arguments, opening a block when it starts one."""
        out: list[bytes] = []
        if delta.kind == "text":
            if self._open != ("text", 0):
                out += self._begin("text", 0, {"type": "text", "text": ""})
            body: JsonObject = {"type": "text_delta", "text": delta.text}
        else:
            if self._open != ("tool", delta.index):
                block: JsonObject = {
                    "type": "tool_use",
                    "id": delta.call_id or f"toolu_{self._id}_{delta.index}",
                    "name": delta.name or "",
                    "input": {},
                }
                out += self._begin("tool", delta.index, block)
            if not delta.text:
                return out
            body = {"type": "input_json_delta", "partial_json": delta.text}
        # `_event` of the whole event writes the same bytes, more slowly.
        index = self._blocks - 1
        out.append(
            (
                'event: content_block_delta\ndata: {"type":"content_block_delta",'
                f'"index":{index},"delta":{_json(body)}}}\n\n'
            ).encode()
        )
        return out

    def _thinking(self, response: ModelResponse) -> list[bytes]:
        """The answer's thinking blocks, each whole (signature and all) in its start event.

        The adapter folds them, so they come last here rather than first: the client sends
        them back beside its tool calls, and the Anthropic adapter writes them first again.
        """
        out: list[bytes] = []
        for block in response.message.thinking_blocks:
            out += self._begin("thinking", 0, block)
        return out

    def finish(self, response: ModelResponse) -> list[bytes]:
        """Close the last block; the stop reason and usage; the end of the message."""
        usage = response.usage
        return [
            *self._thinking(response),
            *self._close(),
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(response), "stop_sequence": None},
                    "usage": anthropic_usage_wire(usage),
                },
            ),
            _event("message_stop", {"type": "message_stop"}),
        ]

    def error(self, error: GatewayError) -> list[bytes]:
        """An error event the `anthropic` SDK raises as an `APIError`."""
        return [
            _event(
                "error",
                {
                    "type": "error",
                    "error": {"type": error.anthropic_type, "message": error.message},
                },
            )
        ]


StreamEncoder = OpenAIStream | AnthropicStream
