"""The gateway's routes, OpenAI- and Anthropic-compatible, whatever HTTP server carries them.

Each takes an `Ask` (its body already read, within the size limit) and gives a `Reply`.
The body is parsed (400 when not JSON) before anything else happens, so bad input changes
nothing stored. Every error comes back in the error shape of the API the client spoke.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid

from pydantic import JsonValue

from orchestrator.exceptions import StoreError
from orchestrator.gateway import jsonio
from orchestrator.gateway.anthropic_wire import parse_messages, render_messages
from orchestrator.gateway.calls import ChatCall
from orchestrator.gateway.embeddings import embed
from orchestrator.gateway.errors import BadRequest, Dialect, GatewayError, error_response
from orchestrator.gateway.exchange import Ask, Handler, Reply, Route, json_reply
from orchestrator.gateway.openai_wire import parse_chat, render_chat
from orchestrator.gateway.relay import normalised
from orchestrator.gateway.service import Gateway, Outcome
from orchestrator.gateway.stream import ClientGone, stream_reply
from orchestrator.logs import get_logger

__all__ = ["routes"]

log = get_logger(__name__)


def _json(body: bytes) -> JsonValue:
    try:
        value: JsonValue = jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return value


async def _answer(ask: Ask, gateway: Gateway, call: ChatCall, api: Dialect) -> Outcome:
    """The whole answer; a client that disconnects first cancels the upstream call.

    Its audit row may be left for after the answer's write (`_replied`).

    The request runs in this task, and a callback on the request's disconnect cancels it
    if the client goes away first. A task of its own for the work and `asyncio.wait` on
    both cost more than the routing of the request.

    Raises:
        ClientGone: the client disconnected before the answer was ready.
    """
    admitted = await gateway.admit(call, ask.headers, api)
    task = asyncio.current_task()
    assert task is not None
    answered = False

    def disconnected(_: object) -> None:
        if not answered:
            task.cancel()

    gone = ask.gone()
    gone.add_done_callback(disconnected)
    try:
        outcome = await gateway.run(admitted, defer=True)
        answered = True
        return outcome
    except asyncio.CancelledError:
        if gone.done() and not gone.cancelled():
            task.uncancel()
            raise ClientGone from None
        raise
    finally:
        answered = True
        # Shared with the request's other watchers: the callback goes, the future stays.
        gone.remove_done_callback(disconnected)


def _replied(gateway: Gateway, outcome: Outcome, reply: Reply) -> Reply:
    """`reply`, with the writes its answer did not wait for to commit once it is written."""
    if outcome.later is not None:
        reply.after = functools.partial(gateway.record, outcome)
    return reply


def _include_usage(raw: JsonValue) -> bool:
    """Whether an OpenAI client asked for a usage chunk at the end of its stream."""
    options = raw.get("stream_options") if isinstance(raw, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _guarded(dialect: Dialect, handler: Handler) -> Handler:
    """Turn every refusal into the client's own error shape; never a traceback."""

    async def endpoint(ask: Ask) -> Reply:
        try:
            return await handler(ask)
        except GatewayError as exc:
            return error_response(exc, dialect, {})
        except ClientGone:
            return Reply(499, {}, content_type="")
        except StoreError as exc:
            log.error("gateway: store failed", error=str(exc))
            return error_response(GatewayError(f"the gateway's store failed: {exc}"), dialect, {})

    return endpoint


def routes(gateway: Gateway, prefix: str = "") -> list[Route]:
    """The routes, relative to where they are mounted (`/v1`), or under `prefix`."""

    async def chat_completions(ask: Ask) -> Reply:
        raw = _json(ask.body)
        call = parse_chat(raw)
        if call.stream:
            admitted = await gateway.admit(call, ask.headers, "openai")
            return await stream_reply(ask, gateway, admitted, _include_usage(raw))
        outcome = await _answer(ask, gateway, call, "openai")
        body = render_chat(
            outcome.answered.response,
            deployment=outcome.answered.deployment,
            call_id=f"chatcmpl-{outcome.request_id}",
            created=int(time.time()),
        )
        return _replied(gateway, outcome, json_reply(body, 200, outcome.headers()))

    async def messages(ask: Ask) -> Reply:
        call = parse_messages(_json(ask.body), beta=ask.headers.get("anthropic-beta"))
        if call.stream:
            admitted = await gateway.admit(call, ask.headers, "anthropic")
            return await stream_reply(ask, gateway, admitted)
        outcome = await _answer(ask, gateway, call, "anthropic")
        body = render_messages(
            normalised(outcome.answered.response),
            deployment=outcome.answered.deployment,
            call_id=f"msg_{outcome.request_id}",
        )
        return _replied(gateway, outcome, json_reply(body, 200, outcome.headers()))

    async def embeddings(ask: Ask) -> Reply:
        raw = _json(ask.body)
        if not isinstance(raw, dict):
            raise BadRequest("body: expected an object")
        body, deployment = await embed(gateway, raw, ask.headers)
        return json_reply(
            body, 200, {"x-orchestrator-deployment": deployment, "x-request-id": uuid.uuid4().hex}
        )

    async def models(ask: Ask) -> Reply:
        key = gateway.authenticate(ask.headers)
        data: list[JsonValue] = [
            {"id": name, "object": "model", "created": 0, "owned_by": "orchestrator"}
            for name in gateway.names_for(key)
        ]
        return json_reply({"object": "list", "data": data})

    table: list[tuple[str, str, Dialect, Handler]] = [
        ("POST", "/chat/completions", "openai", chat_completions),
        ("POST", "/messages", "anthropic", messages),
        ("POST", "/embeddings", "openai", embeddings),
        ("GET", "/models", "openai", models),
    ]
    return [
        Route(method, prefix + path, dialect, _guarded(dialect, handler))
        for method, path, dialect, handler in table
    ]
