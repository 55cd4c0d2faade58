"""`/v1/embeddings`: passed to the first OpenAI-compatible deployment of the model.

Embeddings have no tool loop and no prompt cache to keep warm, so there is no pin: the
key, the model and the rate are checked as for chat, and the call is audited the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import JsonValue

from orchestrator.exceptions import ProviderError
from orchestrator.gateway import audit
from orchestrator.gateway.errors import BadRequest, UpstreamFailed
from orchestrator.gateway.keys import GatewayKey
from orchestrator.gateway.service import Gateway
from orchestrator.gateway.sessions import identify
from orchestrator.types import JsonObject

__all__ = ["embed"]


async def embed(
    gateway: Gateway, body: JsonObject, headers: Mapping[str, str]
) -> tuple[JsonValue, str]:
    """Forward an embeddings request; the first deployment of its model that answers wins.

    Returns:
        The endpoint's body (its `model` naming the deployment) and the deployment.

    Raises:
        GatewayError: the key, the model or the body is refused, or every deployment failed.
    """
    key = gateway.authenticate(headers)
    requested = body.get("model")
    if not isinstance(requested, str) or not requested:
        raise BadRequest("body.model: expected a non-empty string")
    if body.get("input") is None:
        raise BadRequest("body.input: required")
    pool = gateway.pool(key, requested)
    await gateway.limiter.admit(key)
    registry = gateway.registry
    candidates = [
        d for d in pool if registry.providers[registry.models[d].provider].kind == "openai"
    ]
    if not candidates:
        raise BadRequest(f"model {requested!r} has no deployment that serves embeddings")
    causes: list[str] = []
    started = time.perf_counter()
    for deployment in candidates:
        try:
            answer = await gateway.upstreams.embed(deployment, body)
        except ProviderError as exc:
            gateway.note_failure(deployment, exc)
            causes.append(f"{deployment}: {exc}")
            continue
        if isinstance(answer, dict):
            answer["model"] = deployment
        await _record(gateway, key, headers, deployment, answer, started)
        return answer, deployment
    raise UpstreamFailed("every deployment tried failed: " + "; ".join(causes))


async def _record(
    gateway: Gateway,
    key: GatewayKey,
    headers: Mapping[str, str],
    deployment: str,
    answer: JsonValue,
    started: float,
) -> None:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    count = tokens if isinstance(tokens, int) else 0
    session_id = identify(headers, [], key.tenant).session_id
    now = datetime.now(UTC)
    await gateway.journal.commit(
        [
            audit.session_start(session_id, key, "embeddings", now),
            audit.call(
                session_id,
                uuid.uuid4().hex,
                now,
                deployment=deployment,
                input_tokens=count,
                output_tokens=0,
                cost_usd=gateway.registry.models[deployment].cost(count, 0),
                duration_ms=(time.perf_counter() - started) * 1000,
                payload={"key": key.id, "api": "embeddings", "outcome": "ok"},
            ),
        ]
    )
