"""Steps that fan out beyond the session's own tool loop: ensembles and sub-plans.

An ensemble asks several models one question at once and merges their answers; a
sub-plan runs another plan as a child session (a Temporal child workflow). Neither opens
a tool loop, so the session's pinned model is untouched by them.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from orchestrator.exceptions import SessionInputError
from orchestrator.plans.models import EnsembleStep, SubPlanStep
from orchestrator.providers.messages import ChatMessage
from orchestrator.session import names, patches
from orchestrator.session.core import SessionRuntime, StepFailed
from orchestrator.session.ensemble import Ballot, VoteError, ballot, verifier_prompt, vote
from orchestrator.session.limits import fanout_limit
from orchestrator.session.step_types import step_kind
from orchestrator.session.templating import render_text, render_value
from orchestrator.session.truncation import truncation_failure
from orchestrator.session.types import (
    ModelCallInput,
    ModelCallResult,
    SessionResult,
    StepState,
)
from orchestrator.session_start import StartOptions, build_start
from orchestrator.store.records import EventKind
from orchestrator.types import JsonObject, JsonValue

if TYPE_CHECKING:
    from orchestrator.session.parts import SessionParts

__all__ = ["FanOut", "child_session_id"]


def child_session_id(parent: str, step_id: str) -> str:
    """A sub-plan's session id: the parent's and the step's (a loop's `#n` as `.n`)."""
    return f"{parent}.{step_id.replace('#', '.')}"


class FanOut:
    """Runs ensemble and sub-plan steps."""

    def __init__(self, rt: SessionRuntime) -> None:
        self._rt = rt

    async def ensemble_step(self, step: EnsembleStep, state: StepState) -> JsonValue:
        """Ask every model at once, then merge by vote or by the verifier's answer."""
        rt = self._rt
        asked = [*step.models, *([step.verifier] if step.verifier else [])]
        unknown = [m for m in asked if rt.models and m not in rt.models]
        if unknown:
            raise StepFailed(f"unknown models: {', '.join(unknown)}")
        inputs, outputs = rt.start.input, rt.outputs
        system = f"Plan: {rt.start.plan.name}\nStep: {step.id}"
        if step.instructions:
            system += "\n\n" + render_text(step.instructions, inputs, outputs)
        if step.output_schema is not None:
            system += "\n\nAnswer with JSON only, fitting this JSON Schema:\n" + json.dumps(
                step.output_schema, sort_keys=True
            )
        question = render_text(step.goal, inputs, outputs)
        if inputs:
            question += "\n\nSession input:\n" + json.dumps(inputs, sort_keys=True)
        state.model = ", ".join(step.models)
        limit = fanout_limit(rt.start.plan, rt.state, len(asked))
        if limit is not None:
            raise StepFailed(limit)
        answers = await asyncio.gather(
            *(
                self._ask(step.id, index, model, system, question)
                for index, model in enumerate(step.models)
            )
        )
        ballots = [
            ballot(model, text, step.output_schema) if error is None else Ballot(model, error=error)
            for model, (text, error) in zip(step.models, answers, strict=True)
        ]
        state.rounds = len(step.models)
        payload: JsonObject = {
            "merge": step.merge,
            "ballots": [b.summary() for b in ballots],
        }
        try:
            if step.verifier is not None:
                if all(b.error is not None for b in ballots):
                    raise VoteError("no model gave a usable answer for the verifier to check")
                text, error = await self._ask(
                    step.id,
                    len(step.models),
                    step.verifier,
                    system,
                    verifier_prompt(question, ballots),
                )
                final = ballot(step.verifier, text, step.output_schema)
                if error is not None or final.error is not None:
                    raise VoteError(f"verifier {step.verifier}: {error or final.error}")
                answer = final.answer
                state.rounds += 1
            else:
                needed = step.min_votes or len(step.models) // 2 + 1
                answer, tally = vote(ballots, needed)
                payload["tally"] = dict(tally)
        except VoteError as exc:
            payload["error"] = str(exc)
            rt.event(EventKind.ENSEMBLE_MERGED, step.id, payload=payload)
            raise StepFailed(f"ensemble: {exc}") from None
        payload["answer"] = answer
        rt.event(EventKind.ENSEMBLE_MERGED, step.id, payload=payload)
        return answer

    async def _ask(
        self, step_id: str, index: int, model: str, system: str, question: str
    ) -> tuple[str | None, str | None]:
        """One model's single answer (no tools), or why it gave none."""
        rt = self._rt
        ask = ModelCallInput(
            ctx=rt.ctx(step_id),
            round=index,
            model=model,
            messages=[
                ChatMessage(role="system", content=system),
                ChatMessage(role="user", content=question),
            ],
            tools=[],
            tenant=rt.start.tenant,
            team=rt.start.team,
        )
        try:
            result = await rt.activity(
                names.CALL_MODEL, ask, ModelCallResult, rt.model_call_options(model)
            )
        except ActivityError as exc:
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc)
            return None, cause
        rt.account(result)
        rt.state.model_calls += 1
        message = result.response.message
        if result.response.truncated:
            if not rt.batched:
                workflow.deprecate_patch(patches.TRUNCATION)
            return None, truncation_failure(step_id, model, result, continuable=False)
        if message.tool_calls:
            return None, "asked for tools; an ensemble step offers none"
        return message.content, None

    async def subplan_step(self, step: SubPlanStep) -> JsonValue:
        """Run the sub-plan as a child session and give its final output."""
        rt = self._rt
        setup = rt.setup
        plan = setup.subplans.get(step.plan) if setup is not None else None
        if plan is None:
            raise StepFailed(f"sub-plan {step.plan!r} was not resolved when the session started")
        arguments = render_value(step.input, rt.start.input, rt.outputs)
        if not isinstance(arguments, dict):
            raise StepFailed("input must render to an object")
        parent = rt.start
        how = StartOptions(
            session_id=child_session_id(parent.session_id, step.id),
            requested_by=parent.requested_by,
            options=parent.options,
            tenant=parent.tenant,
            team=parent.team,
            headers=parent.headers,
            subplans=setup.subplans if setup is not None else {},
        )
        try:
            child = build_start(plan, arguments, how)
        except SessionInputError as exc:
            raise StepFailed(f"sub-plan {step.plan!r}: {exc}") from None
        session_id = child.session_id
        workflow_id = names.workflow_id_for(session_id)
        rt.event(
            EventKind.SUBPLAN_STARTED,
            step.id,
            payload={
                "plan": plan.name,
                "plan_version": plan.version,
                "session_id": session_id,
                "workflow_id": workflow_id,
            },
        )
        await rt.flush()
        try:
            result: SessionResult = await workflow.execute_child_workflow(
                names.WORKFLOW_NAME, child, id=workflow_id, result_type=SessionResult
            )
        except ChildWorkflowError as exc:
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc)
            raise StepFailed(f"sub-plan {plan.name!r} (session {session_id}): {cause}") from None
        return result.final_output


@step_kind("ensemble")
async def _run_ensemble(parts: SessionParts, step: EnsembleStep, state: StepState) -> JsonValue:
    return await parts.fanout.ensemble_step(step, state)


@step_kind("subplan")
async def _run_subplan(parts: SessionParts, step: SubPlanStep, _state: StepState) -> JsonValue:
    return await parts.fanout.subplan_step(step)
