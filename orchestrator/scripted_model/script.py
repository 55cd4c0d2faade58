"""The model script: scripted conversations the scripted model server answers from.

The answer to a request is a pure function of the request and the script, so a model call
retried after a worker crash gets the same answer it got the first time, and a demo runs
the same way every time.

```yaml
conversations:
  - name: investigate
    match:                          # every key given must hold; both optional
      model: scripted-strong        # request "model" equals this
      contains: "Step: investigate" # substring of all system messages + the first user message
    turns:                          # turn N answers a request holding N assistant messages
      - tool_calls:
          - name: tickets_get
            arguments: {ticket_id: T-1001}   # serialised with json.dumps(sort_keys=True)
          - name: orders_get
            arguments_raw: '{"order_id": '   # sent verbatim (to test malformed arguments)
      - content: "Refund approved for A-1001."
        usage: {input_tokens: 120, output_tokens: 30}   # optional override
        fault: {kind: status, status: 503, times: 2}    # optional: see replay/faults.py
    after_last: error               # or repeat_last; default error
```

A tool call's `pad_to: N` pads its arguments with a `padding` string to at least N
characters, so a script can send oversized arguments without holding them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.exceptions import ConfigError
from orchestrator.scripted_model.faults import Fault
from orchestrator.types import JsonObject

__all__ = [
    "Conversation",
    "ConversationMatch",
    "ReplayScript",
    "ScriptedToolCall",
    "ScriptedUsage",
    "Turn",
    "load_model_script",
]


class ScriptedToolCall(BaseModel):
    """One tool call a scripted turn answers with.

    `arguments_raw` exists so a script can make the "model" emit malformed arguments and
    exercise the runtime's handling of them; normal scripts use `arguments`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: JsonObject | None = None
    arguments_raw: str | None = None
    pad_to: int | None = Field(default=None, ge=1)
    """Pad `arguments` with a `padding` string until their JSON is this many characters."""

    @model_validator(mode="after")
    def _exactly_one_argument_form(self) -> ScriptedToolCall:
        if (self.arguments is None) == (self.arguments_raw is None):
            raise ValueError("a tool call must have exactly one of arguments or arguments_raw")
        if self.pad_to is not None and self.arguments is None:
            raise ValueError("pad_to needs arguments (not arguments_raw)")
        return self

    @property
    def arguments_json(self) -> str:
        """The arguments string sent on the wire, stable across runs (sorted keys)."""
        if self.arguments_raw is not None:
            return self.arguments_raw
        if self.pad_to is None:
            return json.dumps(self.arguments, sort_keys=True)
        bare = json.dumps({**(self.arguments or {}), "padding": ""}, sort_keys=True)
        padding = "x" * max(0, self.pad_to - len(bare))
        return json.dumps({**(self.arguments or {}), "padding": padding}, sort_keys=True)


class ScriptedUsage(BaseModel):
    """Token counts to report instead of the length-based estimate, to test budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class Turn(BaseModel):
    """One scripted assistant answer: text, or tool calls with the text said before them.

    The finish reason is `tool_calls` whenever the turn has calls, else `stop`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    content: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list, min_length=1)
    usage: ScriptedUsage | None = None
    fault: Fault | None = None
    """A failure requests for this turn meet before (or instead of) the answer."""

    @model_validator(mode="after")
    def _exactly_one_answer_form(self) -> Turn:
        has_tool_calls = "tool_calls" in self.model_fields_set
        if self.content is None and not has_tool_calls:
            raise ValueError("a turn must have content, tool_calls, or both")
        return self


class ConversationMatch(BaseModel):
    """Which requests a conversation answers; every condition given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    """The request's `model` must equal this."""
    contains: str | None = None
    """Must be a substring of the system messages plus the first user message."""

    def holds(self, model: str, context: str) -> bool:
        """Whether a request for `model` whose matching context is `context` is answered."""
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains in context


class Conversation(BaseModel):
    """A named, scripted conversation: how to recognise it and what to answer each turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Used in tool call ids (`call_{name}_{turn}_{index}`), hence the restricted alphabet."""
    match: ConversationMatch = Field(default_factory=ConversationMatch)
    turns: list[Turn] = Field(min_length=1)
    after_last: Literal["error", "repeat_last"] = "error"

    def turn_for(self, assistant_messages: int) -> Turn | None:
        """The turn answering a request that already holds `assistant_messages` answers.

        Returns None past the last turn when `after_last` is `error`.
        """
        if assistant_messages < len(self.turns):
            return self.turns[assistant_messages]
        return self.turns[-1] if self.after_last == "repeat_last" else None


class ReplayScript(BaseModel):
    """A whole model script: conversations tried in order, the first match wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversations: list[Conversation] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ReplayScript:
        seen: set[str] = set()
        for conversation in self.conversations:
            if conversation.name in seen:
                raise ValueError(f"duplicate conversation name {conversation.name!r}")
            seen.add(conversation.name)
        return self

    def find(self, model: str, context: str) -> Conversation | None:
        """The first conversation whose match holds for this request, if any."""
        for conversation in self.conversations:
            if conversation.match.holds(model, context):
                return conversation
        return None


def _describe(exc: ValidationError) -> str:
    problems: list[str] = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err["loc"]) or "<root>"
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


def load_model_script(path: Path) -> ReplayScript:
    """Load and validate a model script.

    Raises:
        ConfigError: the file is missing, not YAML, or does not fit the schema; the message
            names the file and each field at fault (`demo.yaml: conversations.0.turns.1: ...`).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: model script not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ReplayScript.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from exc
