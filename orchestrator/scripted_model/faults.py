"""Provider faults a model script can inject, so tests meet what production endpoints do.

A turn of a script may carry a `fault`: the first `times` requests for that turn (every
request when `times` is left out) get the fault instead of the scripted answer, and later
ones get the answer. That makes "fails twice, then succeeds" expressible:

```yaml
turns:
  - content: "done"
    fault: {kind: status, status: 503, times: 2}
```

| kind | what the client meets |
| --- | --- |
| `status` | an HTTP error status (`status`), `Retry-After` from `retry_after`, any `headers` |
| `timeout` | no answer until the client gives up (at most `seconds`, then the answer) |
| `reset` | the connection is reset (TCP RST) before any byte of an answer |
| `cut` | headers and half the body (of a stream: half its events), then the connection closes |
| `cut_stream` | a stream's first `after` events, then the connection closes (no end marker) |
| `bad_json` | HTTP 200 whose body is not JSON: `body`, or the answer cut in half |

A status fault's `headers` imitate what gateways send besides the status, e.g.
`{llm_provider-retry-after: "120", x-should-retry: "false"}` for a LiteLLM proxy.

Counting the requests that met a fault is the one piece of state the scripted model server keeps;
everything else is still a pure function of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["TRANSPORT_STATE", "Fault", "FaultCounter", "fault_response"]

FaultKind = Literal["status", "timeout", "reset", "cut", "cut_stream", "bad_json"]

TRANSPORT_STATE = "replay.transport"
"""Key of the connection's transport in the request's `scope["state"]` (set by the
loopback server's protocol), needed to reset or cut a connection on purpose."""

_ONLY_FOR: dict[str, FaultKind] = {
    "status": "status",
    "retry_after": "status",
    "headers": "status",
    "seconds": "timeout",
    "body": "bad_json",
    "after": "cut_stream",
}


class Fault(BaseModel):
    """A failure the scripted model server answers with instead of a turn's scripted answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    times: int | None = Field(default=None, ge=1)
    """How many requests for this turn meet the fault before the answer is given; empty:
    every one (a deployment that is down)."""
    model: str | None = None
    """Only requests for this model id meet the fault (to fail one deployment of several)."""
    status: int | None = Field(default=None, ge=400, le=599)
    """`status`: the HTTP status to answer with."""
    retry_after: float | None = Field(default=None, ge=0)
    """`status`: seconds sent as `Retry-After`."""
    headers: dict[str, str] = Field(default_factory=dict)
    """`status`: more response headers, as a gateway or provider sends them."""
    seconds: float = Field(default=60.0, gt=0)
    """`timeout`: the longest the server holds the request before answering after all."""
    body: str | None = None
    """`bad_json`: the exact body to send; empty: the scripted answer cut in half."""
    message: str = "injected fault"
    """`status`: the error message in the body."""
    after: int = Field(default=1, ge=0)
    """`cut_stream`: how many events of the stream arrive before the cut. A request that
    did not ask for a stream meets a `cut` instead."""

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Fault:
        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs status (e.g. 503)")
        for field, kind in _ONLY_FOR.items():
            if field in self.model_fields_set and self.kind != kind:
                raise ValueError(f"{field} applies to {kind} faults, not {self.kind}")
        return self


class FaultCounter:
    """How many requests met each turn's fault, so `times` can run out."""

    def __init__(self) -> None:
        self._met: dict[tuple[str, int], int] = {}

    def claim(self, fault: Fault, conversation: str, turn: int, model: str) -> bool:
        """Whether this request meets the fault; counts it when it does."""
        if fault.model is not None and fault.model != model:
            return False
        met = self._met.get((conversation, turn), 0)
        if fault.times is not None and met >= fault.times:
            return False
        self._met[(conversation, turn)] = met + 1
        return True


class _Broken(Response):
    """A response that breaks its connection: a reset, or a body cut short.

    `parts` None resets the connection before any byte; otherwise the headers and each
    part go out (a declared `content_length` the parts do not reach, or a chunked stream
    without its last chunk) and the connection closes.
    """

    def __init__(
        self,
        scope_state: object,
        *,
        parts: list[bytes] | None,
        content_type: str = "application/json",
        content_length: int | None = None,
    ) -> None:
        super().__init__()
        self._state = scope_state
        self._parts = parts
        self._content_type = content_type
        self._content_length = content_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = self._state.get(TRANSPORT_STATE) if isinstance(self._state, dict) else None
        if not isinstance(transport, asyncio.Transport):
            raise RuntimeError("scripted model: the server does not expose its transport to faults")
        if self._parts is None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: closing sends RST instead of FIN, as a dropped connection does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            headers = [(b"content-type", self._content_type.encode())]
            if self._content_length is not None:
                headers.append((b"content-length", str(self._content_length).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for part in self._parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            transport.close()
        # Wait for uvicorn to see the connection go, so it does not answer on it.
        while (await receive())["type"] != "http.disconnect":
            pass


async def _hold_until_disconnect(receive: Receive, seconds: float) -> bool:
    """Wait until the client gives up (True), or `seconds` pass (False)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return True
    return False


async def fault_response(
    fault: Fault,
    answer: bytes,
    *,
    frames: list[bytes] | None,
    scope: Scope,
    receive: Receive,
    error: Callable[[int, str], Response],
) -> Response | None:
    """The response that injects `fault`, or None to send the answer after all.

    `answer` is the scripted answer's whole body and `frames` its event stream when the
    request asked for one; `cut` and `bad_json` send part of them. `error` writes an error
    body in the API's own envelope.
    """
    if fault.kind == "status":
        response = error(fault.status or 500, fault.message)
        response.headers.update(fault.headers)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response
    if fault.kind == "timeout":
        gave_up = await _hold_until_disconnect(receive, fault.seconds)
        return Response(status_code=204) if gave_up else None
    if fault.kind == "bad_json":
        text = fault.body.encode() if fault.body is not None else answer[: len(answer) // 2]
        return Response(text, status_code=200, media_type="application/json")
    state = scope.get("state")
    if fault.kind == "reset":
        return _Broken(state, parts=None)
    if frames is None:
        return _Broken(state, parts=[answer[: len(answer) // 2]], content_length=len(answer))
    sent = fault.after if fault.kind == "cut_stream" else len(frames) // 2
    return _Broken(state, parts=frames[:sent], content_type="text/event-stream")
