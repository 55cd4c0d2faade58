"""The load plan on bare temporalio, as the floor for `load.py`: what Temporal alone costs.

One minimal workflow per session, with default worker and activity options (only the
required timeout), on the same tuned dev server and the same scripted model server as our
runtime: the workflow calls the model as an activity (the same `OpenAIProvider` over
HTTP, the same script), runs each tool call the model asks for as an activity (the same
skill functions, `orchestrator.loadgen.tools`, loaded through the same contracts and
validated the same way), and a call its contract gates (`load.apply` over 100) waits for an
approval signal. Nothing else: no store, no audit trail, no routing, no budgets. So the
difference between this and our runtime is what our runtime adds to Temporal.

Like `_bare.py`, a module of its own passed through the workflow sandbox, so the sandbox
re-imports nothing per session. The driver stamps each model call where the activity
completes it (the runtime's figures come from its audit events, LangGraph's from its node),
learns a gated session is parked when its second model answer is in (the one asking for
the gated call; a signal sent a moment before the workflow waits is kept for it), and
judges the run with the same `orchestrator.loadgen.summarise` as the other two.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

with workflow.unsafe.imports_passed_through():
    from _load_peers import PeerLoad

    from orchestrator.loadgen import (
        LoadReport,
        LoadSettings,
        SessionSpec,
        SessionTrace,
        read_ledger,
        summarise,
    )
    from orchestrator.plans.models import AgentStep
    from orchestrator.plugin import PASSTHROUGH_MODULES
    from orchestrator.providers.messages import ChatMessage, ModelRequest, ToolDefinition
    from orchestrator.providers.openai import OpenAIProvider
    from orchestrator.skills.approval import condition_holds
    from orchestrator.skills.models import SkillContext
    from orchestrator.skills.registry import AnySkill
    from orchestrator.types import JsonObject

__all__ = ["LoadSessionWorkflow", "run_bare_load"]

MODEL = "replay-load"
"""What models.yaml of the load project maps `load-model` to."""
TIMEOUT = timedelta(seconds=60)
GATED_ROUND = 2
"""The model answer that asks for the gated call: the second (lookup, then apply)."""


class ModelCall(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolDefinition]


class SkillCall(BaseModel):
    name: str
    call_id: str
    arguments: JsonObject


class Decision(BaseModel):
    approved: bool
    by: str


class LoadSessionInput(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolDefinition]
    approval: dict[str, str]
    """Tool name to the approval condition of its contract ("true" for always)."""
    max_rounds: int


class LoadSessionResult(BaseModel):
    answer: str | None


class LoadActivities:
    """The model call and the tool call, stamping each model answer for the driver."""

    def __init__(
        self,
        provider: OpenAIProvider,
        skills: Sequence[AnySkill],
        state_dir: Path,
        traces: dict[str, SessionTrace],
    ) -> None:
        self.provider = provider
        self.skills = {s.spec.tool_name: s for s in skills}
        self.state_dir = state_dir
        self.traces = traces

    @activity.defn(name="bench.load.call_model")
    async def call_model(self, call: ModelCall) -> ChatMessage:
        request = ModelRequest(model=MODEL, messages=call.messages, tools=call.tools)
        answer = (await self.provider.complete(request)).message
        self.traces[activity.info().workflow_id].model_done.append(time.time())
        return answer

    @activity.defn(name="bench.load.call_skill")
    async def call_skill(self, call: SkillCall) -> str:
        info = activity.info()
        skill = self.skills[call.name]
        parsed = skill.validate_arguments(call.arguments)
        key = f"{info.workflow_id}|{call.call_id}|{skill.spec.name}"
        ctx = SkillContext(
            session_id=info.workflow_id,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            step_id="work",
            call_id=call.call_id,
            idempotency_key=hashlib.sha256(key.encode()).hexdigest()[:32],
            attempt=info.attempt,
            state_dir=self.state_dir,
        )
        result = await skill.fn(parsed, ctx)
        return json.dumps(result.model_dump(mode="json"), sort_keys=True)


@workflow.defn(name="bench.LoadSession")
class LoadSessionWorkflow:
    """The tool loop and an approval gate, nothing else."""

    def __init__(self) -> None:
        self._decision: Decision | None = None

    @workflow.signal(name="bench.decide")
    def decide(self, decision: Decision) -> None:
        self._decision = decision

    @workflow.run
    async def run(self, start: LoadSessionInput) -> LoadSessionResult:
        messages = list(start.messages)
        for _ in range(start.max_rounds):
            answer = await workflow.execute_activity(
                "bench.load.call_model",
                ModelCall(messages=messages, tools=start.tools),
                result_type=ChatMessage,
                start_to_close_timeout=TIMEOUT,
            )
            messages.append(answer)
            if not answer.tool_calls:
                return LoadSessionResult(answer=answer.content)
            for call in answer.tool_calls:
                arguments = call.arguments or {}
                content = await self._tool(call.name, call.id, arguments, start.approval)
                messages.append(
                    ChatMessage(role="tool", tool_call_id=call.id, name=call.name, content=content)
                )
        return LoadSessionResult(answer=None)

    async def _tool(
        self, name: str, call_id: str, arguments: JsonObject, approval: dict[str, str]
    ) -> str:
        condition = approval.get(name)
        if condition is not None and condition_holds(condition, arguments):
            await workflow.wait_condition(lambda: self._decision is not None)
            assert self._decision is not None
            if not self._decision.approved:
                return f"rejected by {self._decision.by}"
        result: str = await workflow.execute_activity(
            "bench.load.call_skill",
            SkillCall(name=name, call_id=call_id, arguments=arguments),
            result_type=str,
            start_to_close_timeout=TIMEOUT,
        )
        return result


def session_input(
    load: PeerLoad, spec: SessionSpec, skills: Sequence[AnySkill]
) -> LoadSessionInput:
    """What one session starts with: the runtime's tools and opening, the skills' gates."""
    tools, messages = load.opening(spec, skills)
    step = load.plan.steps[0]
    return LoadSessionInput(
        messages=messages,
        tools=tools,
        approval={
            s.spec.tool_name: condition
            for s in skills
            if (condition := "true" if s.spec.requires_approval else s.spec.approval_condition)
        },
        max_rounds=step.max_rounds if isinstance(step, AgentStep) else 1,
    )


@dataclass
class _Run:
    """The driver's view: traces filled by the activities, handles of started sessions."""

    traces: dict[str, SessionTrace]
    handles: dict[str, WorkflowHandle[LoadSessionWorkflow, LoadSessionResult]]


