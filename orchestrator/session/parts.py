"""The parts a session workflow is composed of, as one bundle the step runners receive.

Each step type's runner (`step_types`) gets this and uses the one part it needs: an
agent step the tool loop, a skill step the skill calls, and so on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.plans.models import AnyStep
from orchestrator.session.agent_loop import ToolLoop
from orchestrator.session.approval_gate import ApprovalGate
from orchestrator.session.carry import Continuation
from orchestrator.session.core import SessionRuntime
from orchestrator.session.fanout import FanOut
from orchestrator.session.model_pins import ModelPins
from orchestrator.session.skill_calls import SkillCalls
from orchestrator.session.step_types import Steps
from orchestrator.types import JsonValue

__all__ = ["SessionParts"]


@dataclass(frozen=True)
class SessionParts:
    """One session's parts, built once per run around its runtime."""

    rt: SessionRuntime
    continuation: Continuation
    gate: ApprovalGate
    skills: SkillCalls
    pins: ModelPins
    loop: ToolLoop
    fanout: FanOut
    run_inner: Callable[[AnyStep], Awaitable[JsonValue]]
    """Run a step a construct holds, recorded like a top-level one (the workflow's)."""

    @classmethod
    def build(
        cls, rt: SessionRuntime, run_inner: Callable[[AnyStep], Awaitable[JsonValue]]
    ) -> SessionParts:
        """Compose the parts around `rt`, each given only the parts it calls."""
        continuation = Continuation(rt)
        gate = ApprovalGate(rt, continuation)
        skills = SkillCalls(rt, gate)
        pins = ModelPins(rt)
        return cls(
            rt=rt,
            continuation=continuation,
            gate=gate,
            skills=skills,
            pins=pins,
            loop=ToolLoop(rt, pins, skills, continuation),
            fanout=FanOut(rt),
            run_inner=run_inner,
        )

    def step_host(self) -> Steps:
        """The view of this session a construct or a registered step type runs with."""
        return Steps(inputs=self.rt.start.input, outputs=self.rt.outputs, run_inner=self.run_inner)
