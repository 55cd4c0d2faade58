"""The same agent loop on two same-engine peers, for `step_overhead.py --peers`.

- `openai-agents`: the OpenAI Agents SDK run as a Temporal workflow through Temporal's
  plugin (`temporalio-openai-agents`): model calls and the tool are activities.
- `pydantic-ai`: pydantic-ai's Temporal durability (the `TemporalDurability` capability,
  which replaced `TemporalAgent`): model requests and tool calls are activities.

Both ask the scripted model server (OpenAI chat completions, the bench's `REPLAY_MODEL`)
and run the same `tickets.get` skill as the bare and runtime variants. The model server's
address is read from `BENCH_MODEL_URL` when this module is imported (both libraries build
their model objects at import, as their docs show), so import it only after the server
is up. Needs the `bench` extra; CI never installs it.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent as OpenAIAgent
    from agents import Runner, set_tracing_disabled
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.durable_exec.temporal import TemporalDurability
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider as PydanticOpenAIProvider

    from orchestrator.skills.models import SkillContext
    from orchestrator.skills.registry import AnySkill

__all__ = [
    "OpenAIAgentsLoop",
    "PydanticAILoop",
    "bind_skill",
    "openai_agents_plugins",
    "pydantic_ai_plugins",
    "tickets_get",
]

MODEL = "replay-fast"
INSTRUCTIONS = "Look up ticket T-1001 with the tool until told to stop."
TIMEOUT = timedelta(seconds=60)
_URL = os.environ.get("BENCH_MODEL_URL", "http://127.0.0.1:1/v1")
_SKILL: list[tuple[AnySkill, SkillContext]] = []

set_tracing_disabled(True)


def bind_skill(skill: AnySkill, ctx: SkillContext) -> None:
    """The skill both peers' tool runs (the same one the other variants run)."""
    _SKILL[:] = [(skill, ctx)]


async def _run_skill(ticket_id: str) -> str:
    skill, ctx = _SKILL[0]
    parsed = skill.validate_arguments({"ticket_id": ticket_id})
    output = (await skill.fn(parsed, ctx)).model_dump(mode="json")
    return json.dumps(output, sort_keys=True)


# ---- Temporal's OpenAI-agents plugin ----------------------------------------------


@activity.defn(name="tickets_get")
async def tickets_get(ticket_id: str) -> str:
    """Look up a support ticket by id."""
    return await _run_skill(ticket_id)


@workflow.defn(name="bench.OpenAIAgentsLoop")
class OpenAIAgentsLoop:
    """One agent with one activity tool, run until the model answers without tools."""

    @workflow.run
    async def run(self, max_turns: int) -> str:
        from temporalio.openai_agents.workflow import activity_as_tool

        agent = OpenAIAgent(
            name="bench",
            instructions=INSTRUCTIONS,
            model=MODEL,
            tools=[activity_as_tool(tickets_get, start_to_close_timeout=TIMEOUT)],
        )
        result = await Runner.run(agent, INSTRUCTIONS, max_turns=max_turns)
        return str(result.final_output)


def openai_agents_plugins() -> tuple[list[object], list[object]]:
    """(client plugins, worker plugins): the client's plugin serves its workers too."""
    from agents.models.openai_provider import OpenAIProvider
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    provider = OpenAIProvider(base_url=_URL, api_key="bench", use_responses=False)
    params = ModelActivityParameters(start_to_close_timeout=TIMEOUT)
    return [OpenAIAgentsPlugin(model_params=params, model_provider=provider)], []


# ---- pydantic-ai's Temporal durability --------------------------------------------

_pydantic_agent = PydanticAgent(
    OpenAIChatModel(MODEL, provider=PydanticOpenAIProvider(base_url=_URL, api_key="bench")),
    name="bench_pydantic",
    instructions=INSTRUCTIONS,
    capabilities=[
        TemporalDurability(activity_config=workflow.ActivityConfig(start_to_close_timeout=TIMEOUT))
    ],
)


@_pydantic_agent.tool_plain(name="tickets_get")
async def _pydantic_tickets_get(ticket_id: str) -> str:
    """Look up a support ticket by id."""
    return await _run_skill(ticket_id)


@workflow.defn(name="bench.PydanticAILoop")
class PydanticAILoop:
    """The same loop through `TemporalAgent.run`."""

    @workflow.run
    async def run(self, max_turns: int) -> str:
        from pydantic_ai import UsageLimits

        result = await _pydantic_agent.run(
            INSTRUCTIONS, usage_limits=UsageLimits(request_limit=max_turns)
        )
        return str(result.output)


def pydantic_ai_plugins() -> tuple[list[object], list[object]]:
    """(client plugins, worker plugins) for pydantic-ai's Temporal durability."""
    from pydantic_ai.durable_exec.temporal import AgentPlugin, PydanticAIPlugin

    return [PydanticAIPlugin()], [AgentPlugin(_pydantic_agent)]
