"""What every HTTP model provider shares: URL checks, the client's life, error mapping.

An adapter (`OpenAIProvider`, `AnthropicProvider`) subclasses `HTTPProvider`, builds its
wire body and reads its wire answer; sending, timeouts, connection failures, HTTP error
statuses, retry hints (`retry_hints`) and API-key redaction are handled here once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import ClassVar, Protocol, Self

import httpx
from pydantic import JsonValue

from orchestrator.exceptions import (
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderReportedError,
    ProviderResponseError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from orchestrator.providers._sse import SSEEvent, sse_events
from orchestrator.providers.messages import ModelResponse
from orchestrator.providers.retry_hints import retry_after_hint
from orchestrator.providers.streaming import DeltaSink, answer_deltas
from orchestrator.types import JsonObject

__all__ = ["HTTPProvider", "StreamAssembler", "parse_arguments", "should_retry", "truncate"]

_MAX_DETAIL = 300
_REDACTED = "[redacted]"


def parse_arguments(raw: str) -> tuple[JsonObject | None, str | None]:
    """The parsed arguments object, or None and why not.

    An empty string counts as `{}`: some OpenAI-compatible servers send it for tools that
    take no arguments, and the skill's own validation still catches missing fields.
    """
    if not raw.strip():
        return {}, None
    try:
        value: JsonValue = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON: {exc.msg} at char {exc.pos}"
    if not isinstance(value, dict):
        return None, f"arguments are not a JSON object but {type(value).__name__}"
    return value, None


def _own_client() -> httpx.AsyncClient:
    """A provider's own client: plain-`http` endpoints through the gateway's `LeanTransport`.

    httpx's default transport (httpcore over anyio) pauses and resumes reading the socket
    around every read of a streamed answer: two `epoll_ctl` system calls per chunk on the
    worker's event loop, each of which lets the interpreter's lock go to another thread
    and waits to get it back (bench/README.md, `stream.py`, "the sender thread"). The
    lean transport keeps the socket read by an asyncio protocol and parses in C; `https`,
    and everything without `httptools`, still goes to httpx's own transport. With tracing
    on, httpx's own transport everywhere: OpenTelemetry's httpx instrumentation records the
    provider's span from that transport, and a trace must reach the provider.
    """
    # Imported here: the gateway's package imports the providers.
    from orchestrator.gateway.http1 import LeanTransport
    from orchestrator.observability.tracing import tracing_on

    if tracing_on():
        return httpx.AsyncClient()
    return httpx.AsyncClient(transport=LeanTransport())


def should_retry(headers: httpx.Headers) -> bool | None:
    """The endpoint's own verdict from `x-should-retry` (the OpenAI SDKs' convention), if any.

    A gateway that has already retried answers `false`; one that knows a 4xx is passing
    answers `true`. Anything else leaves the decision to the status.
    """
    raw = headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(raw)


class StreamAssembler(Protocol):
    """Folds a vendor's stream events into the body a non-streamed answer would be."""

    async def feed(self, event: SSEEvent) -> None:
        """Take one event; raise a `ProviderError` for one that breaks the stream."""

    def body(self) -> JsonObject:
        """The whole answer; raise `ProviderStreamError` if the stream did not finish."""


