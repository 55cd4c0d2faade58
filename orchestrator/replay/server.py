"""The replay model server: OpenAI chat-completions over real HTTP, answered from a script.

Demos and tests talk to it through the same provider code, HTTP stack and error handling
a real endpoint would exercise, with no network and no model. It keeps no conversation
state: which turn to answer is read off the request (how many assistant messages it holds),
so a retried call gets the same answer. A turn may declare a fault
(`orchestrator.replay.faults`) that its first requests meet instead of the answer.

`LoopbackServer` runs any ASGI app with uvicorn on the running event loop; tests use it to
stand up small misbehaving endpoints next to the replay server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import time
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.exceptions import ConfigError
from orchestrator.replay.faults import TRANSPORT_STATE, Fault, FaultCounter, fault_response
from orchestrator.replay.script import Conversation, ReplayScript, Turn, load_replay_script
from orchestrator.types import JsonObject

__all__ = ["LoopbackServer", "ReplayServer", "ServedRequest", "create_replay_app"]


class ServedRequest(BaseModel):
    """What the replay server saw and did for one chat-completions request.

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
    """The tool messages after the request's last assistant message (each cut at 2,000
    characters): what the model is told about its latest tool calls, errors included.
    Only the latest round's, so a long loop's log does not grow with its square."""
    received_at: float = 0.0
    """`time.monotonic()` when the request arrived, to check how long a client waited."""


_TOOL_RESULT_CHARS = 2_000


class _WireFunction(BaseModel):
    name: str
    arguments: JsonValue = ""


class _WireToolCall(BaseModel):
    function: _WireFunction


class _WireMessage(BaseModel):
    role: str
    content: JsonValue = None
    tool_calls: list[_WireToolCall] | None = None


class _WireToolFunction(BaseModel):
    name: str


class _WireTool(BaseModel):
    function: _WireToolFunction


class _WireRequest(BaseModel):
    """The part of a chat-completions request the replay server reads; the rest is ignored."""

    model: str
    messages: list[_WireMessage] = Field(min_length=1)
    tools: list[_WireTool] | None = None


def _text(content: JsonValue) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def _arguments_text(arguments: JsonValue) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True)


def _match_context(request: _WireRequest) -> tuple[str, str]:
    """The text `contains` is matched against, and the first user message on its own."""
    system = [_text(m.content) for m in request.messages if m.role == "system"]
    first_user = next((_text(m.content) for m in request.messages if m.role == "user"), "")
    return "\n".join([*system, first_user]), first_user


def _input_chars(request: _WireRequest) -> int:
    total = 0
    for message in request.messages:
        total += len(_text(message.content))
        for call in message.tool_calls or []:
            total += len(_arguments_text(call.function.arguments))
    return total


