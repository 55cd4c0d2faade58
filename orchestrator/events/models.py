"""What a watcher of a session receives: durable events, ephemeral deltas, a drop notice.

Durable events are the session's audit rows (`AuditEvent`, numbered by `seq`). Deltas are
pieces of a model answer while it streams; they are never stored, and a watcher that
connects late or falls behind does not get old ones. A delta names the model call it
belongs to (step, round, step attempt) and the Temporal attempt of the activity that made
it, so a UI shows one attempt's text and drops it when a later attempt of the same call
starts or an `abandoned` delta says that attempt failed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.store.records import AuditEvent, EventKind

__all__ = ["TERMINAL_KINDS", "Dropped", "StreamDelta", "StreamItem"]

TERMINAL_KINDS = frozenset({EventKind.SESSION_COMPLETED, EventKind.SESSION_FAILED})
"""After one of these a session writes nothing more: a watcher can stop."""


class StreamDelta(BaseModel):
    """One piece of a model answer as it arrives, or the end of a failed attempt."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    step_id: str | None
    round: int
    """The model call's round in the step's tool loop."""
    step_attempt: int
    """The workflow's attempt at the step (an escalation retries a step)."""
    attempt: int
    """The activity's Temporal attempt, from 1: a retry after a cut stream or a dead
    worker streams again under a larger number."""
    n: int
    """Number of the delta within its attempt, from 1; a gap means some were lost."""
    kind: Literal["text", "tool_call_args", "abandoned"]
    """`abandoned`: the attempt failed; drop its text (a retry may follow)."""
    text: str = ""
    index: int = 0
    """The tool call's position in the answer; 0 for text."""
    call_id: str | None = None
    name: str | None = None


class Dropped(BaseModel):
    """The watcher fell too far behind and is cut off; resume after `resume_after`."""

    resume_after: int
    reason: str


StreamItem = AuditEvent | StreamDelta | Dropped
"""What `orchestrator.events.EventHub.watch` yields."""