def _is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def truncate(text: str, limit: int = _MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HTTPProvider:
    """Posts JSON to one endpoint and maps every failure to a `ProviderError`.

    Use it as an async context manager, or call `aclose()`, so the connection pool is
    released. A client passed in is used as is and left open: its owner closes it.

    Raises:
        ConfigError: `base_url` is not an http(s) URL.
    """

    path: ClassVar[str]
    """The endpoint below `base_url` that each vendor's adapter posts to."""
    answer_key: ClassVar[str]
    """The top-level field of a successful answer (`choices`, `content`, `output`): a 2xx
    body with `error` and without it is the endpoint's error, not a malformed answer."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        try:
            root = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"provider base_url {base_url!r} is not a valid URL") from exc
        if root.scheme not in ("http", "https") or not root.host:
            raise ConfigError(f"provider base_url {base_url!r} is not an http(s) URL")
        url = root.copy_with(path=self.endpoint_path(root.path))
        self._url = url
        self._endpoint = str(url.copy_with(username=None, password=None, query=None))
        self._api_key = api_key or None
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = http_client is None
        self._client = http_client if http_client is not None else _own_client()

    @classmethod
    def endpoint_path(cls, base_path: str) -> str:
        """The path requests go to, for a `base_url` with this path."""
        return base_path.rstrip("/") + cls.path

    @property
    def endpoint(self) -> str:
        """The URL requests go to, without credentials; safe to log."""
        return self._endpoint

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was passed in."""
        if self._owns_client:
            await self._client.aclose()

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, _REDACTED) if self._api_key else text

    async def _exchange(
        self,
        body: JsonObject,
        headers: dict[str, str],
        error_detail: Callable[[httpx.Response], str],
        parse: Callable[[JsonValue], ModelResponse],
        assembler: StreamAssembler | None,
        on_delta: DeltaSink | None,
    ) -> ModelResponse:
        """One model call, streamed when an `assembler` is given, read by `parse` either way.

        A stream is folded into the body a whole answer would have been, so `parse` sees
        the same thing in both cases. An answer that arrived whole (not streamed, or an
        endpoint that ignored `stream`) reaches `on_delta` in one piece per part.
        """
        streamed = False
        if assembler is None:
            raw = await self._post(body, headers, error_detail)
        else:
            whole = await self._post_stream(body, headers, error_detail, assembler.feed)
            streamed = whole is None
            raw = assembler.body() if whole is None else whole
        response = parse(raw)
        if on_delta is not None and not streamed:
            for delta in answer_deltas(response):
                await on_delta(delta)
        return response

    async def _post_stream(
        self,
        body: JsonObject,
        headers: dict[str, str],
        error_detail: Callable[[httpx.Response], str],
        on_event: Callable[[SSEEvent], Awaitable[None]],
    ) -> JsonValue | None:
        """Send `body`, which asks for a stream, and hand each event to `on_event`.

        Returns None when the event stream has ended (whether it ended complete is for
        `on_event`'s owner to judge), or the parsed JSON answer of an endpoint that
        answered with a whole body instead of a stream.

        Raises:
            ProviderHTTPError, ProviderTimeoutError, ProviderConnectionError,
            ProviderResponseError: as `_post`, before the stream starts; a read timeout
                between events is a `ProviderTimeoutError` too.
            ProviderStreamError: the connection broke while the stream was being read.
        """
        try:
            response = await self._open_stream(body, headers)
            if response.is_error or not _is_event_stream(response):
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.HTTPError as exc:
            raise self._send_error(exc) from exc
        if response.is_closed:
            return self._answer(response, error_detail)
        try:
            async for event in sse_events(response.aiter_bytes()):
                await on_event(event)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"{self._endpoint}: the stream stalled for {self._timeout.read}s"
                f" ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            detail = self._redact(str(exc)) or type(exc).__name__
            raise ProviderStreamError(
                f"{self._endpoint}: the stream was cut: {truncate(detail)}"
            ) from exc
        finally:
            await response.aclose()
        return None

    async def _open_stream(self, body: JsonObject, headers: dict[str, str]) -> httpx.Response:
        """Send `body` and return its answer unread.

        The gateway's `UpstreamClient` sends it without httpx's request layers
        (`post_stream`).
        """
        # Imported here: the gateway's package imports the providers.
        from orchestrator.gateway.http1 import UpstreamClient

        client = self._client
        if isinstance(client, UpstreamClient):
            return await client.post_stream(
                self._url, json=body, headers=headers, timeout=self._timeout
            )
        request = client.build_request(
            "POST", self._url, json=body, headers=headers, timeout=self._timeout
        )
        return await client.send(request, stream=True)

    async def _post(
        self,
        body: JsonObject,
        headers: dict[str, str],
        error_detail: Callable[[httpx.Response], str],
    ) -> JsonValue:
        """Send `body` and return the parsed JSON answer.

        Raises:
            ProviderHTTPError: 4xx/5xx; retryable for 429 and 5xx, with `retry_after`.
            ProviderTimeoutError: no answer within the timeout.
            ProviderConnectionError: the endpoint could not be reached or dropped.
            ProviderResponseError: the answer is not JSON.
            ProviderReportedError: a 2xx answer that holds the endpoint's error instead.
        """
        try:
            response = await self._client.post(
                self._url, json=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise self._send_error(exc) from exc
        return self._answer(response, error_detail)

    def _send_error(self, exc: httpx.HTTPError) -> ProviderError:
        """The typed error for a request that got no answer at all."""
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(
                f"{self._endpoint}: no answer within {self._timeout.read}s ({type(exc).__name__})"
            )
        detail = self._redact(str(exc)) or type(exc).__name__
        return ProviderConnectionError(f"{self._endpoint}: connection failed: {truncate(detail)}")

    def _answer(
        self, response: httpx.Response, error_detail: Callable[[httpx.Response], str]
    ) -> JsonValue:
        """The parsed JSON of a whole (read) answer, or the typed error it stands for."""
        if response.is_error:
            detail = truncate(self._redact(error_detail(response))) or response.reason_phrase
            raise ProviderHTTPError(
                f"{self._endpoint}: HTTP {response.status_code}: {detail}",
                status_code=response.status_code,
                retry_after=retry_after_hint(
                    response.headers,
                    now=datetime.now(UTC),
                    rate_limited=response.status_code == 429,
                ),
                should_retry=should_retry(response.headers),
            )
        try:
            parsed: JsonValue = response.json()
        except ValueError:
            start = truncate(self._redact(response.text.strip()), 100)
            raise ProviderResponseError(
                f"{self._endpoint}: response is not JSON (HTTP {response.status_code},"
                f" body starts {start!r})"
            ) from None
        if isinstance(parsed, dict) and parsed.get(self.answer_key) is None:
            reported = self._reported(parsed.get("error"), response.status_code)
            if reported is not None:
                raise reported
        return parsed

    def _reported(self, error: JsonValue, status: int) -> ProviderReportedError | None:
        """The typed error for an `error` member of a 2xx body, None if there is none."""
        if isinstance(error, str) and error:
            error = {"message": error}
        if not isinstance(error, dict) or not error:
            return None
        raw_message, kind, code = error.get("message"), error.get("type"), error.get("code")
        text = self._redact(str(raw_message)) if raw_message is not None else "no message"
        code_value = code if isinstance(code, str | int) and not isinstance(code, bool) else None
        kind_value = kind if isinstance(kind, str) else None
        labels = ", ".join(
            f"{name} {value}"
            for name, value in (("type", kind_value), ("code", code_value))
            if value is not None
        )
        return ProviderReportedError(
            f"{self._endpoint}: HTTP {status} with an error instead of an answer:"
            f" {truncate(text)}" + (f" ({labels})" if labels else ""),
            provider_message=text,
            error_type=kind_value,
            code=code_value,
        )
