"""Every patch id of the session workflow, in one place, each with the history that covers it.

A patch id guards a change that alters the commands a session issues, so a session
recorded before the change replays the path it ran (`workflow.patched`). Ids are part of
recorded histories: they are spelled here once and never renamed.

A patch stays *live* (`workflow.patched`, both paths kept) while a recorded history in
`tests/histories/` needs its old path; tests/session/test_replay_histories.py replays
them all. A patch whose old path no recorded history crosses is *retired* with
`workflow.deprecate_patch`: the new path always runs, histories holding the marker still
replay, and its marker can be dropped once no running session holds it.
"""

from __future__ import annotations

__all__ = [
    "APPROVAL_EVENTS",
    "APPROVAL_POLICY",
    "BOOKKEEPING_BATCH",
    "CHECK_GENERATION",
    "CONTINUE_AS_NEW",
    "DECISION_DURABLE",
    "GATE_GENERATION",
    "GENERATION",
    "LAST_CALL_FAILURE",
    "LAST_CALL_FAILURE_GENERATION",
    "LAST_CALL_GENERATION",
    "LIVE",
    "LOOP_CONTINUE",
    "MODEL_FAILURE",
    "OPENING_GENERATION",
    "RETIRED",
    "ROUTING",
    "SETUP_GENERATION",
    "TRUNCATION",
]

ROUTING = "routing-v1"
"""Live. The router chooses a deployment at boundaries, and a dead deployment fails over.

Old path: `customer_refund.json`, recorded before routing (the plan's model pinned by
name, no `orchestrator.route` call). New path: every other recorded history."""

CONTINUE_AS_NEW = "continue-as-new-v1"
"""Retired. The session continues as new at safe points (between steps, an approval
step's wait) once its history is long.

Marker: `customer_refund_routed.json`, `refund_audit.json`; `long_loop_run1.json`
continues as new into `long_loop_run2.json`. `customer_refund.json` and
`skill_contracts.json` predate it and are short, so the new path issues their commands."""

LOOP_CONTINUE = "continue-as-new-in-tool-loop-v1"
"""Retired. A long session continues as new between two rounds of a tool loop (the marker
is written only when it does).

Marker: `long_loop_run1.json` continues inside its tool loop, and `long_loop_run2.json` is
the run it continued into; no recorded history is long without it."""

APPROVAL_POLICY = "approval-policy-v1"
"""Live. An approval wait resolves its group and required count
(`orchestrator.resolve_approval_policy`).

Old path: `customer_refund.json`, `customer_refund_routed.json` and `skill_contracts.json`
wait for one decision without resolving a policy. Marker: `refund_audit.json`."""

APPROVAL_EVENTS = "approval-events-v1"
"""Retired. The approval wait writes partial approvals and delegations as audit events
when they happen, and a request may be delegated.

Marker: `refund_audit.json`. `customer_refund.json`, `customer_refund_routed.json` and
`skill_contracts.json` predate it with single decisions, for which both waits issue the
same commands."""

DECISION_DURABLE = "decision-durable-v1"
"""Live. A decision is stored by a regular activity, scheduled only after the workflow task
that took the decision is saved (a local one ran before, and a worker dying in between left
the store saying "approved" while the update was lost).

Old path: `customer_refund.json`, `customer_refund_routed.json`, `refund_audit.json` and
`skill_contracts.json` store their decisions with local activities. No recorded history
holds the marker; tests/session/test_session_paths.py covers the new path."""

TRUNCATION = "truncation-v1"
"""Retired. An answer cut off at the output limit fails the step (or is continued, per the
step's `on_truncation`) instead of passing as final.

No recorded history holds a truncated answer, so every one replays through it; the new
path is covered by tests/session/test_model_calls.py."""

MODEL_FAILURE = "model-call-failure-v1"
"""Retired. A model call that fails for good (a non-retryable error, or retries spent)
fails its step, recorded like any failed step, instead of failing the workflow run with
the session left open in the store.

No recorded history holds a failed model call, so every one replays through it; the new
path and its marker are covered by tests/reliability/test_provider_faults.py."""

