"""`orchestrator mcp serve`: the project's skills as MCP tools over stdio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from mcp.server.stdio import stdio_server

from orchestrator.cli._common import load_settings, run_async
from orchestrator.client import connect
from orchestrator.events.live import live_hub
from orchestrator.mcp.server import SkillServerDeps, skill_server
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.store import Store

__all__ = ["app"]

app = typer.Typer(help="MCP: the project's skills offered to other agents.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


@app.command()
@run_async
async def serve(project: Project = None) -> None:
    """Serve the skills over stdio; each call runs as a durable session on the task queue.

    Workers must be running (`orchestrator worker` or `orchestrator dev`) to run the calls.
    A stdio client is whoever started this process, so it may call every skill; approval
    policies still hold.
    """
    settings = load_settings(project)
    skills = SkillRegistry.load_directory(settings.project_dir / "skills")
    client = await connect(settings)
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    async with (
        await Store.open(settings.resolved_database_url) as store,
        live_hub(store, settings.resolved_state_dir) as events,
    ):
        deps = SkillServerDeps(
            skills=skills,
            client=client,
            store=store,
            task_queue=settings.task_queue,
            events=events,
        )
        server = skill_server(deps)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
