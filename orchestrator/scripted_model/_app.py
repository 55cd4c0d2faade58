"""The scripted model server's ASGI app: both model APIs, answered from one script.

`POST /v1/chat/completions` speaks OpenAI's protocol and `POST /v1/messages` Anthropic's,
each with and without `stream`; `POST /v1/embeddings` answers deterministic vectors
(`_embeddings`); `GET /v1/models` lists the scripted model ids (in
Anthropic's shape when the request carries `anthropic-version`). Every error, an unknown
path included, comes in the envelope of the API asked (Anthropic's for `/v1/messages` and
for requests carrying `anthropic-version`, OpenAI's otherwise). `GET /_replay/requests` returns
what was served, for tests.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.scripted_model import _anthropic, _openai
from orchestrator.scripted_model._answer import Answer, Asked, answer_for
from orchestrator.scripted_model._embeddings import embeddings_body
from orchestrator.scripted_model.faults import Fault, FaultCounter, fault_response
from orchestrator.scripted_model.script import Conversation, ReplayScript, Turn
from orchestrator.types import JsonObject

__all__ = ["ServedRequest", "create_replay_app"]


class ServedRequest(BaseModel):
    """What the scripted model server saw and did for one model request.

    Tests read these to assert which model each call used and what tools it offered.
    """

    model_config = ConfigDict(frozen=True)

    conversation: str | None
    """The conversation that answered, or None when none matched."""
    turn: int
    """How many assistant messages the request held (the turn it asked for)."""
    model: str
    message_count: int
    tools: list[str]
    tool_calls: bool
    """Whether the answer was tool calls (False for text answers and errors)."""
    status: int
    """The HTTP status answered; 0 when the request met a fault that gave none."""
    fault: str | None = None
    """The kind of fault the request met instead of the answer (`status`, `reset`, ...)."""
    tool_results: list[str] = Field(default_factory=list)
    """The tool results after the request's last assistant message (each cut at 2,000
    characters): what the model is told about its latest tool calls, errors included.
    Only the latest round's, so a long loop's log does not grow with its square."""
    received_at: float = 0.0
    """`time.monotonic()` when the request arrived, to check how long a client waited."""
    api: Literal["openai", "anthropic"] = "openai"
    """Which API the request spoke: chat completions or Anthropic Messages."""
    stream: bool = False
    """Whether the request asked for a streamed answer."""


@dataclass(frozen=True)
class _Wire:
    """One API's reading of requests and writing of answers and errors."""

    read: Callable[[bytes], Asked | str]
    body: Callable[[Answer], JsonObject]
    frames: Callable[[Answer, bool], list[bytes]]
    error: Callable[[int, str], JSONResponse]
    authorised: Callable[[Request, bytes], bool]


def _bearer(request: Request, key: bytes) -> bool:
    given = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(given, b"Bearer " + key)


_OPENAI = _Wire(
    read=_openai.read_request,
    body=_openai.completion,
    frames=lambda answer, usage: _openai.chunk_frames(answer, include_usage=usage),
    error=_openai.openai_error,
    authorised=_bearer,
)
_ANTHROPIC = _Wire(
    read=_anthropic.read_request,
    body=_anthropic.message,
    frames=lambda answer, _usage: _anthropic.event_frames(answer),
    error=_anthropic.anthropic_error,
    authorised=lambda request, key: (
        hmac.compare_digest(request.headers.get("x-api-key", "").encode(), key)
        or _bearer(request, key)
    ),
)


def _describe_script(script: ReplayScript) -> str:
    parts: list[str] = []
    for conversation in script.conversations:
        conditions = [
            f"{key}={value!r}"
            for key, value in conversation.match.model_dump().items()
            if value is not None
        ]
        parts.append(f"{conversation.name}[{', '.join(conditions) or 'any'}]")
    return ", ".join(parts)


def _miss_message(script: ReplayScript, asked: Asked) -> str:
    start = asked.first_user[:60] + ("…" if len(asked.first_user) > 60 else "")
    return (
        f"scripted model: no conversation matches model={asked.model!r} first user message starts"
        f" {start!r} (tried: {_describe_script(script)})"
    )


def _served(
    asked: Asked,
    conversation: Conversation | None,
    turn: Turn | None,
    fault: Fault | None,
    received_at: float,
) -> ServedRequest:
    if fault is None:
        status = 200 if turn is not None else 400
    else:
        status = fault.status or (200 if fault.kind == "bad_json" else 0)
    return ServedRequest(
        conversation=conversation.name if conversation is not None else None,
        turn=asked.turn,
        model=asked.model,
        message_count=asked.message_count,
        tools=asked.tools,
        tool_calls=turn is not None and fault is None and bool(turn.tool_calls),
        status=status,
        fault=fault.kind if fault is not None else None,
        tool_results=asked.tool_results,
        received_at=received_at,
        api=asked.api,
        stream=asked.stream,
    )