BOOKKEEPING_BATCH = "bookkeeping-batch-v1"
"""Live. Less bookkeeping in a session's history (issue 16 item 7):
- the events pending before a model call ride in the model-call activity, which writes
  them before it calls; the last step's events and the budget settlement ride in
  `finish_session`: three local activities (markers) fewer per session;
- a run that holds this marker takes the new path of every patch above without calling
  `workflow.patched` / `workflow.deprecate_patch` for it, so it records none of their
  markers, nor the `TemporalChangeVersion` search-attribute upsert each one adds.

Asked first in a run whose setup is of generation 0 (`GENERATION`), before any other
patch; a run of a later generation takes its new path without asking. Old path: every
recorded history in `tests/histories` (`customer_refund.json`,
`customer_refund_routed.json`, `refund_audit.json`, `skill_contracts.json`,
`long_loop_run1.json`, `long_loop_run2.json`). Marker: `refund_batched.json`, the refund
demo recorded on generation 0 with this patch (its first routing decision a `route` local
activity of its own). New path without the marker (generation 1):
tests/reliability/test_load_small.py counts a gated session's history and checks its
audit trail; every other session test runs it."""

LAST_CALL_FAILURE = "last-call-failure-v1"
"""Live. A generation-5 session (`LAST_CALL_GENERATION`) already running when
`LAST_CALL_FAILURE_GENERATION` came takes its path when the call that could close it
fails for good, recording this marker then (a session of generation 6 or later takes it
without asking); nowhere else is it asked. Old path: a generation-5 session whose closing
call failed for good, recorded before it. No recorded history holds the marker, nor a
failed closing call (`refund_gen5.json` closes from its call); both paths are covered by
tests/session/test_last_call_edges.py."""

SETUP_GENERATION = 1
"""The first generation (see `GENERATION`): a session whose setup says it, or a later
one, takes the new path of every patch above without asking."""

GATE_GENERATION = 2
"""The generation from which the approval gate issues fewer commands (issue 16):
- one local activity, `orchestrator.request_approval`, resolves the policy, stores the
  request and writes the events pending before it, where a session of an earlier
  generation ran `resolve_approval_policy`, `record_events` (when events were pending)
  and `record_approval_request`;
- an approved tool call's decision is recorded by the `call_skill` activity that runs the
  call (`SkillCallInput.decision`, written before the call), not by a
  `record_approval_decision` activity of its own; a rejection, an expiry and an approval
  step still record theirs, and so does a call whose `call_skill` failed for good (its
  audit trail stays complete).
One local-activity marker, one activity and one workflow task fewer per gated tool call.
Old path: `refund_gen1.json`, the refund demo recorded on generation 1 (and, asking their
patches, the generation-0 histories). New path: `refund_gen2.json`, the same demo on
generation 2 (and `refund_gen3.json` from `CHECK_GENERATION`);
tests/reliability/test_load_small.py counts a gated session's history and checks its
audit trail (the decision's event still between the request and the call).
A decision sent while `request_approval` runs (the request is stored, its policy not yet
taken in) is refused as not pending, never taken without its group's check."""

CHECK_GENERATION = 3
"""The generation from which a gated skill call is checked and requested in one local
activity, `orchestrator.check_call` (issue 16): it validates the arguments as a
validate-only `call_skill` did (a regular activity, and a workflow task, whose only news
was whether the call is gated), applies the contract's approval policy to them and, when
gated, resolves the policy and stores the request with the events pending before it, as
`request_approval` does. The request's id and binding are the same pure functions of the
action on both sides (`session.approval_requests`). One activity and one workflow task
fewer per gated call, and a conditionally gated call that turns out not to be gated is
checked by a local activity instead of a regular one.
Old path: `refund_gen2.json` (and `refund_gen1.json`, and the generation-0 histories).
New path: `refund_gen3.json`; tests/reliability/test_load_small.py counts the history."""

OPENING_GENERATION = 4
"""The generation from which a session's setup may come in its start input
(`SessionStartInput.setup`), resolved by a starter that holds the runtime
(`session.resolution.prepare_start`: `service.launch` given a runtime, as a stack, the
tests' workers and the benches have), instead of by the `start_session` local activity:
the run takes it as it finds it, and its first activity writes the session row and its
`session_started` event (`SessionOpening`) in one transaction with the events pending
before it (the first model call, or a `record_events` issued ahead of any other
activity). One local activity, its marker and the activation it resolves fewer per
session (issue 16: the fixed cost per session). The starter supplies it only for a
fresh session whose first step is an agent step it could route ahead with no write: no
budget applies (nothing to reserve), no classifier call, an input small enough to ride
in the first call; otherwise, and for a join, the run calls `start_session` as before.
Taken only when the supplied setup says this generation or a later one; the path is
decided by the recorded start input, so a replay takes it again.
Old path: `refund_gen3.json` (and every earlier history: no setup in its start input).
New path: `refund_gen4.json`, the refund demo started with the runtime at hand;
tests/reliability/test_load_small.py counts a gated session's history on it and checks
its audit trail (`session_started` still first)."""

