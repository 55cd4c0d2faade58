"""The bare temporalio variant of `step_overhead.py`: a minimal workflow and its activities.

A module of its own, passed through the workflow sandbox as the peers' `_peers.py` is, so
the sandbox re-imports nothing per bare session. It used to live in `step_overhead.py`,
which every bare session's sandbox re-imported (a larger module, with rich and the whole
bench in it): that made bare temporalio's fixed cost, and its throughput at 50 concurrent
sessions, worse than it is, unlike the peers'.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from orchestrator.providers.messages import ChatMessage, ModelRequest, ToolDefinition
    from orchestrator.providers.openai import OpenAIProvider
    from orchestrator.skills.models import SkillContext
    from orchestrator.skills.registry import AnySkill
    from orchestrator.types import JsonObject

__all__ = [
    "ACTIVITY_TIMEOUT",
    "GOAL",
    "PLAN_NAME",
    "REPLAY_MODEL",
    "STEP_ID",
    "BareActivities",
    "BareSessionInput",
    "HoldInput",
    "ResponsivenessWorkflow",
    "StepLoopWorkflow",
    "ask_model",
    "opening_messages",
    "run_skill",
]

ResultT = TypeVar("ResultT", bound=BaseModel)

PLAN_NAME = "bench-step-overhead"
STEP_ID = "loop"
GOAL = "Look up ticket T-1001 with the tool until told to stop."
REPLAY_MODEL = "replay-fast"
"""The deployment name models.yaml maps `demo-fast` to; the bare variants ask it directly."""
ACTIVITY_TIMEOUT = timedelta(seconds=60)


def opening_messages() -> list[ChatMessage]:
    """The system and user messages the runtime's agent step opens with."""
    return [
        ChatMessage(role="system", content=f"Plan: {PLAN_NAME}\nStep: {STEP_ID}"),
        ChatMessage(role="user", content=GOAL),
    ]


async def ask_model(
    provider: OpenAIProvider, messages: list[ChatMessage], tools: list[ToolDefinition]
) -> ChatMessage:
    request = ModelRequest(model=REPLAY_MODEL, messages=messages, tools=tools)
    return (await provider.complete(request)).message


async def run_skill(skill: AnySkill, arguments: JsonObject, ctx: SkillContext) -> str:
    parsed = skill.validate_arguments(arguments)
    output = (await skill.fn(parsed, ctx)).model_dump(mode="json")
    return json.dumps(output, sort_keys=True)


class BareModelCall(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolDefinition]


class BareModelResult(BaseModel):
    message: ChatMessage
    finished_at: float


class BareSkillCall(BaseModel):
    arguments: JsonObject


class BareSkillResult(BaseModel):
    content: str
    finished_at: float


class BareSessionInput(BaseModel):
    local: bool
    max_rounds: int
    tools: list[ToolDefinition]


class BareSessionResult(BaseModel):
    model_done: list[float]
    tool_done: list[float]


class HoldInput(BaseModel):
    local: bool


class Empty(BaseModel):
    pass


class BareActivities:
    """The two operations of a step, plus a call that waits to be released."""

    def __init__(self, provider: OpenAIProvider, skill: AnySkill, ctx: SkillContext) -> None:
        self.provider, self.skill, self.ctx = provider, skill, ctx
        self.hold_started = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="bench.call_model")
    async def call_model(self, call: BareModelCall) -> BareModelResult:
        message = await ask_model(self.provider, call.messages, call.tools)
        return BareModelResult(message=message, finished_at=time.time())

    @activity.defn(name="bench.call_skill")
    async def call_skill(self, call: BareSkillCall) -> BareSkillResult:
        content = await run_skill(self.skill, call.arguments, self.ctx)
        return BareSkillResult(content=content, finished_at=time.time())

    @activity.defn(name="bench.hold")
    async def hold(self, _: Empty) -> Empty:
        """Stand in for a slow model call: run until the bench releases it."""
        self.hold_started.set()
        await self.release.wait()
        return Empty()


async def _execute(name: str, arg: BaseModel, result_type: type[ResultT], local: bool) -> ResultT:
    """An activity by name with default options but the required timeout."""
    result: ResultT
    if local:
        result = await workflow.execute_local_activity(
            name, arg, result_type=result_type, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
    else:
        result = await workflow.execute_activity(
            name, arg, result_type=result_type, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
    return result


@workflow.defn(name="bench.StepLoop")
class StepLoopWorkflow:
    """The agent tool loop with nothing else: model call, tool call, repeat."""

    @workflow.run
    async def run(self, start: BareSessionInput) -> BareSessionResult:
        messages, done = opening_messages(), BareSessionResult(model_done=[], tool_done=[])
        for _ in range(start.max_rounds):
            call = BareModelCall(messages=messages, tools=start.tools)
            answer = await _execute("bench.call_model", call, BareModelResult, start.local)
            done.model_done.append(answer.finished_at)
            messages.append(answer.message)
            if not answer.message.tool_calls:
                break
            for tool_call in answer.message.tool_calls:
                args = BareSkillCall(arguments=tool_call.arguments or {})
                result = await _execute("bench.call_skill", args, BareSkillResult, start.local)
                done.tool_done.append(result.finished_at)
                messages.append(
                    ChatMessage(
                        role="tool",
                        tool_call_id=tool_call.id,
                        name=tool_call.name,
                        content=result.content,
                    )
                )
        return done


@workflow.defn(name="bench.Responsiveness")
class ResponsivenessWorkflow:
    """One long call; the bench queries and updates the workflow while it runs."""

    def __init__(self) -> None:
        self._pokes = 0

    @workflow.query(name="bench.pokes")
    def pokes(self) -> int:
        return self._pokes

    @workflow.update(name="bench.poke")
    async def poke(self) -> int:
        self._pokes += 1
        return self._pokes

    @workflow.run
    async def run(self, start: HoldInput) -> Empty:
        await _execute("bench.hold", Empty(), Empty, start.local)
        await workflow.wait_condition(lambda: self._pokes > 0)
        return Empty()