async def run_bare_load(client: Client, load: PeerLoad) -> LoadReport:
    """Run every session as a bare workflow; approve the parked ones; judge the run."""
    specs, settings, state_dir = load.specs, load.settings, load.state_dir
    skills = load.skills()
    run = _Run(load.traces(), {})
    task_queue = f"bare-load-{specs[0].session_id}"
    gate = asyncio.Semaphore(settings.concurrency)
    live = {"now": 0, "peak": 0}
    async with OpenAIProvider(base_url=load.scripted_url) as provider:
        acts = LoadActivities(provider, skills, state_dir, run.traces)
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[LoadSessionWorkflow],
            activities=[acts.call_model, acts.call_skill],
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    *PASSTHROUGH_MODULES, "_bare_load", "_load_peers"
                )
            ),
        ):

            async def session(spec: SessionSpec) -> None:
                trace = run.traces[spec.session_id]
                async with gate:
                    trace.started_at = time.time()
                    try:
                        run.handles[spec.session_id] = await client.start_workflow(
                            LoadSessionWorkflow.run,
                            session_input(load, spec, skills),
                            id=spec.session_id,
                            task_queue=task_queue,
                        )
                    except Exception as exc:
                        trace.error = f"start failed: {exc!r}"
                        return
                live["now"] += 1
                live["peak"] = max(live["peak"], live["now"])
                try:
                    result = await run.handles[spec.session_id].result()
                except Exception as exc:
                    trace.error = f"no result: {exc!r}"
                    return
                finally:
                    live["now"] -= 1
                trace.ended_at = time.time()
                trace.completed = bool(result.answer)
                if not trace.completed:
                    trace.error = "ended without an answer"

            first = time.time()
            sessions = [asyncio.create_task(session(s)) for s in specs]
            gated = [s.session_id for s in specs if s.mode == "gated"]
            parked_at_once = await _wait_parked(run.traces, gated, settings)
            to_parked = time.time() - first
            await load.parked()
            await asyncio.gather(*(_approve(run, sid, gate, settings) for sid in gated))
            await asyncio.wait_for(asyncio.gather(*sessions), timeout=settings.timeout_s)
            await load.ended()
    return summarise(
        "bare",
        list(run.traces.values()),
        read_ledger(state_dir),
        tool_seconds=settings.tool_seconds,
        parked_at_once=parked_at_once,
        peak_live=live["peak"],
        to_parked_s=to_parked,
    )


async def _wait_parked(
    traces: dict[str, SessionTrace], gated: Sequence[str], settings: LoadSettings
) -> int:
    """Poll the traces until every gated session has its gated call's answer; how many did."""
    deadline = time.monotonic() + settings.timeout_s
    parked = 0
    while time.monotonic() < deadline:
        parked = sum(1 for sid in gated if len(traces[sid].model_done) >= GATED_ROUND)
        if parked == len(gated):
            break
        await asyncio.sleep(settings.poll_s)
    return parked


async def _approve(run: _Run, session_id: str, gate: asyncio.Semaphore, s: LoadSettings) -> None:
    handle = run.handles.get(session_id)
    if handle is None:
        return
    async with gate:
        run.traces[session_id].decided_at = time.time()
        try:
            await handle.signal(LoadSessionWorkflow.decide, Decision(approved=True, by=s.approver))
        except Exception as exc:
            run.traces[session_id].error = f"approval failed: {exc!r}"
