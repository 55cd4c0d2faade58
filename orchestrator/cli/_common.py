"""Shared CLI plumbing: settings from options, asyncio entry, clean error exits."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from orchestrator.exceptions import OrchestratorError
from orchestrator.logs import configure_logging
from orchestrator.settings import Settings

__all__ = [
    "console",
    "err_console",
    "fast_loop",
    "load_settings",
    "run_async",
    "run_async_served",
]

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
T = TypeVar("T")


def load_settings(project: Path | None, *, log_level: str | None = None) -> Settings:
    """Settings from the environment, with `--project` taking precedence.

    Args:
        project: The project folder, when given on the command line.
        log_level: Overrides the settings' level (the demo keeps its transcript readable).
    """
    settings = Settings(project_dir=project.resolve()) if project else Settings()
    configure_logging(level=log_level or settings.log_level, fmt=settings.log_format)
    return settings


def fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory of uvloop when it is installed (the `fast` extra), else None.

    Only for processes that serve HTTP and run no Temporal worker (the gateway): the
    event loop's own overhead is a large share of a proxied request's CPU.
    """
    try:
        # Optional: looked for only when a server starts.
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_async(
    fn: Callable[P, Coroutine[Any, Any, T]],
    loop_factory: Callable[[], Callable[[], asyncio.AbstractEventLoop] | None] = lambda: None,
) -> Callable[P, T]:
    """Run an async command; an `OrchestratorError` becomes a one-line message and exit 1.

    `loop_factory` gives the event loop factory to run it on (None: asyncio's own).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                return runner.run(fn(*args, **kwargs))
        except OrchestratorError as exc:
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper


def run_async_served(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """`run_async` on uvloop when it is installed: for the commands that only serve HTTP."""
    return run_async(fn, fast_loop)
