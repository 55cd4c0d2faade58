"""Reassembling a streamed chat completion into the body a non-streamed call returns.

The chunks of `stream: true` (with `stream_options.include_usage`) are folded into one
`chat.completion` object, which the adapter then reads with the very code that reads a
non-streamed answer: a streamed and a non-streamed call give the same `ModelResponse`,
usage and cost included, by construction. Deltas go to the sink as they arrive; the
body exists only once `data: [DONE]` has come, so a stream cut short never becomes an
answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError, ProviderStreamError
from orchestrator.providers._sse import SSEEvent
from orchestrator.providers.streaming import DeltaSink, ModelDelta
from orchestrator.types import JsonObject

__all__ = ["ChatCompletionAssembler"]

_DONE = "[DONE]"


@dataclass
class _CallParts:
    call_id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


@dataclass
class ChatCompletionAssembler:
    """Folds `chat.completion.chunk` events into one `chat.completion` body.

    Args:
        endpoint: Named in errors.
        on_delta: Awaited with each text and tool-call-arguments fragment.
    """

    endpoint: str
    on_delta: DeltaSink | None = None
    events: int = 0
    """How many events have arrived; 0 when the endpoint answered without streaming."""
    _done: bool = False
    _meta: JsonObject = field(default_factory=dict)
    _text: list[str] = field(default_factory=list)
    _saw_text: bool = False
    _calls: dict[int, _CallParts] = field(default_factory=dict)
    _finish_reason: JsonValue = None
    _usage: JsonValue = None

    def _error(self, problem: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self.endpoint}: stream chunk {self.events}: {problem}")

    async def feed(self, event: SSEEvent) -> None:
        """Take one event of the stream.

        Raises:
            ProviderStreamError: the chunk is the endpoint's error, or data follows `[DONE]`.
            ProviderResponseError: the chunk is not a chat-completions chunk.
        """
        self.events += 1
        if self._done:
            raise ProviderStreamError(f"{self.endpoint}: the stream went on after [DONE]")
        if event.data.strip() == _DONE:
            self._done = True
            return
        try:
            chunk: JsonValue = json.loads(event.data)
        except json.JSONDecodeError:
            raise self._error(f"data is not JSON: {event.data[:100]!r}") from None
        if not isinstance(chunk, dict):
            raise self._error("data is not a JSON object")
        error = chunk.get("error")
        if error is not None and not chunk.get("choices"):
            message = error.get("message") if isinstance(error, dict) else error
            raise ProviderStreamError(f"{self.endpoint}: the stream carried an error: {message}")
        for key in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(key) is not None:
                self._meta[key] = chunk[key]
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise self._error("choices is not a list")
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                await self._choice(choice)

    async def _choice(self, choice: JsonObject) -> None:
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise self._error("choices[0].delta is not an object")
        content = delta.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise self._error("choices[0].delta.content is not a string")
            self._saw_text = True
            if content:
                self._text.append(content)
                if self.on_delta is not None:
                    await self.on_delta(ModelDelta(kind="text", text=content))
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise self._error("choices[0].delta.tool_calls is not a list")
        for position, call in enumerate(calls):
            await self._tool_call(call, position)

    async def _tool_call(self, call: JsonValue, position: int) -> None:
        if not isinstance(call, dict):
            raise self._error("a tool_calls entry is not an object")
        index = call.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise self._error("a tool call's index is not an integer")
        parts = self._calls.setdefault(index, _CallParts())
        if isinstance(call.get("id"), str) and call["id"]:
            parts.call_id = str(call["id"])
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise self._error(f"tool call {index}: function is not an object")
        if isinstance(function.get("name"), str) and function["name"]:
            parts.name = str(function["name"])
        fragment = function.get("arguments")
        if fragment is None or fragment == "":
            return
        if not isinstance(fragment, str):
            raise self._error(f"tool call {index}: arguments fragment is not a string")
        parts.arguments.append(fragment)
        if self.on_delta is not None:
            await self.on_delta(
                ModelDelta(
                    kind="tool_call_args",
                    text=fragment,
                    index=index,
                    call_id=parts.call_id,
                    name=parts.name,
                )
            )

    def body(self) -> JsonObject:
        """The `chat.completion` body the stream adds up to.

        Raises:
            ProviderStreamError: the stream ended before `data: [DONE]`.
        """
        if not self._done:
            raise ProviderStreamError(
                f"{self.endpoint}: the stream ended before data: [DONE]"
                f" after {self.events} events; the partial answer is dropped"
            )
        text = "".join(self._text)
        message: JsonObject = {
            "role": "assistant",
            "content": text if self._saw_text and (text or not self._calls) else None,
        }
        if self._calls:
            message["tool_calls"] = [
                {
                    "id": parts.call_id,
                    "type": "function",
                    "function": {"name": parts.name, "arguments": "".join(parts.arguments)},
                }
                for _, parts in sorted(self._calls.items())
            ]
        return {
            **self._meta,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish_reason}],
            "usage": self._usage,
        }