def _models(script: ReplayScript, anthropic: bool) -> JSONResponse:
    ids = sorted({c.match.model for c in script.conversations if c.match.model is not None})
    if not anthropic:
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "replay"} for i in ids]
        return JSONResponse({"object": "list", "data": data})
    epoch = datetime.fromtimestamp(0, UTC).isoformat().replace("+00:00", "Z")
    return JSONResponse(
        {
            "data": [
                {"type": "model", "id": i, "display_name": i, "created_at": epoch} for i in ids
            ],
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    )


class _Replay:
    """Answers model requests from the script, counting faults and logging each request."""

    def __init__(self, script: ReplayScript, key: bytes | None, log: list[ServedRequest]) -> None:
        self.script = script
        self.key = key
        self.log = log
        self.faults = FaultCounter()
        self.prompt_cache: set[str] = set()
        """Digests of the prompt prefixes cached so far (Anthropic `cache_control`)."""

    def _pick(self, asked: Asked) -> tuple[Conversation | None, Turn | None, Fault | None]:
        conversation = self.script.find(asked.model, asked.context)
        turn = conversation.turn_for(asked.turn) if conversation is not None else None
        fault = None
        if conversation is not None and turn is not None and turn.fault is not None:
            claimed = self.faults.claim(turn.fault, conversation.name, asked.turn, asked.model)
            fault = turn.fault if claimed else None
        return conversation, turn, fault

    async def answer(self, request: Request, wire: _Wire) -> Response:
        received_at = time.monotonic()
        if self.key is not None and not wire.authorised(request, self.key):
            return wire.error(401, "scripted model: missing or wrong API key")
        asked = wire.read(await request.body())
        if isinstance(asked, str):
            return wire.error(400, asked)
        conversation, turn, fault = self._pick(asked)
        self.log.append(_served(asked, conversation, turn, fault, received_at))
        if conversation is None:
            return wire.error(400, _miss_message(self.script, asked))
        if turn is None:
            return wire.error(
                400,
                f"scripted model: conversation {conversation.name!r} has {len(conversation.turns)}"
                f" turns but the request already holds {asked.turn} assistant messages"
                " (after_last: error)",
            )
        scripted = answer_for(asked, conversation, turn)
        if asked.prefixes:
            read, written = _anthropic.cache_usage(
                asked, scripted.input_tokens, self.prompt_cache, write=fault is None
            )
            scripted = replace(scripted, cache_read_tokens=read, cache_write_tokens=written)
        whole = JSONResponse(wire.body(scripted))
        frames = wire.frames(scripted, asked.include_usage) if asked.stream else None
        if fault is not None:
            injected = await fault_response(
                fault,
                bytes(whole.body),
                frames=frames,
                scope=request.scope,
                receive=request.receive,
                error=wire.error,
            )
            if injected is not None:
                return injected
        if frames is None:
            return whole
        return StreamingResponse(
            _each(frames), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )


async def _each(frames: list[bytes]) -> AsyncIterator[bytes]:
    """The frames as an async iterator, a few per write.

    Starlette runs a plain iterator's every step in a thread (a streamed answer took ~40x
    a whole one); a write per frame cost another ~2x on loopback, where nothing is gained
    by it: the client still reads every event on its own.
    """
    for start in range(0, len(frames), _FRAMES_PER_WRITE):
        yield b"".join(frames[start : start + _FRAMES_PER_WRITE])


_FRAMES_PER_WRITE = 8


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the API's envelope."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = f"scripted model: {request.method} {request.url.path}: {_REASONS.get(status, 'failed')}"
    anthropic = request.url.path.endswith("/messages") or "anthropic-version" in request.headers
    wire = _ANTHROPIC if anthropic else _OPENAI
    return wire.error(status, text)


_REASONS = {
    404: "no such endpoint (it serves /v1/chat/completions, /v1/messages and /v1/models)",
    405: "method not allowed",
}


def create_replay_app(
    script: ReplayScript,
    *,
    api_key: str | None = None,
    served: list[ServedRequest] | None = None,
) -> Starlette:
    """The scripted model server's ASGI app.

    Args:
        script: The conversations to answer from.
        api_key: When set, model requests must carry it (`Authorization: Bearer`, or
            `x-api-key` on `/v1/messages`), so a provider's auth and 401 handling can be
            exercised.
        served: The list each handled request is appended to; the caller owns it so it can
            read it while the app serves.
    """
    log = served if served is not None else []
    replay = _Replay(script, api_key.encode() if api_key is not None else None, log)

    async def chat_completions(request: Request) -> Response:
        return await replay.answer(request, _OPENAI)

    async def messages(request: Request) -> Response:
        return await replay.answer(request, _ANTHROPIC)

    async def embeddings(request: Request) -> JSONResponse:
        body = embeddings_body(await request.body())
        return _OPENAI.error(400, body) if isinstance(body, str) else JSONResponse(body)

    async def models(request: Request) -> JSONResponse:
        return _models(script, "anthropic-version" in request.headers)

    async def served_requests(_: Request) -> JSONResponse:
        return JSONResponse([entry.model_dump() for entry in log])

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_replay/requests", served_requests, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