def _completion(
    request: _WireRequest, conversation: Conversation, turn_index: int, turn: Turn
) -> JsonObject:
    """A chat.completion body; every field is derived from its inputs, nothing from time."""
    tool_calls: list[JsonValue] = [
        {
            "id": f"call_{conversation.name}_{turn_index}_{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for index, call in enumerate(turn.tool_calls)
    ]
    message: JsonObject = {"role": "assistant", "content": turn.content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if turn.usage is not None:
        input_tokens, output_tokens = turn.usage.input_tokens, turn.usage.output_tokens
    else:
        output_chars = (
            len(turn.content)
            if turn.content is not None
            else sum(len(call.arguments_json) for call in turn.tool_calls)
        )
        input_tokens = _input_chars(request) // 4 + 1
        output_tokens = output_chars // 4 + 1
    return {
        "id": f"chatcmpl-replay-{conversation.name}-{turn_index}",
        "object": "chat.completion",
        "created": 0,
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _error(status: int, message: str, *, code: str | None = None) -> JSONResponse:
    body: JsonObject = {"message": message, "type": "invalid_request_error", "code": code}
    return JSONResponse({"error": body}, status_code=status)


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


def _miss_message(script: ReplayScript, request: _WireRequest, first_user: str) -> str:
    start = first_user[:60] + ("…" if len(first_user) > 60 else "")
    return (
        f"replay: no conversation matches model={request.model!r} first user message starts"
        f" {start!r} (tried: {_describe_script(script)})"
    )


def _latest_tool_results(request: _WireRequest) -> list[str]:
    results: list[str] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        results.append(_text(message.content)[:_TOOL_RESULT_CHARS])
    return results[::-1]


def _served(
    request: _WireRequest,
    conversation: Conversation | None,
    turn_index: int,
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
        turn=turn_index,
        model=request.model,
        message_count=len(request.messages),
        tools=[tool.function.name for tool in request.tools or []],
        tool_calls=turn is not None and fault is None and bool(turn.tool_calls),
        status=status,
        fault=fault.kind if fault is not None else None,
        tool_results=_latest_tool_results(request),
        received_at=received_at,
    )


def _parse_body(raw: bytes) -> _WireRequest | str:
    """The request, or a message saying why the body is not a chat-completions request."""
    try:
        return _WireRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()
        )
        return f"replay: malformed chat-completions request: {problems}"


def create_replay_app(
    script: ReplayScript,
    *,
    api_key: str | None = None,
    served: list[ServedRequest] | None = None,
) -> Starlette:
    """The replay server's ASGI app.

    Args:
        script: The conversations to answer from.
        api_key: When set, chat-completions requests must carry `Authorization: Bearer
            <api_key>`, so the provider's auth and 401 handling can be exercised.
        served: The list each handled request is appended to; the caller owns it so it can
            read it while the app serves.
    """
    log = served if served is not None else []
    faults = FaultCounter()
    expected_auth = f"Bearer {api_key}".encode() if api_key is not None else None

    async def chat_completions(request: Request) -> Response:
        received_at = time.monotonic()
        if expected_auth is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected_auth):
                return _error(401, "replay: missing or wrong API key", code="invalid_api_key")
        parsed = _parse_body(await request.body())
        if isinstance(parsed, str):
            return _error(400, parsed)
        context, first_user = _match_context(parsed)
        turn_index = sum(1 for m in parsed.messages if m.role == "assistant")
        conversation = script.find(parsed.model, context)
        turn = conversation.turn_for(turn_index) if conversation is not None else None
        fault = None
        if conversation is not None and turn is not None and turn.fault is not None:
            claimed = faults.claim(turn.fault, conversation.name, turn_index, parsed.model)
            fault = turn.fault if claimed else None
        log.append(_served(parsed, conversation, turn_index, turn, fault, received_at))
        if conversation is None:
            return _error(400, _miss_message(script, parsed, first_user))
        if turn is None:
            return _error(
                400,
                f"replay: conversation {conversation.name!r} has {len(conversation.turns)}"
                f" turns but the request already holds {turn_index} assistant messages"
                " (after_last: error)",
            )
        answer = JSONResponse(_completion(parsed, conversation, turn_index, turn))
        if fault is None:
            return answer
        injected = await fault_response(
            fault, bytes(answer.body), scope=request.scope, receive=request.receive
        )
        return answer if injected is None else injected

    async def served_requests(_: Request) -> JSONResponse:
        return JSONResponse([entry.model_dump() for entry in log])

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/_replay/requests", served_requests, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


class _TransportInState(H11Protocol):
    """uvicorn's h11 protocol, putting each connection's transport in `scope["state"]`.

    The replay server's `reset` and `cut` faults break a connection on purpose, which an
    ASGI app cannot do without its transport.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, TRANSPORT_STATE: transport}


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that shares its host's event loop and signal handlers.

    uvicorn normally owns the process: it installs SIGINT/SIGTERM handlers and re-raises
    them afterwards. Embedded in a test run or a worker, that belongs to the host.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so the real port is known at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    # asyncio sets TCP_NODELAY only on sockets it creates; accepted connections inherit
    # this one's options. Without it uvicorn's separate header and body writes meet
    # delayed ACKs and every answer takes ~40 ms instead of ~1 ms (bench/README.md).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class LoopbackServer:
    """Serve an ASGI app with uvicorn as a task on the running event loop.

    An async context manager: on entry it binds the socket (port 0 picks a free port),
    starts uvicorn and waits until it accepts requests; on exit it shuts uvicorn down.

    Args:
        app: The ASGI app to serve.
        host: Interface to bind; loopback by default, since this is for local use.
        port: Port to bind; 0 picks a free one, read it back from `port`.
        startup_timeout: Seconds to wait for uvicorn to start serving.
        shutdown_timeout: Seconds in-flight requests get to finish on exit before they
            are cancelled.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        shutdown_timeout: int = 2,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._port is None:
            raise RuntimeError("the server is not running; use it as `async with`")
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:41234`."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        sock = _bind(self._host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=self._port,
            http=_TransportInState,
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=self._shutdown_timeout,
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(self._serve(server, sock), name=f"uvicorn:{self.url}")
        ready = asyncio.create_task(server.ready.wait())
        try:
            async with asyncio.timeout(self._startup_timeout):
                await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            await self._stop()
            raise ConfigError(
                f"server on {self.url} did not start within {self._startup_timeout}s"
            ) from None
        finally:
            ready.cancel()
        if not server.ready.is_set():
            task, self._server, self._task = self._task, None, None
            task.result()
            raise ConfigError(f"server on {self.url} stopped while starting")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    @staticmethod
    async def _serve(server: _EmbeddedServer, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when startup fails; embedded, that would end the
            # host's event loop, so it becomes an ordinary error instead.
            raise ConfigError(f"uvicorn failed to start (exit status {exc.code})") from None
        finally:
            sock.close()

    async def _stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            async with asyncio.timeout(self._shutdown_timeout + 5):
                await task
        except TimeoutError:
            # The timeout cancelled the task; nothing is left running.
            server.force_exit = True


class ReplayServer(LoopbackServer):
    """The replay model server on loopback, for tests and demos.

    ```python
    async with ReplayServer(Path("demo.yaml")) as replay:
        provider = OpenAIProvider(base_url=replay.base_url)
    ```

    Args:
        script: The script, or the path of a YAML script to load.
        api_key: When set, requests must carry it as a bearer token.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.

    Raises:
        ConfigError: the script path does not hold a valid script.
    """

    def __init__(
        self,
        script: ReplayScript | Path | str,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = (
            script if isinstance(script, ReplayScript) else load_replay_script(Path(script))
        )
        self._served: list[ServedRequest] = []
        app = create_replay_app(self.script, api_key=api_key, served=self._served)
        super().__init__(app, host=host, port=port)

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL to give a provider, e.g. `http://127.0.0.1:41234/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[ServedRequest]:
        """A copy of every chat-completions request served so far, oldest first."""
        return list(self._served)
