"""What the two peers of `load.py` (LangGraph, bare temporalio) share: their inputs and setup.

Both run the load plan outside our runtime, with the same skills loaded through the same
contracts, offered to the model as the same tool definitions, and traced the same way, so
`orchestrator.loadgen.summarise` judges them as it judges ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.loadgen import LoadSettings, SessionSpec, SessionTrace
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.session.pinning import agent_opening
from orchestrator.skills.registry import AnySkill, SkillRegistry

__all__ = ["PeerLoad"]


@dataclass(frozen=True)
class PeerLoad:
    """One peer's run: the plan and sessions, where the model and the project are, and how.

    Attributes:
        on_parked: Called once every gated session waits for its approval (to sample memory
            at the peak), before any is approved.
        on_ended: Called once every session has ended, before the outcome is checked (to
            close the CPU window).
    """

    plan: Plan
    specs: Sequence[SessionSpec]
    scripted_url: str
    project_dir: Path
    state_dir: Path
    settings: LoadSettings
    on_parked: Callable[[], Awaitable[None]] | None = None
    on_ended: Callable[[], Awaitable[None]] | None = None

    async def parked(self) -> None:
        """Tell the caller every gated session waits (if it asked to be told)."""
        if self.on_parked is not None:
            await self.on_parked()

    async def ended(self) -> None:
        """Tell the caller every session has ended (if it asked to be told)."""
        if self.on_ended is not None:
            await self.on_ended()

    def skills(self) -> list[AnySkill]:
        """The plan's two tools, from the project's contracts: the lookup, then the effect."""
        registry = SkillRegistry.load_directory(self.project_dir / "skills")
        return [registry.get("load.lookup"), registry.get("load.apply")]

    def traces(self) -> dict[str, SessionTrace]:
        """A fresh trace per session, and the state folder (the effect ledger's) made."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return {
            s.session_id: SessionTrace(s.session_id, s.mode == "gated", 0.0) for s in self.specs
        }

    def opening(
        self, spec: SessionSpec, skills: Sequence[AnySkill]
    ) -> tuple[list[ToolDefinition], list[ChatMessage]]:
        """The tools and opening messages our agent step starts this session with.

        The runtime's own pure function (`session.pinning.agent_opening`), so the scripted
        model sees the same requests from every system.
        """
        step = self.plan.steps[0]
        if not isinstance(step, AgentStep):
            raise ValueError(f"the load plan's first step is a {step.type} step, not an agent")
        return agent_opening(self.plan.name, step, [s.spec for s in skills], spec.input, {})
