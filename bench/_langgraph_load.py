"""The load plan on LangGraph, as a peer for `load.py`: same model, same tools, same checks.

The graph is the usual ReAct shape: a `model` node calls the scripted model server over HTTP
with the same `OpenAIProvider` our activities use, and a `tools` node runs the same skill
functions (`orchestrator.loadgen.tools`, loaded through the same contracts), validating
arguments the same way. A call whose contract gates it (`load.apply` over 100) waits for a
person with LangGraph's `interrupt()`: the run stops and is checkpointed; the approver
resumes the thread with `Command(resume=...)`. Checkpoints go to `AsyncSqliteSaver` (a
SQLite file) with `durability="sync"`, so every step is on disk before the next starts,
the closest LangGraph comes to our durability.

Each session is one thread and one asyncio task; the approver resumes every parked thread
at once. The traces and the final judgement are made by `orchestrator.loadgen`, exactly as
for our runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import operator
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _load_peers import PeerLoad
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from orchestrator.loadgen import (
    LoadReport,
    SessionSpec,
    SessionTrace,
    read_ledger,
    summarise,
)
from orchestrator.providers.messages import ChatMessage, ModelRequest, ToolDefinition
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.skills.approval import condition_holds
from orchestrator.skills.models import SkillContext
from orchestrator.skills.registry import AnySkill

__all__ = ["run_langgraph_load"]

MODEL = "replay-load"
"""What models.yaml of the load project maps `load-model` to."""


class State(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]


class LoadGraph:
    """The graph and what its nodes need: model client, skills, traces, ledger folder."""

    def __init__(
        self,
        provider: OpenAIProvider,
        skills: Sequence[AnySkill],
        tools: list[ToolDefinition],
        traces: dict[str, SessionTrace],
        state_dir: Path,
    ) -> None:
        self.provider = provider
        self.skills = {s.spec.tool_name: s for s in skills}
        self.tools = tools
        self.traces = traces
        self.state_dir = state_dir

    def build(self, checkpointer: AsyncSqliteSaver) -> Any:
        graph = StateGraph(State)
        graph.add_node("model", self.model)
        graph.add_node("tools", self.run_tools)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", self.route, ["tools", END])
        graph.add_edge("tools", "model")
        return graph.compile(checkpointer=checkpointer)

    async def model(self, state: State, config: RunnableConfig) -> dict[str, Any]:
        messages = [ChatMessage.model_validate(m) for m in state["messages"]]
        request = ModelRequest(model=MODEL, messages=messages, tools=self.tools)
        answer = (await self.provider.complete(request)).message
        self.traces[_thread(config)].model_done.append(time.time())
        return {"messages": [answer.model_dump(mode="json", exclude_none=True)]}

    @staticmethod
    def route(state: State) -> str:
        return "tools" if state["messages"][-1].get("tool_calls") else END

    async def run_tools(self, state: State, config: RunnableConfig) -> dict[str, Any]:
        thread = _thread(config)
        last = ChatMessage.model_validate(state["messages"][-1])
        out: list[dict[str, Any]] = []
        for call in last.tool_calls or []:
            skill = self.skills[call.name]
            arguments = call.arguments or {}
            parsed = skill.validate_arguments(arguments)
            condition = skill.spec.approval_condition
            gated = skill.spec.requires_approval or (
                condition is not None and condition_holds(condition, arguments)
            )
            if gated:
                decision = interrupt({"skill": skill.spec.ref, "arguments": arguments})
                if not decision.get("approved"):
                    content = f"rejected by {decision.get('by')}"
                    out.append(_tool_message(call.id, call.name, content))
                    continue
            key = hashlib.sha256(f"{thread}|{call.id}|{skill.spec.name}".encode()).hexdigest()
            ctx = SkillContext(
                session_id=thread,
                workflow_id=thread,
                run_id="langgraph",
                step_id="work",
                call_id=call.id,
                idempotency_key=key[:32],
                attempt=1,
                state_dir=self.state_dir,
            )
            result = await skill.fn(parsed, ctx)
            content = json.dumps(result.model_dump(mode="json"), sort_keys=True)
            out.append(_tool_message(call.id, call.name, content))
        return {"messages": out}


def _thread(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])


def _tool_message(call_id: str, name: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


async def run_langgraph_load(load: PeerLoad) -> LoadReport:
    """Run every session as a LangGraph thread; approve the parked ones; judge the run."""
    specs, settings, state_dir = load.specs, load.settings, load.state_dir
    skills = load.skills()
    traces = load.traces()
    live = {"now": 0, "peak": 0}
    async with (
        OpenAIProvider(base_url=load.scripted_url) as provider,
        AsyncSqliteSaver.from_conn_string(str(state_dir / "checkpoints.db")) as saver,
    ):
        tools, _ = load.opening(specs[0], skills)
        graph = LoadGraph(provider, skills, tools, traces, state_dir).build(saver)

        def config(session_id: str) -> RunnableConfig:
            return {"configurable": {"thread_id": session_id}}

        def finished(trace: SessionTrace, result: Any) -> None:
            if "__interrupt__" not in result:
                trace.ended_at = time.time()
                live["now"] -= 1

        async def start(spec: SessionSpec) -> None:
            trace = traces[spec.session_id]
            trace.started_at = time.time()
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
            _, opening = load.opening(spec, skills)
            messages = [m.model_dump(mode="json", exclude_defaults=True) for m in opening]
            try:
                result = await graph.ainvoke(
                    {"messages": messages}, config(spec.session_id), durability="sync"
                )
            except Exception as exc:
                trace.error = f"run failed: {exc!r}"
                return
            finished(trace, result)

        async def resume(spec: SessionSpec) -> None:
            trace = traces[spec.session_id]
            trace.decided_at = time.time()
            decision = Command(resume={"approved": True, "by": settings.approver})
            try:
                result = await graph.ainvoke(decision, config(spec.session_id), durability="sync")
            except Exception as exc:
                trace.error = f"resume failed: {exc!r}"
                return
            finished(trace, result)

        first = time.time()
        gated = [s for s in specs if s.mode == "gated"]
        opened = [asyncio.create_task(start(s)) for s in specs]
        by_id = dict(zip([s.session_id for s in specs], opened, strict=True))
        await asyncio.gather(*(by_id[s.session_id] for s in gated))
        parked = [
            s
            for s in gated
            if traces[s.session_id].error is None and traces[s.session_id].ended_at is None
        ]
        to_parked = time.time() - first
        await load.parked()
        await asyncio.gather(*opened, *(resume(s) for s in parked))
        await load.ended()
        for trace in traces.values():
            if trace.error is None:
                state = await graph.aget_state(config(trace.session_id))
                last = state.values["messages"][-1] if state.values.get("messages") else {}
                trace.completed = not state.next and bool(last.get("content"))
                if not trace.completed:
                    trace.error = f"thread stopped at {state.next}"
    return summarise(
        "langgraph",
        list(traces.values()),
        read_ledger(state_dir),
        tool_seconds=settings.tool_seconds,
        parked_at_once=len(parked),
        peak_live=live["peak"],
        to_parked_s=to_parked,
    )
