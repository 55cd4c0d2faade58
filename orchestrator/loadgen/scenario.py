"""What every load-test session runs: the plan, the model's script, and each session's input.

The plan and the tool contracts live in a project folder (the repository's
`tests/reliability/load_project/`); the model script is built here because the tool's
latency is a parameter of the run and travels in the tool call's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.plans.loader import load_plan
from orchestrator.plans.models import Plan
from orchestrator.scripted_model import (
    Conversation,
    ConversationMatch,
    ReplayScript,
    ScriptedToolCall,
)
from orchestrator.scripted_model import Turn as ScriptedTurn
from orchestrator.types import JsonObject

__all__ = [
    "GATED_AMOUNT",
    "OPEN_AMOUNT",
    "Mode",
    "SessionSpec",
    "load_scenario_plan",
    "model_script",
    "session_specs",
]

Mode = Literal["gated", "open"]

GATED_AMOUNT = 500.0
"""Over the contract's approval threshold (100): the call waits for a person."""
OPEN_AMOUNT = 5.0
"""Under it: the call runs at once."""


@dataclass(frozen=True)
class SessionSpec:
    """One session to start: its id and the plan input."""

    session_id: str
    mode: Mode

    @property
    def input(self) -> JsonObject:
        """The plan input; `mode` picks the replay conversation and so the amount."""
        return {"item": f"item-{self.session_id}", "mode": self.mode}


def load_scenario_plan(project_dir: Path) -> Plan:
    """The load plan of a project folder (`workflows/load.yaml`)."""
    return load_plan(project_dir / "workflows" / "load.yaml")


def _conversation(mode: Mode, tool_delay_ms: int) -> Conversation:
    amount = GATED_AMOUNT if mode == "gated" else OPEN_AMOUNT
    return Conversation(
        name=f"load-{mode}",
        match=ConversationMatch(contains=f"Process the {mode} item"),
        turns=[
            ScriptedTurn(
                tool_calls=[
                    ScriptedToolCall(
                        name="load_lookup",
                        arguments={"item": f"{mode}-item", "delay_ms": tool_delay_ms},
                    )
                ]
            ),
            ScriptedTurn(
                tool_calls=[
                    ScriptedToolCall(
                        name="load_apply", arguments={"item": f"{mode}-item", "amount": amount}
                    )
                ]
            ),
            ScriptedTurn(content=f"Applied {amount} to the {mode} item."),
        ],
    )


def model_script(tool_delay_ms: int) -> ReplayScript:
    """The model's side of both kinds of session: look up (slow), apply, answer."""
    return ReplayScript(
        conversations=[_conversation("gated", tool_delay_ms), _conversation("open", tool_delay_ms)]
    )


def session_specs(sessions: int, gated: int, *, prefix: str) -> list[SessionSpec]:
    """`sessions` sessions, the first `gated` of them parking on an approval, interleaved.

    Raises:
        ValueError: a count is negative, or more gated sessions than sessions.
    """
    if sessions < 1 or not 0 <= gated <= sessions:
        raise ValueError(f"need 1 <= sessions and 0 <= gated <= sessions, got {sessions}/{gated}")
    # Spread the gated ones evenly, so the two kinds start interleaved.
    marks = {round(i * sessions / gated) for i in range(gated)} if gated else set()
    return [
        SessionSpec(f"{prefix}-{i:05d}", "gated" if i in marks else "open") for i in range(sessions)
    ]
