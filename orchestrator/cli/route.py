"""`orchestrator route explain`: what the router would choose for a plan step, and why."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from orchestrator.cli._common import console, load_settings, run_async
from orchestrator.exceptions import PlanError, SkillError, StoreError
from orchestrator.plans.loader import load_plan
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.registry import load_model_registry
from orchestrator.routing.budgets import applicable, period_of, share_used
from orchestrator.routing.router import Router
from orchestrator.routing.types import RouteRequest, RoutingDecision
from orchestrator.session.pinning import route_request, tool_definitions
from orchestrator.session.prompt_cache import (
    expected_calls,
    prompt_head,
    session_prefix_tokens,
    steps_left,
)
from orchestrator.session.types import Boundary, SessionStartInput
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.store import Store

__all__ = ["app"]

app = typer.Typer(help="The policy router.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


def _headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise PlanError(f"--header {item!r}: expected NAME=VALUE")
        headers[key.strip().lower()] = value.strip()
    return headers


def _prefix_tokens(settings: Settings, plan: Plan, step: AgentStep) -> int:
    """The session prefix a session of `plan` tells the router at `step`.

    From the project's skills as they are now (a session keeps the versions it resolved at
    its start); 0 when the step's skills do not resolve here.
    """
    if not step.skills:
        return 0
    try:
        skills = SkillRegistry.load_directory(settings.project_dir / "skills")
        specs = skills.resolve_refs(step.skills)
    except SkillError:
        return 0
    return session_prefix_tokens(plan, step, prompt_head(tool_definitions(specs), []))


def print_inputs(request: RouteRequest) -> None:
    """What the session tells the router besides the step: calls, steps left and prefix."""
    console.print(
        f"[bold]session[/] {request.horizon_steps:g} steps left, prefix"
        f" {request.session_prefix_tokens} tokens, {request.expected_calls:g} calls this step"
        + (
            " (cost priced per step over the steps left)"
            if request.horizon_steps > 1 and request.session_prefix_tokens
            else ""
        ),
        highlight=False,
    )


def print_decision(decision: RoutingDecision, micros: float) -> None:
    """The decision: winner, policy, rules that fired, every candidate's score terms and reason.

    The terms are the router's own (`Candidate.terms`), not recomputed here.
    """
    console.print(
        f"[bold]deployment[/] [magenta]{decision.deployment}[/]"
        f"  (policy {decision.policy}, asked for {decision.name or 'any model'})",
        highlight=False,
    )
    console.print(f"[bold]why[/] {decision.reason}", highlight=False)
    console.print(f"[bold]rules fired[/] {', '.join(decision.rules_fired) or 'none'}")
    if decision.budget_used:
        console.print(f"[bold]budget used[/] {decision.budget_used:.0%}")
    guess = decision.difficulty_estimate
    if guess is not None:
        drivers = ", ".join(f"{k} {v:g}" for k, v in guess.features.items()) or "nothing"
        by = f"classifier {guess.classifier}, ${guess.cost_usd:.6f}; heuristic: "
        if guess.source != "classifier":
            why = f", classifier {guess.classifier} {guess.fallback}" if guess.fallback else ""
            by = f"heuristic{why}: "
        console.print(
            f"[bold]difficulty[/] {guess.difficulty.value} (estimated by {by}score"
            f" {guess.score:g}; {drivers})",
            highlight=False,
        )
    table = Table(
        "deployment",
        "eligible",
        "declared",
        "learned (n)",
        "quality",
        "cost",
        "latency",
        "errors",
        "rules",
        "score",
        "reason",
        caption="score = quality + cost + latency + errors + rules (each term as added);"
        " learned: the posterior quality from n outcomes (+ exploration), scored on",
    )
    for candidate in decision.candidates:
        t = candidate.terms
        parts = (
            [f"{v:+.3f}" for v in (t.quality, t.cost, t.latency, t.errors, t.rules)]
            if t is not None
            else ["-"] * 5
        )
        declared = learned = "-"
        if t is not None and t.declared_quality is not None:
            declared = f"{t.declared_quality:.3f}"
            learned = f"{t.quality_value - t.explore:.3f} ({t.observations:g})"
            if t.explore:
                learned += f" +{t.explore:.3f}"
        table.add_row(
            candidate.deployment,
            "yes" if candidate.eligible else "no",
            declared,
            learned,
            *parts,
            "-" if candidate.score is None else f"{candidate.score:.3f}",
            candidate.reason,
        )
    console.print(table)
    console.print(f"[dim]decided in {micros:.1f} µs (no live metrics in this process)[/]")


@app.command("explain")
@run_async
async def explain(
    plan_file: Annotated[Path, typer.Option("--plan", help="Plan YAML file.")],
    step: Annotated[str, typer.Option("--step", help="Id of an agent step of the plan.")],
    tenant: Annotated[str, typer.Option(help="Tenant the session runs for.")] = "default",
    team: Annotated[str, typer.Option(help="Team the session runs for.")] = "default",
    tokens_so_far: Annotated[int, typer.Option(help="Tokens the session has used.")] = 0,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="NAME=VALUE, for header rules.")
    ] = None,
    current: Annotated[
        str | None, typer.Option(help="Deployment pinned so far (to see stickiness).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Ask for this alias or deployment instead of the step's; '*': any."),
    ] = None,
    project: Project = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision (with score terms) as JSON.")
    ] = False,
) -> None:
    """Print the decision the router makes for STEP of a plan, with every reason."""
    settings = load_settings(project, log_level="WARNING")
    registry = load_model_registry(settings.resolved_models_file)
    plan = load_plan(plan_file)
    found = next((s for s in plan.steps if s.id == step), None)
    if not isinstance(found, AgentStep):
        agent = ", ".join(s.id for s in plan.steps if isinstance(s, AgentStep)) or "none"
        raise PlanError(f"{plan_file}: no agent step {step!r} (agent steps: {agent})")
    start = SessionStartInput(
        session_id="explain", plan=plan, tenant=tenant, team=team, headers=_headers(header or [])
    )
    request = route_request(
        start,
        found,
        name=(None if model == "*" else model) if model else (found.model or plan.model),
        boundary=Boundary.SESSION_START if current is None else Boundary.STEP_CHANGE,
        current=current,
        tokens_so_far=tokens_so_far,
        prompt_chars=len(found.goal) + len(found.instructions or ""),
        exclude={},
        # A session's first step: no finished step to learn the calls per step from.
        expected_calls=expected_calls(plan, [], found),
        horizon_steps=steps_left(plan, found),
        session_prefix_tokens=_prefix_tokens(settings, plan, found),
    )
    used = 0.0
    budgets = applicable(registry.budgets, tenant, team)
    if budgets:
        now = datetime.now(UTC)
        async with await Store.open(settings.resolved_database_url) as store:
            for budget in budgets:
                usage = await store.budgets.usage(budget.scope, period_of(budget, now))
                used = max(used, share_used(budget, usage))
    router = Router(registry)
    if router.policy(request.policy)[1].learning.enabled:
        # What the route activity reads before a decision; a store not made yet has none.
        url = settings.resolved_database_url
        database = make_url(url).database
        tallies = {}
        if not url.startswith("sqlite") or (database and Path(database).exists()):
            try:
                async with await Store.open(url, migrate=False) as store:
                    tallies = await store.outcomes.tallies(tenant, request.task_type)
            except StoreError:
                pass  # an older store without outcomes: nothing learned yet
        router.learned.put(tenant, request.task_type, tallies)
    started = time.perf_counter()
    decision = router.decide(request, budget_used=used)
    micros = (time.perf_counter() - started) * 1e6
    if as_json:
        told = request.model_dump(
            mode="json", include={"expected_calls", "horizon_steps", "session_prefix_tokens"}
        )
        print(json.dumps({**decision.model_dump(mode="json"), "inputs": told}, indent=2))
        return
    print_inputs(request)
    print_decision(decision, micros)
