"""What a skill is, in the shapes that cross the workflow boundary.

`SkillSpec` is the serialisable face of a skill (name, version, risk, schemas): the
workflow resolves the specs at session start and keeps them in its history, so a session
sees the same tools on replay even if the project changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from orchestrator.types import JsonObject

__all__ = ["DEFAULT_KEY_PARTS", "RiskLevel", "SkillContext", "SkillSpec"]

DEFAULT_KEY_PARTS = ("workflow_id", "step_id", "call_id", "skill")
"""The idempotency key of a call unless its contract says otherwise: one effect per call."""


class RiskLevel(StrEnum):
    """How much harm a call can do; the higher two need a person's approval by default."""

    READ_ONLY = "read_only"
    REVERSIBLE_WRITE = "reversible_write"
    IRREVERSIBLE_WRITE = "irreversible_write"
    EXTERNAL_SIDE_EFFECT = "external_side_effect"

    @property
    def needs_approval_by_default(self) -> bool:
        """Irreversible writes and external side effects are gated unless a skill says otherwise."""
        return self in (RiskLevel.IRREVERSIBLE_WRITE, RiskLevel.EXTERNAL_SIDE_EFFECT)

    @property
    def rank(self) -> int:
        """Order of harm, lowest first: a newer version with a higher rank is a breaking change."""
        return list(RiskLevel).index(self)


class SkillSpec(BaseModel):
    """The serialisable description of one skill version: its contract, as a session keeps it.

    Every field after `output_schema` has a default, so the histories of sessions started
    before contracts existed still decode.
    """

    name: str
    version: str
    description: str
    risk: RiskLevel
    requires_approval: bool
    """The "always" approval policy: every call waits for a person."""
    input_schema: JsonObject
    output_schema: JsonObject
    approval_condition: str | None = None
    """A CEL expression over the arguments; a call for which it is true waits for a person."""
    idempotent: bool = False
    """Calling twice with the same arguments has the effect of calling once, keys aside."""
    idempotency_key: list[str] = Field(default_factory=lambda: list(DEFAULT_KEY_PARTS))
    """What the call's key is hashed from: run coordinates and `args.<field>` values."""
    timeout: timedelta | None = None
    """Longest one attempt may run; empty: the session's skill-call default."""
    max_attempts: int | None = None
    """Attempts before the call fails; empty: the session's default."""
    initial_retry: timedelta | None = None
    max_retry: timedelta | None = None
    reads: list[str] = Field(default_factory=list)
    """Data classes the skill reads (e.g. `customer_pii`)."""
    writes: list[str] = Field(default_factory=list)
    owner: str | None = None
    deprecated: str | None = None
    """Why the version is deprecated and what to use instead; empty when it is not."""
    implementation: str | None = None
    """`python:module:function`, or (later) `mcp:connector/tool`."""
    source: str | None = None
    """The file that declares the contract."""

    def call_key(
        self, *, workflow_id: str, run_id: str, step_id: str, call_id: str, arguments: JsonObject
    ) -> str:
        """The idempotency key of one call, formed as the contract says (pure: workflow-safe).

        The default parts give the same key the first form of the runtime used, so the
        calls of sessions started before contracts keep their keys.
        """
        coords = {
            "workflow_id": workflow_id,
            "run_id": run_id,
            "step_id": step_id,
            "call_id": call_id,
            "skill": self.name,
            "version": self.version,
        }
        parts = []
        for part in self.idempotency_key:
            if part.startswith("args."):
                value = arguments.get(part[5:])
                parts.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
            else:
                parts.append(coords[part])
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    @property
    def ref(self) -> str:
        """`name@version`, how logs and messages name one skill version."""
        return f"{self.name}@{self.version}"

    @property
    def tool_name(self) -> str:
        """The name the model sees: provider APIs allow only `[A-Za-z0-9_-]` in tool names."""
        return self.name.replace(".", "_")


@dataclass(frozen=True, slots=True)
class SkillContext:
    """What a running skill knows about the call, beside its arguments.

    Attributes:
        idempotency_key: Derived from the workflow and the exact point of the call, so it is
            the same on every retry; a skill with side effects must use it to apply its
            effect once.
        state_dir: A folder the skill may keep its own state in.
        before_send: Awaited by a skill that calls out (an MCP tool) right before the
            request leaves, once it is certain to be sent: the runtime records the attempt
            there, so a retry after a timeout or a crash knows the tool may have run.
    """

    session_id: str
    workflow_id: str
    run_id: str
    step_id: str
    call_id: str
    idempotency_key: str
    attempt: int
    state_dir: Path
    before_send: Callable[[], Awaitable[None]] | None = None
