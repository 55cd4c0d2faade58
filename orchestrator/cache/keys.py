"""Pure decisions of the cache: whether a request may use it, and what it is keyed by.

A request is keyed by its tenant, the model name it asked for, and the digest of its
frame: the tools offered, the system prompt, every message but the last user question,
and the sampling settings. Only the last user question may differ for a semantic hit, and
then only when its guard words (numbers, identifiers, negations) are the same: "refund
order 7" never answers "refund order 8", however close their embeddings are.

Nothing is cached or served once the conversation holds a write (a tool result of a
tool that is not read-only): the world the answer described may have changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Set
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.cache.config import CacheConfig
from orchestrator.providers.messages import ChatMessage, ModelRequest
from orchestrator.providers.params import PARAMS
from orchestrator.providers.params import asks as sets_params
from orchestrator.types import JsonObject

__all__ = ["CacheKey", "Skip", "cosine", "guard_words", "key_of", "skip_reason", "writes_in"]

_WORD = re.compile(r"[\w$%.-]+", re.UNICODE)
_NEGATIONS = frozenset({"not", "no", "never", "without", "cannot", "can't", "don't", "won't"})


class Skip(StrEnum):
    """Why a request neither reads nor fills the cache."""

    OFF = "off"
    """The name it asked for is not one the cache serves."""
    UNCACHEABLE = "uncacheable"
    """The step or request said `cache: false` (or `Cache-Control: no-store`)."""
    AFTER_WRITE = "after_write"
    """The conversation holds the result of a tool that may have written."""


@dataclass(frozen=True)
class CacheKey:
    """Where an answer lives in the cache."""

    tenant: str
    name: str
    frame: str
    """Digest of everything but the last user question."""
    question: str
    """The last user question, whitespace collapsed; empty when the last message is not
    a user message (a tool loop), which allows exact matches only."""
    entry: str
    """Digest of tenant, name, frame and question: the exact-match key."""


def writes_in(messages: list[ChatMessage], read_only: Set[str]) -> list[str]:
    """Names of the tools whose results in the conversation count as writes.

    A tool result is matched to its call by id; one whose call cannot be found counts as
    a write, since nothing says it was a read.
    """
    called = {call.id: call.name for m in messages for call in m.tool_calls}
    out: list[str] = []
    for message in messages:
        if message.role != "tool":
            continue
        name = called.get(message.tool_call_id or "", message.name or "?")
        if name not in read_only:
            out.append(name)
    return out


def skip_reason(
    request: ModelRequest,
    name: str,
    config: CacheConfig,
    *,
    uncacheable: bool = False,
    read_only: Set[str] = frozenset(),
) -> Skip | None:
    """Why the request may not use the cache, or None when it may."""
    if name not in config.models:
        return Skip.OFF
    if uncacheable:
        return Skip.UNCACHEABLE
    if writes_in(request.messages, config.read_only_tools | read_only):
        return Skip.AFTER_WRITE
    return None


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def key_of(tenant: str, name: str, request: ModelRequest) -> CacheKey:
    """The request's key: its frame digest and its last user question."""
    messages = request.messages
    last = messages[-1] if messages else None
    asks = last is not None and last.role == "user" and not last.tool_calls
    question = " ".join((last.content or "").split()) if asks and last is not None else ""
    prior = messages[:-1] if asks else messages
    framed: JsonObject = {
        "tools": [t.model_dump() for t in request.tools],
        "messages": [
            m.model_dump(exclude={"tool_calls"})
            | {"tool_calls": [(c.id, c.name, c.arguments_json) for c in m.tool_calls]}
            for m in prior
        ],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if sets_params(request):
        # A gateway client's parameters (a schema for the answer, a tool choice) change
        # the answer; a request without any keeps the key it always had.
        framed["params"] = request.model_dump(mode="json", include=set(PARAMS), exclude_none=True)
    frame = _digest(framed)
    entry = _digest([tenant, name, frame, question])
    return CacheKey(tenant=tenant, name=name, frame=frame, question=question, entry=entry)


def guard_words(question: str) -> frozenset[str]:
    """Words two questions must share for one to answer the other.

    Numbers, identifiers and negations: embeddings weigh them too little to tell apart.
    """
    words = [w.strip(".-").lower() for w in _WORD.findall(question)]
    return frozenset(w for w in words if w and (any(c.isdigit() for c in w) or w in _NEGATIONS))


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity; 0 for vectors of different lengths or a zero vector."""
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0
