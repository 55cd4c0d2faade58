"""The `orchestrator` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from starlette.routing import Mount
from temporalio.client import WorkflowFailureError

from orchestrator.approvals.notify.notifier import notifier_for
from orchestrator.approvals.serve import routes_for
from orchestrator.cli import approvals, audit, skills
from orchestrator.cli import connectors as connectors_cli
from orchestrator.cli import gateway as gateway_cli
from orchestrator.cli import init as init_cli
from orchestrator.cli import live as live_cli
from orchestrator.cli import mcp as mcp_cli
from orchestrator.cli import plans as plans_cli
from orchestrator.cli._common import console, err_console, load_settings, run_async
from orchestrator.cli._exit import exit_code, leave
from orchestrator.cli.demo import run_demo
from orchestrator.cli.progress import follow
from orchestrator.cli.route import app as route_app
from orchestrator.client import connect
from orchestrator.events.live import live_hub
from orchestrator.events.serve import session_routes_for
from orchestrator.exceptions import (
    ConfigError,
    PlanError,
    SkillDefinitionError,
    UnknownSkillError,
)
from orchestrator.gateway.serve import v1_mount
from orchestrator.heap import settle_heap
from orchestrator.mcp.http import mcp_routes
from orchestrator.observability import configure_tracing, serve_http
from orchestrator.plans.loader import load_plan, load_plans
from orchestrator.plans.models import Plan
from orchestrator.providers.keys import missing_keys, plan_deployments
from orchestrator.providers.registry import ModelRegistry, load_model_registry
from orchestrator.runtime import Runtime
from orchestrator.service import checked_start, launch
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.skills.http import catalog_app
from orchestrator.skills.registry import SkillRegistry
from orchestrator.stack import embedded_stack
from orchestrator.store.migrate import upgrade
from orchestrator.store.store import Store
from orchestrator.types import JsonObject
from orchestrator.worker import run_worker

__all__ = ["app", "main"]

app = typer.Typer(
    help="Durable agent sessions on Temporal: plans, pinned models, skills, approvals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(approvals.app, name="approvals")
app.add_typer(route_app, name="route")
app.add_typer(skills.app, name="skills")
app.add_typer(plans_cli.app, name="plans")
app.add_typer(mcp_cli.app, name="mcp")
app.add_typer(connectors_cli.app, name="connectors")
app.add_typer(gateway_cli.app, name="gateway")
audit.sessions_app.command("watch")(live_cli.watch)
app.add_typer(audit.sessions_app, name="sessions")
app.command()(audit.cost)
app.command()(audit.inventory)
app.command()(init_cli.init)
db_app = typer.Typer(help="The session and audit store.", no_args_is_help=True)
app.add_typer(db_app, name="db")

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


def _on_interrupt() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM.

    Install it before telling anyone how to stop the process: a signal that arrives
    before the handler would end it with a bare KeyboardInterrupt.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command()
@run_async
async def dev(
    project: Project = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            "--replay",
            help="Serve this model script on the scripted model server as the model endpoint"
            " (--replay is the older name).",
        ),
    ] = None,
) -> None:
    """Start the embedded Temporal dev server (persistent, with Web UI) and a worker."""
    settings = load_settings(project)
    async with embedded_stack(settings, model_script=script) as stack:
        console.print(f"Temporal frontend  {stack.temporal_address}")
        console.print(f"Temporal Web UI    {stack.ui_url or '-'}")
        if stack.dev_server:
            console.print(f"Temporal database  {stack.dev_server.db_file}")
        if stack.scripted_url:
            console.print(f"scripted models   {stack.scripted_url}")
        console.print(f"store              {settings.resolved_database_url}")
        console.print(f"worker             task queue {settings.task_queue!r}")
        console.print(f"metrics            {stack.metrics_url or '-'}/metrics")
        stop = _on_interrupt()
        settle_heap()
        console.print("[dim]Ctrl-C stops everything[/]")
        await stop.wait()
        console.print("stopping...")


@app.command()
@run_async
async def worker(project: Project = None) -> None:
    """Run a worker against the configured Temporal server until Ctrl-C or SIGTERM."""
    settings = load_settings(project)
    # Before the client and the worker: they add the tracing interceptor only if it is on.
    configure_tracing("orchestrator-worker")
    client = await connect(settings)
    runtime = await Runtime.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serve_http(
            runtime.store, host=settings.metrics_host, port=settings.metrics_port
        ) as metrics_url:
            console.print(
                f"worker on task queue {settings.task_queue!r}"
                f" at {client.service_client.config.target_host}"
                f"; metrics {metrics_url or '-'}/metrics"
            )
            settle_heap()
            await run_worker(client, runtime, stop)
    finally:
        await runtime.close()


@app.command()
@run_async
async def api(
    project: Project = None,
    host: Annotated[str | None, typer.Option(help="Interface (default: the setting).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the setting).")] = None,
) -> None:
    """Serve the API process: the approvals API (`/api/...`), `/healthz`, `/readyz`, `/metrics`.

    People and their groups come from the project's `approvers.yaml`; shared figures
    (approvals pending) are read from the store.
    """
    settings = load_settings(project)
    configure_tracing("orchestrator-api")
    bind_host = host or settings.api_host
    bind_port = settings.api_port if port is None else port
    async with (
        await Store.open(settings.resolved_database_url) as store,
        live_hub(store, settings.resolved_state_dir) as hub,
        mcp_routes(settings, store, hub, host=bind_host, port=bind_port) as mcp,
        v1_mount(settings, store) as v1,
        notifier_for(settings, store),
        serve_http(
            store,
            host=bind_host,
            port=bind_port,
            required=True,
            routes=[
                *routes_for(settings, store, hub),
                *session_routes_for(settings, hub),
                Mount("/api/skills", app=catalog_app(_project_skills(settings))),
                *mcp,
                *v1,
            ],
        ) as url,
    ):
        stop = _on_interrupt()
        settle_heap()
        console.print(
            f"api on {url} (/api/approvals, /api/sessions, /api/skills,"
            " /healthz, /readyz, /metrics)"
        )
        await stop.wait()


def _project_skills(settings: Settings) -> SkillRegistry:
    """The project's skills, as a worker would load them, for the read-only catalog."""
    return SkillRegistry.load_directory(settings.project_dir / "skills")


