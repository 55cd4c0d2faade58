"""What a streaming provider hands to watchers while an answer is still arriving.

A provider's `complete(request, on_delta=sink)` awaits `sink(delta)` for each piece of
model text and each fragment of a tool call's arguments, in the order the endpoint sent
them. Deltas are best effort and carry no durable meaning: the `ModelResponse` that
`complete` returns is the only result, and an answer cut short raises instead of
returning, so a watcher must be ready to drop the deltas of an attempt that failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.providers.messages import ModelResponse

__all__ = ["DeltaSink", "ModelDelta", "answer_deltas"]


class ModelDelta(BaseModel):
    """One piece of a model answer as it streams in.

    `call_id` and `name` are set on the first fragment of a tool call (when the endpoint
    names them) and may be None on later fragments; `index` is the tool call's position in
    the answer, so fragments of parallel calls can be told apart.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["text", "tool_call_args"]
    text: str
    """The new text: answer text, or a fragment of a tool call's JSON arguments."""
    index: int = 0
    """The tool call's position in the answer; 0 for text."""
    call_id: str | None = None
    name: str | None = None


DeltaSink = Callable[[ModelDelta], Awaitable[None]]
"""Receives each delta; a slow sink slows the read of the stream, so keep it quick."""


def answer_deltas(response: ModelResponse) -> list[ModelDelta]:
    """A whole answer as the deltas a stream of it would have carried, in one piece each.

    Used when a deployment does not stream (`stream: false`): watchers still see the
    text and tool calls, only all at once when the answer is complete.
    """
    message = response.message
    deltas = [ModelDelta(kind="text", text=message.content)] if message.content else []
    deltas.extend(
        ModelDelta(
            kind="tool_call_args",
            text=call.arguments_json,
            index=index,
            call_id=call.id,
            name=call.name,
        )
        for index, call in enumerate(message.tool_calls)
    )
    return deltas
