"""Reassembling a streamed Anthropic message into the body a non-streamed call returns.

Anthropic's Messages stream is `message_start`, then per content block
`content_block_start`, `content_block_delta`s (`text_delta`, `input_json_delta`, ...) and
`content_block_stop`, then `message_delta` (stop reason, final usage) and
`message_stop`; `ping` may come anywhere, and `error` ends it with an error. The events
are folded into the `message` object a non-streamed call returns, which the adapter reads
with its usual code, so both give the same `ModelResponse`. The body exists only after
`message_stop`: a stream cut short never becomes an answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError, ProviderStreamError
from orchestrator.providers._sse import SSEEvent
from orchestrator.providers.streaming import DeltaSink, ModelDelta
from orchestrator.types import JsonObject

__all__ = ["MessageAssembler"]


_FOLDED = {"thinking_delta": "thinking", "signature_delta": "signature"}
"""Deltas of a thinking block, and the field of it each one adds to."""


@dataclass
class _Block:
    body: JsonObject
    parts: list[str] = field(default_factory=list)
    tool_index: int | None = None
    """The block's position among the message's tool calls, for `tool_use` blocks."""


@dataclass
class MessageAssembler:
    """Folds Messages stream events into one `message` body.

    Args:
        endpoint: Named in errors.
        on_delta: Awaited with each text and tool-input fragment.
    """

    endpoint: str
    on_delta: DeltaSink | None = None
    events: int = 0
    _message: JsonObject | None = None
    _blocks: dict[int, _Block] = field(default_factory=dict)
    _tools: int = 0
    _stopped: bool = False

    def _error(self, problem: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self.endpoint}: stream event {self.events}: {problem}")

    async def feed(self, event: SSEEvent) -> None:
        """Take one event of the stream.

        Raises:
            ProviderStreamError: an `error` event.
            ProviderResponseError: an event that does not fit the Messages stream.
        """
        self.events += 1
        try:
            data: JsonValue = json.loads(event.data)
        except json.JSONDecodeError:
            raise self._error(f"{event.event} data is not JSON: {event.data[:100]!r}") from None
        if not isinstance(data, dict):
            raise self._error(f"{event.event} data is not a JSON object")
        kind = data.get("type", event.event)
        if kind == "error":
            error = data.get("error")
            detail = (
                f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else error
            )
            raise ProviderStreamError(f"{self.endpoint}: the stream carried an error: {detail}")
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, dict):
                raise self._error("message_start has no message")
            self._message = dict(message)
            return
        if kind == "ping":
            return
        message = self._started(kind)
        if kind == "content_block_start":
            self._start_block(data)
        elif kind == "content_block_delta":
            await self._delta(data)
        elif kind == "message_delta":
            self._message_delta(message, data)
        elif kind == "message_stop":
            self._stopped = True
        # content_block_stop and event types added later need nothing here.

    def _started(self, kind: JsonValue) -> JsonObject:
        if self._message is None:
            raise self._error(f"{kind} before message_start")
        if self._stopped:
            raise ProviderStreamError(f"{self.endpoint}: the stream went on after message_stop")
        return self._message

    def _index(self, data: JsonObject) -> int:
        index = data.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise self._error(f"{data.get('type')} has no integer index")
        return index

    def _start_block(self, data: JsonObject) -> None:
        index = self._index(data)
        block = data.get("content_block")
        if not isinstance(block, dict):
            raise self._error(f"content_block_start {index} has no content_block")
        entry = _Block(body=dict(block))
        if block.get("type") == "tool_use":
            entry.tool_index = self._tools
            self._tools += 1
        self._blocks[index] = entry

    async def _delta(self, data: JsonObject) -> None:
        index = self._index(data)
        block = self._blocks.get(index)
        delta = data.get("delta")
        if block is None or not isinstance(delta, dict):
            raise self._error(f"content_block_delta for block {index}, which has not started")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise self._error(f"text_delta for block {index} has no text")
            block.body["text"] = str(block.body.get("text") or "") + text
            if self.on_delta is not None and text:
                await self.on_delta(ModelDelta(kind="text", text=text))
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str):
                raise self._error(f"input_json_delta for block {index} has no partial_json")
            block.parts.append(fragment)
            if self.on_delta is not None and fragment:
                await self.on_delta(
                    ModelDelta(
                        kind="tool_call_args",
                        text=fragment,
                        index=block.tool_index or 0,
                        call_id=_str(block.body.get("id")),
                        name=_str(block.body.get("name")),
                    )
                )
        elif kind in _FOLDED:
            # A thinking block's text and signature (the client sends them back as they
            # were); not streamed on, as the answer's text is.
            key = _FOLDED[kind]
            piece = delta.get(key)
            if not isinstance(piece, str):
                raise self._error(f"{kind} for block {index} has no {key}")
            block.body[key] = str(block.body.get(key) or "") + piece
        # citation deltas are not part of the answer we keep.

    def _message_delta(self, message: JsonObject, data: JsonObject) -> None:
        delta = data.get("delta")
        if isinstance(delta, dict):
            for key in ("stop_reason", "stop_sequence"):
                if key in delta:
                    message[key] = delta[key]
        usage = data.get("usage")
        if isinstance(usage, dict):
            # message_delta's counts are cumulative: they replace message_start's.
            start = message.get("usage")
            message["usage"] = {**(start if isinstance(start, dict) else {}), **usage}

    def body(self) -> JsonObject:
        """The `message` body the stream adds up to.

        Raises:
            ProviderStreamError: the stream ended before `message_stop`.
        """
        if self._message is None or not self._stopped:
            raise ProviderStreamError(
                f"{self.endpoint}: the stream ended before message_stop after"
                f" {self.events} events; the partial answer is dropped"
            )
        content: list[JsonValue] = []
        for _, block in sorted(self._blocks.items()):
            body = dict(block.body)
            if body.get("type") == "tool_use" and block.parts:
                raw = "".join(block.parts)
                try:
                    body["input"] = json.loads(raw)
                except json.JSONDecodeError:
                    # Kept verbatim: the adapter reports it as the call's parse error,
                    # as it would arguments that are not JSON.
                    body["input"] = raw
            content.append(body)
        return {**self._message, "content": content}


def _str(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None
