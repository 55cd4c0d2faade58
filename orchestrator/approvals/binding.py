"""The hash that binds an approval to exactly one action.

It covers the workflow, the step, the call, the skill and its version, and the exact
arguments shown to the approver, in canonical JSON. A decision carries the hash of what
the person saw; the workflow refuses one that does not match the action waiting.
"""

from __future__ import annotations

import hashlib
import json

from orchestrator.types import JsonObject

__all__ = ["approval_id_for", "binding_hash"]


def binding_hash(
    *,
    workflow_id: str,
    step_id: str,
    call_id: str,
    skill: str | None,
    skill_version: str | None,
    arguments: JsonObject,
) -> str:
    """SHA-256 over the canonical JSON of the action."""
    canonical = json.dumps(
        {
            "workflow_id": workflow_id,
            "step_id": step_id,
            "call_id": call_id,
            "skill": skill,
            "skill_version": skill_version,
            "arguments": arguments,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def approval_id_for(binding: str) -> str:
    """A short id people can type: unique because the hash covers workflow and call."""
    return f"apr_{binding[:12]}"
