"""Agent steps: the model is chosen at a boundary and pinned for the whole tool loop.

Routing, forced failover (roll back to the step's start, or carry over), the cascade and the
tool loop itself; tool results are reused on a re-run so no effect repeats.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError

from orchestrator.exceptions import PayloadTooLargeError, from_failure
from orchestrator.plans.models import (
    AgentStep,
)
from orchestrator.plans.schemas import structured_output
from orchestrator.providers.messages import ChatMessage, ToolCall, ToolDefinition
from orchestrator.session import names, patches
from orchestrator.session.carry import Continuation
from orchestrator.session.core import DeploymentDown, SessionRuntime, StepFailed
from orchestrator.session.last_call import final_output
from orchestrator.session.limits import limit_reached
from orchestrator.session.model_pins import ModelPins
from orchestrator.session.payloads import (
    MAX_CONVERSATION_BYTES,
    model_size,
    refused_answer,
    too_large,
)
from orchestrator.session.pinning import (
    agent_opening,
    carries_over,
    failover_prompt_chars,
    failure_message,
    reuse_key,
    unavailable,
)
from orchestrator.session.prompt_cache import prompt_head, served
from orchestrator.session.skill_calls import SkillCalls, skill_names
from orchestrator.session.step_types import step_kind
from orchestrator.session.truncation import CONTINUE_PROMPT, truncation_failure
from orchestrator.session.types import (
    CheckAnswerInput,
    CheckAnswerResult,
    LoopCarry,
    ModelCallInput,
    ModelCallResult,
    StepState,
)
from orchestrator.store.records import EventKind
from orchestrator.types import JsonValue

if TYPE_CHECKING:
    from orchestrator.session.parts import SessionParts

__all__ = ["ToolLoop"]


class ToolLoop:
    """Runs agent steps: routes at boundaries (through `ModelPins`), then the pinned loop."""

    def __init__(
        self,
        rt: SessionRuntime,
        pins: ModelPins,
        skills: SkillCalls,
        continuation: Continuation,
    ) -> None:
        self._rt = rt
        self._pins = pins
        self._skills = skills
        self._continuation = continuation
        self._attempt = 0
        """Re-runs of the running step so far (forced failovers and a cascade)."""
        self._reuse: dict[str, str] = {}
        """Tool results of the running step a re-run answers with instead of running again."""

    async def _rejected(self, step: AgentStep, answer: JsonValue) -> str | None:
        """Why a cascade step's final answer fails its `accept` check, or None."""
        if step.accept is None:
            return None
        rt = self._rt
        check = await rt.activity(
            names.CHECK_ANSWER,
            CheckAnswerInput(
                ctx=rt.ctx(step.id),
                expression=step.accept,
                answer=str(answer),
                credit=rt.credit(),
            ),
            CheckAnswerResult,
            rt.start.options.bookkeeping,
        )
        return None if check.ok else check.detail

    def _cache_scope(
        self, ask: ModelCallInput, step: AgentStep, tools: list[ToolDefinition]
    ) -> None:
        """Let the call use the response cache, keyed by the session's tenant.

        Not for a step with `cache: false`; tools whose skills are read-only by contract
        are reads, any other tool result a write.
        """
        if not step.cache:
            return
        offered = {tool.name for tool in tools}
        ask.cache_tenant = self._rt.start.tenant
        ask.cache_name = step.model
        ask.read_only_tools = sorted(
            spec.tool_name
            for spec in self._rt.skills.values()
            if spec.tool_name in offered and spec.risk == "read_only"
        )

    async def agent_step(self, step: AgentStep, state: StepState) -> JsonValue:
        """Run an agent step: choose its model, then the tool loop until a final answer."""
        rt = self._rt
        inputs, outputs = rt.start.input, rt.outputs
        if not rt.routing:
            model = self._pins.pin(step)
            state.model = model
        allowed = skill_names(step.skills)
        unknown = [name for name in allowed if name not in rt.skills]
        if unknown:
            raise StepFailed(f"skills not registered: {', '.join(unknown)}")
        specs = [rt.skills[name] for name in allowed]
        tools, start = agent_opening(rt.start.plan.name, step, specs, inputs, outputs)
        if not rt.routing:
            return await self._tool_loop(step, state, model, start, tools)
        # Only a top-level step's loop may continue as new: a construct's inner steps have
        # no place in the carry.
        top = next((i for i, s in enumerate(rt.start.plan.steps) if s is step), None)
        resumed = self._continuation.resumed_loop(top)
        first, escalated = 0, False
        failed: dict[str, str] = {}
        head = prompt_head(tools, start)
        if resumed is None:
            self._attempt, self._reuse = 0, {}
            model = await self._pins.route(step, head.chars, head=head)
            conversation = list(start)
        else:
            # Continued as new between two rounds: the same model goes on, unrouted.
            self._attempt, self._reuse = resumed.attempt, dict(resumed.reuse)
            failed, escalated = dict(resumed.failed), resumed.escalated
            self._pins.failover, self._pins.routed = resumed.failover, True
            model, conversation, first = resumed.model, list(resumed.messages), resumed.round
        while True:
            state.model = model
            base = None
            if top is not None:
                base = LoopCarry(step=top, round=first, model=model, messages=[])
                base.failed, base.escalated = failed, escalated
            try:
                answer = await self._tool_loop(step, state, model, conversation, tools, base)
                first = 0
                why = None if escalated else await self._rejected(step, answer)
                if why is None:
                    return answer
                # Cascade: the loop has closed, so this is a safe boundary. Re-run the step
                # from its start on the stronger model; tool results are reused.
                escalated = True
                self._attempt += 1
                conversation = list(start)
                model = await self._pins.route(
                    step, head.chars, attempt=self._attempt, escalate=why, head=head
                )
                continue
            except DeploymentDown as down:
                # Default: roll the step back to its start (a safe boundary) and re-run it
                # on the next deployment that satisfies the same constraints; tool results
                # of the failed attempt are reused, so no effect runs twice. A policy may
                # instead carry the conversation over to the next deployment mid-loop.
                carry = carries_over(self._pins.failover)
                first = 0
                if not carry:
                    rt.state.in_tool_loop = False
                    conversation = list(start)
                failed[model] = down.cause
                self._attempt += 1
                # A carried-over conversation is what the next deployment must hold.
                size = sum(len(m.content or "") for m in conversation)
                chars = failover_prompt_chars(carry, size, head.chars)
                model = await self._pins.route(step, chars, attempt=self._attempt, failed=failed)

    async def _tool_loop(
        self,
        step: AgentStep,
        state: StepState,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolDefinition],
        base: LoopCarry | None = None,
    ) -> JsonValue:
        """Ask the pinned model, run its tool calls, until it answers without any.

        With `base` (a top-level step's loop: its plan index, the round to start at, what
        a failover or cascade decided so far), a long history continues as new between two
        rounds (every tool call of the last one answered, no approval pending), carrying
        the loop over to the next run.
        """
        rt = self._rt
        prefix = f"f{self._attempt}." if self._attempt else ""
        first = base.round if base is not None else 0
        head = prompt_head(tools, messages)
        # JSON bytes of each message so far: a message is measured once, not every round.
        sizes: list[int] = []
        for round_no in range(first, step.max_rounds):
            if base is not None and round_no > first:
                await self._continue_between_rounds(base, round_no, messages)
            if not rt.batched:
                await rt.flush()
            if rt.state.in_tool_loop and rt.state.pinned_model != model:
                raise StepFailed("invariant broken: model changed inside an open tool loop")
            self._check_limits(step, state)
            self._check_conversation(step, round_no, messages, sizes)
            ask = ModelCallInput(
                ctx=rt.ctx(step.id),
                round=round_no,
                model=model,
                messages=messages,
                tools=tools,
                max_tokens=step.max_tokens,
                temperature=step.temperature,
            )
            if rt.routing:
                ask.attempt, ask.tenant, ask.team = (
                    self._attempt,
                    rt.start.tenant,
                    rt.start.team,
                )
            self._cache_scope(ask, step, tools)
            if rt.batched:
                # Written by the model-call activity before it calls (`bookkeeping-batch-v1`).
                ask.events = rt.take_events()
                # A final answer may end the session: the call then closes it too.
                ask.closing = rt.closing(step)
            result = await self._call_model(ask)
            state.rounds = round_no + 1
            rt.account(result)
            # What the deployment's prompt cache now holds, for the next boundary's router.
            rt.memory.prompt_heads[model] = served(
                head, model, messages, result.response.usage.input_tokens, workflow.now()
            )
            state.cost_usd += result.cost_usd
            rt.state.model_calls += 1
            answer = result.response.message
            messages.append(answer)
            if result.response.truncated:
                if not rt.batched:
                    workflow.deprecate_patch(patches.TRUNCATION)
                if step.on_truncation == "fail" or answer.tool_calls:
                    rt.state.in_tool_loop = False
                    raise StepFailed(truncation_failure(step.id, model, result))
                messages.append(ChatMessage(role="user", content=CONTINUE_PROMPT))
                continue
            if not answer.tool_calls:
                rt.state.in_tool_loop = False
                return final_output(messages, result.closed)
            rt.state.in_tool_loop = True
            for index, call in enumerate(answer.tool_calls):
                content = await self._tool_call(step, f"{prefix}{round_no}.{index}", call)
                messages.append(
                    ChatMessage(role="tool", tool_call_id=call.id, name=call.name, content=content)
                )
        rt.state.in_tool_loop = False
        raise StepFailed(f"no final answer after max_rounds={step.max_rounds} model calls")

    async def _call_model(self, ask: ModelCallInput) -> ModelCallResult:
        """One model call of the loop; a failure for good ends the step or fails over."""
        rt = self._rt
        try:
            return await rt.activity(
                names.CALL_MODEL, ask, ModelCallResult, rt.model_call_options(ask.model)
            )
        except ActivityError as exc:
            closed = await rt.closed_by_call(ask)
            if closed is not None:
                return closed  # its end is written: the session completes with it
            if rt.routing and unavailable(exc):
                raise DeploymentDown(failure_message(exc)) from None
            if isinstance(from_failure(exc), PayloadTooLargeError):
                raise self._refused(exc) from None
            if not rt.batched:
                workflow.deprecate_patch(patches.MODEL_FAILURE)
            rt.state.in_tool_loop = False
            raise StepFailed(f"model call failed: {failure_message(exc)}") from None

    def _check_conversation(
        self, step: AgentStep, round_no: int, messages: list[ChatMessage], sizes: list[int]
    ) -> None:
        """Fail the step before a model call whose conversation Temporal would refuse.

        `sizes` holds the sizes of the messages measured before; the loop only appends to
        its conversation, so only the new ones are measured.
        """
        sizes.extend(model_size(m) for m in messages[len(sizes) :])
        size = sum(sizes)
        if size > MAX_CONVERSATION_BYTES:
            what = f"the conversation of step {step.id!r} (round {round_no})"
            raise StepFailed(too_large(what, size, MAX_CONVERSATION_BYTES))

    def _refused(self, exc: ActivityError) -> StepFailed:
        """The step's failure for a model answer refused as too large (the call is paid)."""
        spent = refused_answer(exc)
        if spent is not None:
            state = self._rt.state
            state.input_tokens += spent.input_tokens
            state.output_tokens += spent.output_tokens
            state.cost_usd += spent.cost_usd
        return StepFailed(failure_message(exc))

    async def _continue_between_rounds(
        self, base: LoopCarry, round_no: int, messages: list[ChatMessage]
    ) -> None:
        """Continue as new here if the history is long, carrying the open loop."""
        if not self._continuation.loop_due(f"loop:{base.step}:{self._attempt}:{round_no}"):
            return
        await self._continuation.continue_loop(
            base.model_copy(
                update={
                    "round": round_no,
                    "messages": list(messages),
                    "attempt": self._attempt,
                    "reuse": dict(self._reuse),
                    "failover": self._pins.failover,
                }
            )
        )

    def _check_limits(self, step: AgentStep, state: StepState) -> None:
        """Fail the step before a model call that the plan's or step's limits forbid."""
        limit = limit_reached(self._rt.start.plan, step, self._rt.state, state)
        if limit is not None:
            self._rt.state.in_tool_loop = False
            raise StepFailed(limit)

    async def _tool_call(self, step: AgentStep, call_id: str, call: ToolCall) -> str:
        rt = self._rt
        skill_name = rt.tool_to_skill.get(call.name)
        allowed = skill_names(step.skills)
        if skill_name is None or skill_name not in allowed:
            offered = ", ".join(rt.skills[n].tool_name for n in allowed) or "none"
            return self._tool_error(
                step.id, call_id, call.name, f"unknown tool {call.name!r}; tools offered: {offered}"
            )
        if call.arguments is None:
            return self._tool_error(step.id, call_id, call.name, call.parse_error or "no arguments")
        key = reuse_key(skill_name, call.arguments)
        if self._attempt and key in self._reuse:
            rt.event(
                EventKind.TOOL_CALL,
                step.id,
                key=f"tool:{call_id}:reused",
                payload={"call_id": call_id, "arguments": call.arguments, "reused": True},
            )
            return self._reuse[key]
        result = await self._skills.invoke(
            step.id, call_id, rt.skills[skill_name], call.arguments, step.on_reject
        )
        if result.ok:
            content = json.dumps(result.output, sort_keys=True)
        else:
            content = f"ERROR ({result.error_kind}): {result.error}"
        if rt.routing and result.error_kind != "failed":
            # A re-run after a forced failover answers the same call with this result
            # instead of running it again: an effect never repeats.
            self._reuse[key] = content
        return content

    def _tool_error(self, step_id: str, call_id: str, tool: str, error: str) -> str:
        self._rt.event(
            EventKind.TOOL_ERROR,
            step_id,
            key=f"tool:{call_id}",
            payload={"tool": tool, "error": error, "call_id": call_id},
            credit=self._rt.credit(),
        )
        return f"ERROR (invalid_call): {error}"


@step_kind("agent", task_type=lambda step: step.task_type)
async def _run_agent(parts: SessionParts, step: AgentStep, state: StepState) -> JsonValue:
    output = await parts.loop.agent_step(step, state)
    if step.output_schema is not None:
        output = structured_output(step.output_schema, output)
    return output
