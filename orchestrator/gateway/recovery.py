"""What the gateway does when a deployment fails: retry it, fail over, or give up.

`after_failure` is the decision, a pure function of the error, the attempt and the time
left; `answer` carries it out. A retry waits for the provider's own hint when it gives one
(`Retry-After`, `retry-after-ms`), else a doubling backoff. A deployment that keeps failing,
or asks for a longer wait than the deadline allows, is left for the next one the router
picks, with the whole conversation sent again in that deployment's API: the new model
starts from the same messages, never from half an answer. A refusal by the endpoint
(a 4xx other than 429) is not retried anywhere: another deployment would refuse it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.exceptions import ProviderError, ProviderHTTPError, ProviderTimeoutError
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.errors import GatewayError, UpstreamFailed
from orchestrator.gateway.relay import Relayed
from orchestrator.providers.messages import ModelResponse

__all__ = ["Answered", "StreamCut", "UpstreamRejected", "after_failure", "answer"]


class UpstreamRejected(GatewayError):
    """The deployment refused the request itself (a 4xx other than 429): passed on as is."""

    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class StreamCut(UpstreamFailed):
    """The answer broke off after part of it reached the client: never finished elsewhere."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class _Decision:
    action: Literal["retry", "failover", "reject"]
    wait: float = 0.0


def after_failure(
    error: ProviderError, attempt: int, settings: GatewaySettings, time_left: float
) -> _Decision:
    """Retry (after how long), fail over, or reject, after attempt `attempt` (0-based) failed."""
    if not error.retryable:
        if isinstance(error, ProviderHTTPError):
            return _Decision("reject")
        return _Decision("failover")
    if attempt >= settings.retries:
        return _Decision("failover")
    hint = error.retry_after if isinstance(error, ProviderHTTPError) else None
    wait = hint if hint is not None else settings.retry_backoff_seconds * 2**attempt
    if wait > settings.max_retry_wait_seconds or wait >= time_left:
        return _Decision("failover")
    return _Decision("retry", wait)


@dataclass
class Answered:
    """The answer, who gave it, and every failure on the way."""

    response: ModelResponse | Relayed
    """The answer; `Relayed` when a client's chat-completions body was forwarded as is."""
    deployment: str
    failures: list[tuple[str, str]] = field(default_factory=list)
    """`(deployment, cause)` for each failed attempt, in order."""
    forced_from: str | None = None
    """The deployment that was failed over from, if any."""


async def answer(
    first: str,
    call: Callable[[str], Awaitable[ModelResponse | Relayed]],
    next_deployment: Callable[[dict[str, str]], str | None],
    settings: GatewaySettings,
    on_failure: Callable[[str, ProviderError], None],
    committed: Callable[[], bool] = lambda: False,
) -> Answered:
    """Get an answer from `first`, retrying and failing over within the deadline.

    Args:
        first: The deployment to try first (the pin, or the router's choice).
        call: Sends the conversation to a deployment.
        next_deployment: Given the deployments that failed and why, the next one to try,
            or None when none is left.
        settings: Retries, backoff and deadline.
        on_failure: Told of every failure (live metrics, cooldowns).
        committed: Whether part of an answer already reached the client: then a failure
            ends the request (`StreamCut`), it is neither retried nor failed over.

    Raises:
        UpstreamRejected: the endpoint refused the request.
        UpstreamFailed: every deployment tried failed, or the deadline passed; names each.
        StreamCut: the answer failed after part of it was sent to the client.
    """
    deadline = time.monotonic() + settings.request_timeout_seconds
    failures: list[tuple[str, str]] = []
    failed: dict[str, str] = {}
    deployment: str | None = first
    timeout = False
    while deployment is not None:
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            try:
                # In the request's own task: `wait_for` ran each call in a task of its own.
                async with asyncio.timeout(left):
                    response = await call(deployment)
            except (ProviderError, TimeoutError) as exc:
                error = (
                    exc
                    if isinstance(exc, ProviderError)
                    else ProviderTimeoutError(
                        f"{deployment}: no answer within the request's deadline"
                    )
                )
                timeout = isinstance(error, ProviderTimeoutError)
                cause = str(error)
                failures.append((deployment, cause))
                on_failure(deployment, error)
                if committed():
                    raise StreamCut(
                        f"the stream from {deployment} was cut after it started: {cause};"
                        " it is not continued on another model, send the request again"
                    ) from None
                decision = after_failure(error, attempt, settings, deadline - time.monotonic())
                if decision.action == "reject":
                    status = error.status_code if isinstance(error, ProviderHTTPError) else 400
                    raise UpstreamRejected(
                        f"deployment {deployment} refused: {cause}", status
                    ) from None
                if decision.action == "retry":
                    await asyncio.sleep(decision.wait)
                    attempt += 1
                    continue
                failed[deployment] = cause
                break
            return Answered(
                response=response,
                deployment=deployment,
                failures=failures,
                forced_from=failures[0][0] if failed else None,
            )
        if time.monotonic() >= deadline:
            break
        deployment = next_deployment(failed)
    detail = "; ".join(f"{d}: {cause}" for d, cause in failures)
    raise UpstreamFailed(f"every deployment tried failed: {detail}", timeout=timeout)
