"""A request in a person's words: title, sentence, risk, the agent's reason, the evidence.

Pure functions over the approval record, its session's audit events and the skill
registry, shared by the inbox pages and the notices (`notify`), so an approver reads the
same words everywhere. The contract's presentation (`orchestrator.skills.presentation`)
gives the title and sentence; without one, the skill's description stands in. The values
shown are the ones that run: an approver's edit replaces the agent's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.exceptions import UnknownSkillError
from orchestrator.skills.models import RiskLevel
from orchestrator.skills.presentation import Presentation, humanise
from orchestrator.skills.registry import AnySkill, SkillRegistry
from orchestrator.store.records import ApprovalRecord, AuditEvent, EventKind
from orchestrator.types import JsonObject, JsonValue

__all__ = ["RISK_WORDS", "Evidence", "Reading", "read_request", "until"]

RISK_WORDS = {
    RiskLevel.READ_ONLY: "Only reads data; changes nothing.",
    RiskLevel.REVERSIBLE_WRITE: "Changes data; it can be undone.",
    RiskLevel.IRREVERSIBLE_WRITE: "Cannot be undone once approved.",
    RiskLevel.EXTERNAL_SIDE_EFFECT: "Acts outside our systems; it cannot be called back.",
}


@dataclass(frozen=True)
class Evidence:
    """One tool result the agent read in the step, before it asked."""

    label: str
    output: JsonValue


@dataclass(frozen=True)
class Reading:
    """Everything a person reads about one request."""

    title: str
    sentence: str
    risk: str | None
    description: str | None
    rows: list[tuple[str, str, str | None]]
    """(label, formatted value, link or None) per argument, as they run."""
    asked: list[tuple[str, str, str | None]]
    """The same rows for the arguments the agent asked with (differs after an edit)."""
    arguments: JsonObject
    """The arguments that run: the approver's edit when there was one."""
    edited: bool = False
    reason: str | None = None
    """The agent's words beside its call."""
    evidence: list[Evidence] = field(default_factory=list)


def _skill(skills: SkillRegistry | None, name: str | None, version: str | None) -> AnySkill | None:
    if skills is None or name is None:
        return None
    try:
        return skills.get(name, version)
    except UnknownSkillError:
        return None


def _edited(rec: ApprovalRecord, events: list[AuditEvent]) -> JsonObject | None:
    for event in events:
        edited = event.payload.get("edited_arguments")
        if (
            event.kind is EventKind.APPROVAL_DECIDED
            and event.payload.get("approval_id") == rec.approval_id
            and isinstance(edited, dict)
        ):
            return {**rec.arguments, **edited}
    return None


def _before_request(rec: ApprovalRecord, events: list[AuditEvent]) -> list[AuditEvent]:
    """The step's events up to the request (all of the step's when none marks it)."""
    earlier: list[AuditEvent] = []
    for event in events:
        if (
            event.kind is EventKind.APPROVAL_REQUESTED
            and event.payload.get("approval_id") == rec.approval_id
        ):
            break
        if event.step_id == rec.step_id:
            earlier.append(event)
    return earlier


def _reason(earlier: list[AuditEvent]) -> str | None:
    calls = [e for e in earlier if e.kind is EventKind.MODEL_CALL]
    text = calls[-1].payload.get("text") if calls else None
    return text.strip() if isinstance(text, str) and text.strip() else None


def _evidence(
    rec: ApprovalRecord, earlier: list[AuditEvent], skills: SkillRegistry | None
) -> list[Evidence]:
    found: list[Evidence] = []
    for event in earlier:
        output = event.payload.get("output")
        if event.kind is not EventKind.TOOL_CALL or output is None:
            continue
        version = event.payload.get("version")
        used = _skill(skills, event.skill, version if isinstance(version, str) else None)
        args = event.payload.get("arguments")
        label = None
        if used is not None and isinstance(args, dict):
            label = Presentation.of(used.view, used.input_model).title_for(args)
        found.append(Evidence(label or humanise(event.skill or "tool result"), output))
    return found


def read_request(
    rec: ApprovalRecord, events: list[AuditEvent], skills: SkillRegistry | None
) -> Reading:
    """`rec` in words, from its session's audit `events` and the skills' contracts."""
    edited = _edited(rec, events)
    arguments = edited if edited is not None else rec.arguments
    earlier = _before_request(rec, events)
    reason, evidence = _reason(earlier), _evidence(rec, earlier, skills)
    used = _skill(skills, rec.skill, rec.skill_version)
    if used is None:
        # An approval step of the plan (its summary is already words), or a skill this
        # server no longer has: the recorded summary is all there is.
        title = humanise(rec.skill) if rec.skill else rec.summary
        return Reading(title, rec.summary, None, None, [], [], arguments, edited is not None)
    view = Presentation.of(used.view, used.input_model)
    spec = used.spec
    title = view.title_for(arguments) or f"{humanise(spec.name)}: {spec.description}"
    sentence = view.summary_for(arguments) or spec.description
    return Reading(
        title=title,
        sentence=sentence,
        risk=RISK_WORDS.get(spec.risk),
        description=spec.description,
        rows=view.rows(arguments),
        asked=view.rows(rec.arguments),
        arguments=arguments,
        edited=edited is not None,
        reason=reason,
        evidence=evidence,
    )


def until(deadline: datetime, now: datetime) -> str:
    """`in 45 minutes`, `in 2 hours`, `3 minutes ago`: how far `deadline` is from `now`."""
    seconds = (deadline - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        amount = "less than a minute"
    elif size < 5400:
        minutes = round(size / 60)
        amount = f"{minutes} minute{'s' if minutes != 1 else ''}"
    elif size < 36 * 3600:
        hours = round(size / 3600)
        amount = f"{hours} hours"
    else:
        amount = f"{round(size / 86400)} days"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"
