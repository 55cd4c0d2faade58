"""Payload size limits: what a session may hand Temporal in one payload, and what it may not.

Temporal refuses a payload over 2 MB (an activity's input or result, a continue-as-new
input) and warns from 512 KB. A refused command fails the workflow task, and a failed
workflow task is retried for ever: the session is stuck without an error anyone sees. So
the session checks sizes itself, before Temporal would, at the points where a large value
can enter (the design chosen, and why):

- **A skill's output** over `INLINE_OUTPUT_BYTES` is not carried inline. The skill-call
  activity, which holds it, returns a stand-in instead (`stand_in`): a JSON object that
  names the skill, the size and the limit, with a preview of the output's start. The
  effect has happened and the model is told so (an error would invite it to run the effect
  again under a new call id); a model could not read megabytes of tool output anyway. The
  full output is not kept: a skill whose output is needed in full keeps it in its own
  store and returns a reference to it, as `payments.refund` does with its ledger.
- **A model's answer** over `MAX_ANSWER_BYTES` is refused at the model-call activity with
  a non-retryable `PayloadTooLarge` error naming the size and the limit; the step fails
  with that message (asking again would get the same answer, and the next call could not
  carry it back).
- **The conversation** a tool loop sends to the model grows by each tool result; once it
  passes `MAX_CONVERSATION_BYTES` the step fails with a clear error rather than schedule a
  model call Temporal would refuse.
- **The session's result** (every step's output, and the final one again) over
  `MAX_RESULT_BYTES` has its largest outputs replaced by stand-ins (`fit_outputs`): Temporal
  refuses a workflow result over 2 MB, and the task that completes the workflow would fail
  for ever. The session record in the store keeps the final output in full.
- **A step's output in its `step_completed` audit event** (which `sessions show` reads)
  over `EVENT_OUTPUT_BYTES` is recorded as a stand-in (`recorded_output`): the event rides
  in a bookkeeping activity's input with the others of its batch.
- **The carry** of a continue-as-new: when it would pass `MAX_CARRY_BYTES` the session does
  not continue at that point and goes on in the same run (the history is long, but that is
  a warning; a refused continue-as-new would be a stuck session).

Everything here is pure and deterministic, so workflow code may call it.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ActivityError

from orchestrator.exceptions import PayloadTooLargeError, from_failure
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "EVENT_OUTPUT_BYTES",
    "INLINE_OUTPUT_BYTES",
    "MAX_ANSWER_BYTES",
    "MAX_CARRY_BYTES",
    "MAX_CONVERSATION_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_RESULT_BYTES",
    "PREVIEW_CHARS",
    "WARN_PAYLOAD_BYTES",
    "RefusedAnswer",
    "describe_size",
    "fit_outputs",
    "json_size",
    "model_size",
    "recorded_output",
    "refused_answer",
    "stand_in",
    "too_large",
]

MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
"""Temporal's default limit for one payload (`limit.blobSize.error`)."""
WARN_PAYLOAD_BYTES = 512 * 1024
"""Temporal's default warning level for one payload (`limit.blobSize.warn`)."""
INLINE_OUTPUT_BYTES = 256 * 1024
"""Largest skill output carried inline: half the warning level, so a tool result and the
rest of a model call's input stay under it together in the common case."""
MAX_CONVERSATION_BYTES = 1536 * 1024
"""Largest conversation a model call may carry: room under the 2 MB limit for the tools
offered and the call's other fields."""
MAX_ANSWER_BYTES = MAX_CONVERSATION_BYTES
"""Largest model answer taken: it goes into the conversation the next call carries."""
MAX_CARRY_BYTES = 1536 * 1024
"""Largest continue-as-new carry: room under the 2 MB limit for the plan and input."""
MAX_RESULT_BYTES = 1536 * 1024
"""Largest session result: room under the 2 MB limit for its other fields."""
EVENT_OUTPUT_BYTES = 64 * 1024
"""Largest step output recorded whole in its `step_completed` audit event."""
PREVIEW_CHARS = 2048
"""How much of an oversized output the stand-in shows."""
_BARE_BYTES = 64
"""Outputs this small are never replaced: a stand-in would be as large."""


class RefusedAnswer(BaseModel):
    """The details of a refused model answer: the call was made, so the session pays it."""

    input_tokens: int
    output_tokens: int
    cost_usd: float


def refused_answer(exc: ActivityError) -> RefusedAnswer | None:
    """What a model call refused as too large cost, from its error's details."""
    error = from_failure(exc)
    if not isinstance(error, PayloadTooLargeError) or not error.details:
        return None
    try:
        return RefusedAnswer.model_validate(error.details[0])
    except ValidationError:
        return None


def json_size(value: JsonValue) -> int:
    """Bytes of `value` as compact UTF-8 JSON: close to what the data converter sends."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def model_size(model: BaseModel) -> int:
    """Bytes of a pydantic model as JSON, as the pydantic data converter encodes it."""
    return len(model.__pydantic_serializer__.to_json(model))


def describe_size(size: int) -> str:
    """A size people read at a glance, with the exact byte count."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB ({size} bytes)"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB ({size} bytes)"
    return f"{size} bytes"


def too_large(what: str, size: int, limit: int) -> str:
    """The error message for a value over its limit: what, how big, and the limit."""
    return f"{what} is {describe_size(size)}, over the limit of {describe_size(limit)}"


def stand_in(what: str, value: JsonValue, *, limit: int = INLINE_OUTPUT_BYTES) -> JsonObject:
    """What a session carries instead of an output over `limit`: size, limit, a preview."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    return {
        "truncated": True,
        "size_bytes": size,
        "limit_bytes": limit,
        "note": too_large(what, size, limit) + "; only its start is shown",
        "preview": text[:PREVIEW_CHARS],
    }


def recorded_output(step_id: str, output: JsonValue) -> JsonValue:
    """What the `step_completed` event records of a step's output: all of it, or a stand-in."""
    if json_size(output) <= EVENT_OUTPUT_BYTES:
        return output
    return stand_in(f"the output of step {step_id!r}", output, limit=EVENT_OUTPUT_BYTES)


def fit_outputs(outputs: dict[str, JsonValue], limit: int) -> dict[str, JsonValue]:
    """`outputs`, with the largest replaced by stand-ins until together they fit `limit`.

    Outputs too small for a preview to save anything (a loop's many iterations) are
    replaced by their size alone.
    """
    sizes = {key: json_size(value) for key, value in outputs.items()}
    total = json_size(outputs)
    fitted = dict(outputs)
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        if total <= limit or sizes[key] <= _BARE_BYTES:
            break
        if sizes[key] > 2 * PREVIEW_CHARS:
            fitted[key] = stand_in(f"the output of step {key!r}", outputs[key], limit=limit)
        else:
            fitted[key] = {"truncated": True, "size_bytes": sizes[key]}
        total += json_size(fitted[key]) - sizes[key]
    return fitted