LAST_CALL_GENERATION = 5
"""The generation from which the session's last model call may close the session itself
(issue 16: the end of the session). Before scheduling a model call the workflow knows
whether a final answer from it (no tool calls, not cut off) would end the session with
nothing left to run or check (`session.last_call.ends_session`: the plan's last step,
top level, no `accept` check, no output schema of the step's or the plan's). Such a call
carries the session's totals so far (`ModelCallInput.closing`); when its answer is final,
fits and came from the model (not the response cache), the activity writes the session's
end with its own `model_call` event, in one transaction when no budget holds a
reservation (the spend's transaction first when one does): the `step_completed` event
(the same pure `session.last_call` functions the workflow uses for its payload and the
output), the closing event, the row's status, output and totals; then it credits the
outcomes and settles the budget, as `finish_session` does, and says so
(`ModelCallResult.closed`). The workflow then completes without `finish_session`: one
local activity, its marker and the activation it resolves fewer per session. Same
events, same keys, same order; a retry of the call after it closed the session (a
worker killed after the write) finds the row closed and answers with what was written,
asking the model nothing. Any other answer, and every other path, ends with
`finish_session` as before.
Old path: `refund_gen4.json` (and every earlier history: their setup's generation is
lower, so no call carries a closing). New path: `refund_gen5.json`, the refund demo
whose last step (`reply`) closes the session from its model call."""

LAST_CALL_FAILURE_GENERATION = 6
"""The generation from which a model call that could close the session
(`LAST_CALL_GENERATION`) and failed for good is asked about before its step fails: a
local activity, `orchestrator.closed_by_call`, reads whether one of its attempts wrote
the session's end, each attempt's report lost (a worker killed after the commit, a retry
that could not read the store, a cancel or a timeout of the attempt). When one did, the
run completes with the end written, as if the call had reported it; failing the step
wrote `step_failed` and `session_failed` after `session_completed` and set the row
failed (the store now refuses that: `SessionEnded`). One local activity on that failure
path only: the refund demo issues the same commands as on generation 5.
Old path: `refund_gen5.json` (and every earlier history). New path: `refund_gen6.json`;
tests/session/test_last_call_edges.py loses every report of the closing call."""

GENERATION = 6
"""Not a patch id: the generation of paths a session started on, recorded in the history
as `SessionSetup.generation` by `start_session` (its local activity's result). A session
whose setup says 1 or more takes the new path of every patch above without calling
`workflow.patched` / `workflow.deprecate_patch`: no marker and no `TemporalChangeVersion`
search-attribute upsert, which every new session paid for `bookkeeping-batch-v1` until
then (two history events and a visibility write). A replay reads the recorded setup, so
it takes the same paths; a history recorded before (generation 0: every one in
`tests/histories` but `refund_gen<N>.json`, `refund_batched.json` among them) asks its
patches as before. Each generation's refund demo is recorded as `refund_gen<N>.json`
(`ORCHESTRATOR_RECORD_HISTORIES=1`, tests/session/test_replay_histories.py). A later
change that alters commands may raise it instead of adding a patch id, when the change
can wait for the session's start to take effect: a generation-N path is asked as
`setup.generation >= N`, with N a named constant here (`SETUP_GENERATION`,
`GATE_GENERATION`, `CHECK_GENERATION`, `OPENING_GENERATION`, `LAST_CALL_GENERATION`,
`LAST_CALL_FAILURE_GENERATION`),
never `GENERATION` itself, which moves on.

Generation 1 also brings the first step's routing decision inside `start_session`
(`SessionSetup.first_route`), which needs no marker of its own: the workflow asks the
`orchestrator.route` activity whenever the recorded setup holds no decision for the
question it asks (tests/session/test_routing_sessions.py covers both)."""

LIVE = frozenset({ROUTING, APPROVAL_POLICY, DECISION_DURABLE, BOOKKEEPING_BATCH, LAST_CALL_FAILURE})
"""Patches called with `workflow.patched`: a recorded history needs their old path."""

RETIRED = frozenset({CONTINUE_AS_NEW, LOOP_CONTINUE, APPROVAL_EVENTS, TRUNCATION, MODEL_FAILURE})
"""Patches called with `workflow.deprecate_patch`: every recorded history replays with
their new path, which now always runs; a session still running that took an old path
before the patch existed would not, so deploy this only once those have finished."""
