"""What the scripted model server reads off a request and what it answers, whatever the API.

Each wire module (`_openai`, `_anthropic`) turns its request body into an `Asked` and an
`Answer` back into its own body or event stream; picking the conversation and turn, and
estimating token counts, happen once here. The answer's content is a pure function of the
request and the script, so a retried call gets the same text and tool calls; only the
response id and `created` differ per response, as a real API's do.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.scripted_model.script import Conversation, Turn

__all__ = ["Answer", "Asked", "ScriptedCall", "answer_for", "pieces"]

Api = Literal["openai", "anthropic"]

_MOST_PIECES = 64
"""A streamed text or arguments string is sent in at most this many pieces, so a long
answer does not become thousands of events (each costs both ends some 30 µs, which the
sessions of the test suite and the benchmarks would pay on every model call)."""
_WORDS = re.compile(r"\S+\s*|\s+")
_PIECE_CHARS = 8
"""Tool-call arguments are streamed in pieces of this many characters, as real APIs send
a few tokens' worth at a time."""


@dataclass(frozen=True)
class Asked:
    """The parts of a request the scripted model server uses, read off either API's body."""

    api: Api
    model: str
    context: str
    """System text plus the first user message: what `match.contains` is tried on."""
    first_user: str
    turn: int
    """How many assistant messages the request holds: the turn it asks for."""
    message_count: int
    input_chars: int
    tools: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    prefixes: list[tuple[str, int, bool]] = field(default_factory=list)
    """With `cache_control` breakpoints (Anthropic), per content block up to the last one:
    the digest of the prompt up to and including it (model included, breakpoints left out),
    its length in characters, and whether the block is a breakpoint; else empty."""


@dataclass(frozen=True)
class ScriptedCall:
    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class Answer:
    """One scripted answer, ready to be written in either API's shape."""

    id: str
    created: int
    model: str
    content: str | None
    tool_calls: list[ScriptedCall]
    input_tokens: int
    """The whole prompt, cache reads and writes included (Anthropic's wire subtracts them)."""
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def answer_for(asked: Asked, conversation: Conversation, turn: Turn) -> Answer:
    """The answer to `asked` from `turn` of `conversation`.

    Token counts are the turn's `usage`, or a length estimate (four characters a token)
    that depends on the request alone, so a streamed and a non-streamed call agree.
    """
    prefix = "toolu" if asked.api == "anthropic" else "call"
    calls = [
        ScriptedCall(
            call_id=f"{prefix}_{conversation.name}_{asked.turn}_{index}",
            name=call.name,
            arguments_json=call.arguments_json,
        )
        for index, call in enumerate(turn.tool_calls)
    ]
    if turn.usage is not None:
        input_tokens, output_tokens = turn.usage.input_tokens, turn.usage.output_tokens
    else:
        output_chars = (
            len(turn.content)
            if turn.content is not None
            else sum(len(call.arguments_json) for call in calls)
        )
        input_tokens = asked.input_chars // 4 + 1
        output_tokens = output_chars // 4 + 1
    kind = "msg" if asked.api == "anthropic" else "chatcmpl"
    return Answer(
        id=f"{kind}_{uuid.uuid4().hex[:24]}" if kind == "msg" else f"{kind}-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=asked.model,
        content=turn.content,
        tool_calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def pieces(text: str, *, words: bool) -> list[str]:
    """`text` cut as a stream would carry it; joined, the pieces give `text` back.

    Word by word for text, a few characters at a time for arguments, in at most
    `_MOST_PIECES` pieces.
    """
    if not text:
        return []
    if words and len(text) <= _MOST_PIECES * 64:
        cut = _WORDS.findall(text)
        if len(cut) <= _MOST_PIECES:
            return cut
        per = math.ceil(len(cut) / _MOST_PIECES)
        return ["".join(cut[i : i + per]) for i in range(0, len(cut), per)]
    size = max(_PIECE_CHARS, math.ceil(len(text) / _MOST_PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)]
