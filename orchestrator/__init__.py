"""Session-aware agent orchestration on Temporal.

Durable workflows run multi-step agent plans; each step's model is chosen at a safe
boundary and pinned for its whole tool loop; skills are typed functions with a risk level;
risky calls wait for a person's approval, bound to the exact call.

Running a session takes one import::

    from orchestrator import OrchestratorPlugin, Runtime, Settings, Store, connect, start

`start(...)` (with `StartOptions`: whose session it is, who asked) returns a
`SessionHandle` (`state()`, `approve()`/`reject()`, `result()`, `events()`, which yields
`AuditEvent`s and `StreamDelta`s); `SessionHandle(client, store, session_id)` attaches to
any session.

This module is loaded inside the workflow sandbox, so it imports only light names at
once; the client and worker side (`SessionHandle`, `start`, `connect`, `Settings`,
`Store`, `Runtime`, `OrchestratorPlugin`, `AuditEvent`, `StreamDelta`, `StartOptions`) is
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orchestrator.exceptions import BudgetExceededError, OrchestratorError, SessionFailed
from orchestrator.plans import AgentStep, ApprovalStep, Plan, SkillStep, load_plan
from orchestrator.skills import RiskLevel, Skill, SkillContext, skill

if TYPE_CHECKING:
    from orchestrator.client import connect
    from orchestrator.events.models import StreamDelta
    from orchestrator.handle import SessionHandle, start
    from orchestrator.plugin import OrchestratorPlugin
    from orchestrator.runtime import Runtime
    from orchestrator.session_start import StartOptions
    from orchestrator.settings import Settings
    from orchestrator.store.records import AuditEvent
    from orchestrator.store.store import Store

__all__ = [
    "AgentStep",
    "ApprovalStep",
    "AuditEvent",
    "BudgetExceededError",
    "OrchestratorError",
    "OrchestratorPlugin",
    "Plan",
    "RiskLevel",
    "Runtime",
    "SessionFailed",
    "SessionHandle",
    "Settings",
    "Skill",
    "SkillContext",
    "SkillStep",
    "StartOptions",
    "Store",
    "StreamDelta",
    "__version__",
    "connect",
    "load_plan",
    "skill",
    "start",
]

__version__ = "0.1.0"

_LAZY = {
    "SessionHandle": "orchestrator.handle",
    "start": "orchestrator.handle",
    "connect": "orchestrator.client",
    "OrchestratorPlugin": "orchestrator.plugin",
    "Runtime": "orchestrator.runtime",
    "StartOptions": "orchestrator.session_start",
    "Settings": "orchestrator.settings",
    "Store": "orchestrator.store.store",
    "AuditEvent": "orchestrator.store.records",
    "StreamDelta": "orchestrator.events.models",
}


def __getattr__(name: str) -> Any:
    """Import the client and worker side on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