def _parse_input(raw: str) -> JsonObject:
    text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"--input: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PlanError("--input: must be a JSON object")
    return value


def _check_keys(settings: Settings, plan: Plan) -> None:
    """Refuse a plan that could call a deployment whose API key variable is unset.

    Raises:
        ConfigError: naming each such variable and the models file.
    """
    models_file = settings.resolved_models_file
    models = load_model_registry(models_file)
    missing = missing_keys(models, plan_deployments(plan, models))
    if missing:
        raise ConfigError("; ".join(gap.describe(models_file) for gap in missing))


@app.command()
@run_async
async def run(
    plan_file: Annotated[Path, typer.Argument(help="Plan YAML file.")],
    input_: Annotated[str, typer.Option("--input", "-i", help="JSON object, or @file.")] = "{}",
    detach: Annotated[
        bool, typer.Option(help="Print the session and workflow ids and return at once.")
    ] = False,
    tenant: Annotated[str, typer.Option(help="Whose session: budgets, costs.")] = "default",
    team: Annotated[str, typer.Option(help="Team within the tenant.")] = "default",
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Print the model's text as it streams (default: when stdout is a terminal).",
        ),
    ] = None,
    project: Project = None,
) -> None:
    """Start a session of a plan on the configured server and follow it."""
    settings = load_settings(project)
    plan = load_plan(plan_file)
    _check_keys(settings, plan)
    budgets = load_model_registry(settings.resolved_models_file).budgets
    start = await checked_start(
        plan,
        _parse_input(input_),
        StartOptions(requested_by="cli", tenant=tenant, team=team),
        budgets=budgets,
        store=settings.resolved_database_url,
    )
    # Connected only once the start passed its checks: a refusal needs no server.
    client = await connect(settings)
    handle = await launch(client, start, task_queue=settings.task_queue)
    session_id = handle.id.removeprefix("session-")
    console.print(f"session {session_id}", highlight=False)
    if detach:
        console.print(
            f"workflow {handle.id} on task queue {settings.task_queue!r}\n"
            f"follow it: orchestrator sessions show {session_id}\n"
            f"pending approvals: orchestrator approvals list",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    try:
        if stream if stream is not None else sys.stdout.isatty():
            result = await live_cli.follow_streaming(settings, client, handle, session_id, console)
        else:
            result = await follow(handle, console)
    except WorkflowFailureError as exc:
        console.print(f"[red]failed: {exc.cause}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(
        f"{result.status.value}: {json.dumps(result.final_output)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"{result.input_tokens + result.output_tokens} tokens, ${result.cost_usd:.6f}",
        highlight=False,
    )


def _warn_missing_keys(settings: Settings, models: ModelRegistry) -> None:
    """A warning on stderr for each API key variable the models file names but is unset."""
    for gap in missing_keys(models):
        err_console.print(
            f"[yellow]warning:[/] {escape(gap.describe(settings.resolved_models_file))}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def validate(
    path: Annotated[Path, typer.Argument()] = Path("workflows"), project: Project = None
) -> None:
    """Load every plan in PATH (a file or folder); resolve its models, policy and skills.

    Every fault is reported, each with file, line and column.
    """
    settings = load_settings(project)
    files = [path] if path.is_file() else sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    faults: list[str] = []
    plans: dict[str, Plan] = {}
    by_path: dict[Path, Plan] = {}
    for file in files:
        try:
            by_path[file] = plan = load_plan(file)
        except PlanError as exc:
            faults.append(str(exc))
            continue
        if plan.name in plans:
            faults.append(f"{file}: plan name {plan.name!r} is already used by another file")
        plans[plan.name] = plan
    try:
        registry = SkillRegistry.load_directory(settings.project_dir / "skills")
        models = load_model_registry(settings.resolved_models_file)
    except (SkillDefinitionError, ConfigError) as exc:
        faults.append(str(exc))
    else:
        _warn_missing_keys(settings, models)
        project_plans = dict(plans)
        if path.is_file():
            with contextlib.suppress(PlanError):
                project_plans = {**load_plans(settings.project_dir / "workflows"), **plans}
        for file, plan in by_path.items():
            found = plans_cli.check_project({file: plan}, models, registry, project_plans)
            faults.extend(found)
            try:
                if not found:  # each range resolves alone; do they all fit one version?
                    registry.resolve_refs(plan.skill_refs())
            except UnknownSkillError as exc:
                faults.append(f"{file}: plan {plan.name!r}: {exc}")
    if faults:
        for fault in dict.fromkeys(faults):
            console.print(f"[red]{fault}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{len(plans)} plan(s) valid: {', '.join(sorted(plans))}")


@app.command()
@run_async
async def demo(
    project: Project = None,
    approve_as: Annotated[
        str | None,
        typer.Option(help="Approve the refund as this user instead of waiting for a person."),
    ] = None,
    interactive: Annotated[
        bool, typer.Option(help="Wait for a person to approve with the CLI.")
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Show the runtime's log lines.")] = False,
) -> None:
    """Run the customer-refund demo end to end and print its transcript."""
    settings = load_settings(project, log_level=None if verbose else "WARNING")
    who = None if interactive else (approve_as or "demo-approver")
    code = await run_demo(settings, console, approve_as=who)
    if code:
        raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(project: Project = None) -> None:
    """Apply the store's migrations."""
    settings = load_settings(project)
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    console.print("store is up to date")


def main() -> None:
    """Entry point of the `orchestrator` script.

    Ends the process through `leave`, never through interpreter finalization, which the
    Temporal SDK's threads can abort (see `orchestrator.cli._exit`).
    """
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exit_code(exc.code)
    except KeyboardInterrupt:
        pass
    except BaseException:
        traceback.print_exc()
        code = 1
    leave(code)
