"""Every ```bash and ```python block in README.md runs, so the README never rots.

Each block is one test (`README.md:LINE-bash`). It runs alone, in a subprocess, with the
repository as its working folder (the example project), so a block must not depend on an
earlier one:

- ```python blocks run as a script with this venv's Python (`python block.py`);
- ```bash blocks run with `bash -euo pipefail`, the venv's `bin/` first on PATH (what
  `source .venv/bin/activate` gives a reader), so `orchestrator ...` works as written.

What every block gets, whatever it declares (so nothing it starts collides with another
test or writes into the repository): `ORCHESTRATOR_STATE_DIR` in a fresh temporary folder,
free ports for the embedded dev server and its Web UI (`ORCHESTRATOR_DEV_SERVER_PORT`,
`..._UI_PORT`), the API (`ORCHESTRATOR_API_PORT`) and metrics port 0, and a fresh task
queue (`ORCHESTRATOR_TASK_QUEUE`). A block that starts its own stack (`make demo`,
`orchestrator demo`) thus needs nothing more.

A block that needs running services says so in an HTML comment on the line just before
its fence (blank lines between are allowed)::

    <!-- readme-test: needs=worker,api -->

`needs` is a comma-separated list of:

- `devserver`: the test session's Temporal dev server; `ORCHESTRATOR_TEMPORAL_ADDRESS` is set.
- `replay`: the scripted model server on `model_scripts/customer_refund.yaml`, or on the script
  named by `replay=model_scripts/other.yaml` in the same comment; `ORCHESTRATOR_REPLAY_URL` is set.
- `worker`: a worker on the block's task queue (implies `devserver` and `replay`).
- `api`: an `orchestrator api` process on a free port, sharing the block's store;
  `ORCHESTRATOR_API_URL` is set, and every `http://127.0.0.1:8000` and
  `http://localhost:8000` in the block is replaced by its real address, so a README block
  keeps the default address a reader would use.
- `session`: a refund session (`workflows/customer_refund.yaml`, ticket `T-1001`) parked on
  its approval (implies `worker`); `SESSION_ID` and `APPROVAL_ID` are set.
- `token`: `approvers.example.yaml` as the block's approvers file
  (`ORCHESTRATOR_APPROVERS_FILE`, for the block, the worker and the API alike) with an API
  token for `lee`, in `ORCHESTRATOR_API_TOKEN`; name it before `worker`, `session`, `api`.

To add a service (say a gateway), write an async context manager like `_api` below and add it
to `SERVICES`; a `needs` name that is not there fails the test, so a typo never skips a block.

Two other markers, to be used sparingly:

- `<!-- readme-test: skip=REASON -->`: the block is not run; the reason is required and
  shows in the test report. Only for what cannot run inside the suite (`make test`, which
  runs this very file).
- `<!-- readme-test: excerpt-of=PATH -->`: the block is an abridged excerpt of PATH (a
  `...` line stands for omitted code, a `#` line is a note). Every other line must appear
  in PATH in the same order (leading and trailing whitespace ignored), and PATH itself is
  run instead, as a python script, with the same `needs`.

Fences in other shell or Python spellings (```sh, ```shell, ```console, ```py) are refused:
they would slip past this test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import REPO

from orchestrator.approvals.people import hash_token, new_token
from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port
from orchestrator.plans import load_plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.testing import wait_for_pending_approval
from orchestrator.worker import build_worker

README = REPO / "README.md"
BIN = Path(sys.executable).parent
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
RUN = {"bash", "python"}
REFUSED = {"sh", "shell", "console", "zsh", "py", "python3", "pycon"}
BLOCK_TIMEOUT = 280.0
DEFAULT_API = ("http://127.0.0.1:8000", "http://localhost:8000")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README and the marker before it."""

    line: int
    lang: str
    code: str
    marker: dict[str, str] = field(default_factory=dict)

    @property
    def needs(self) -> list[str]:
        raw = self.marker.get("needs", "")
        return [name.strip() for name in raw.split(",") if name.strip()]


def parse_marker(body: str) -> dict[str, str]:
    """`needs=a,b replay=x skip=some reason` -> fields; `skip` takes the rest of the line."""
    fields: dict[str, str] = {}
    skip = re.search(r"\bskip=(.*)$", body)
    if skip:
        fields["skip"] = skip.group(1).strip()
        body = body[: skip.start()]
    for part in body.split():
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"readme-test marker: {part!r} is not key=value")
        fields[key] = value
    unknown = set(fields) - {"needs", "replay", "skip", "excerpt-of"}
    if unknown:
        raise ValueError(f"readme-test marker: unknown field(s) {sorted(unknown)}")
    return fields


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of the README, with its language and marker."""
    blocks: list[Block] = []
    lines = text.splitlines()
    marker: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        found = MARKER.match(line)
        fence = FENCE.match(line)
        if found:
            marker = parse_marker(found.group("body"))
        elif fence:
            start = index
            index += 1
            body: list[str] = []
            while index < len(lines) and not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            blocks.append(Block(start + 1, fence.group("lang"), "\n".join(body) + "\n", marker))
            marker = {}
        elif line.strip():
            marker = {}
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


@dataclass
class BlockContext:
    """What a block runs with; services add to `env` and `replacements`."""

    block: Block
    tmp: Path
    dev_server: DevServer
    env: dict[str, str]
    replacements: dict[str, str] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        return Settings(
            project_dir=REPO,
            state_dir=Path(self.env["ORCHESTRATOR_STATE_DIR"]),
            temporal_address=self.env.get("ORCHESTRATOR_TEMPORAL_ADDRESS") or None,
            task_queue=self.env["ORCHESTRATOR_TASK_QUEUE"],
        )


@contextlib.asynccontextmanager
async def _devserver(ctx: BlockContext) -> AsyncIterator[None]:
    ctx.env["ORCHESTRATOR_TEMPORAL_ADDRESS"] = ctx.dev_server.address
    yield


@contextlib.asynccontextmanager
async def _replay(ctx: BlockContext) -> AsyncIterator[None]:
    script = REPO / ctx.block.marker.get("replay", "model_scripts/customer_refund.yaml")
    async with ScriptedModelServer(script) as server:
        ctx.env["ORCHESTRATOR_REPLAY_URL"] = server.base_url
        with _environ("ORCHESTRATOR_REPLAY_URL", server.base_url):
            yield


@contextlib.asynccontextmanager
async def _worker(ctx: BlockContext) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for name in ("devserver", "replay"):
            await stack.enter_async_context(_need(ctx, name))
        settings = ctx.settings
        client = await connect(settings)
        runtime = await Runtime.open(settings)
        stack.push_async_callback(runtime.close)
        ctx.runtime = runtime
        await stack.enter_async_context(build_worker(client, runtime))
        yield


@contextlib.asynccontextmanager
async def _api(ctx: BlockContext) -> AsyncIterator[None]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (ctx.tmp / "api.log").open("wb") as log:  # the process keeps its own descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "orchestrator",
            "api",
            "--port",
            str(port),
            cwd=REPO,
            env=ctx.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await _wait_healthy(url, proc, ctx.tmp / "api.log")
        ctx.env["ORCHESTRATOR_API_URL"] = url
        for default in DEFAULT_API:
            ctx.replacements[default] = url
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def _session(ctx: BlockContext) -> AsyncIterator[None]:
    async with _need(ctx, "worker"):
        assert ctx.runtime is not None
        settings = ctx.settings
        handle = await start_session(
            await connect(settings),
            load_plan(REPO / "workflows/customer_refund.yaml"),
            {"ticket_id": "T-1001"},
            StartOptions(requested_by="readme"),
            task_queue=settings.task_queue,
        )
        session_id = handle.id.removeprefix("session-")
        pending = await wait_for_pending_approval(ctx.runtime.store, session_id, timeout=120)
        ctx.env["SESSION_ID"] = session_id
        ctx.env["APPROVAL_ID"] = pending.approval_id
        yield


@contextlib.asynccontextmanager
async def _token(ctx: BlockContext) -> AsyncIterator[None]:
    token = new_token()
    text = (REPO / "approvers.example.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  lee:\n    groups: [finance]\n",
        f"  lee:\n    groups: [finance]\n    tokens: ['{hash_token(token)}']\n",
    )
    assert hash_token(token) in text, "approvers.example.yaml: lee's entry moved"
    path = ctx.tmp / "approvers.yaml"
    path.write_text(text, encoding="utf-8")
    ctx.env["ORCHESTRATOR_APPROVERS_FILE"] = str(path)
    ctx.env["ORCHESTRATOR_API_TOKEN"] = token
    with _environ("ORCHESTRATOR_APPROVERS_FILE", str(path)):
        yield


SERVICES: dict[str, Callable[[BlockContext], contextlib.AbstractAsyncContextManager[None]]] = {
    "devserver": _devserver,
    "replay": _replay,
    "worker": _worker,
    "api": _api,
    "session": _session,
    "token": _token,
}


@contextlib.asynccontextmanager
async def _need(ctx: BlockContext, name: str) -> AsyncIterator[None]:
    """Start a service once per block, however many others imply it."""
    if name in ctx.started:
        yield
        return
    if name not in SERVICES:
        raise AssertionError(
            f"README.md:{ctx.block.line}: readme-test needs {name!r}, not one of {sorted(SERVICES)}"
        )
    ctx.started.add(name)
    async with SERVICES[name](ctx):
        yield


@contextlib.contextmanager
def _environ(key: str, value: str) -> Iterator[None]:
    """Set one variable in this process too: the in-process worker reads the models file."""
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with httpx.AsyncClient() as http:
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"orchestrator api exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/healthz", timeout=2)).status_code == 200:
                    return
            if loop.time() > deadline:
                raise AssertionError(f"orchestrator api not healthy at {url}")
            await asyncio.sleep(0.1)


def check_excerpt(block: Block, path: Path) -> None:
    """Every line of the block but `...` lines occurs in `path`, in order."""
    source = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    position = 0
    for raw in block.code.splitlines():
        line = raw.strip()
        if not line or line.startswith(("...", "#")):
            continue
        try:
            position = source.index(line, position) + 1
        except ValueError:
            raise AssertionError(
                f"README.md:{block.line}: excerpt line not found in {path} (in order): {raw!r}"
            ) from None


def base_env(tmp: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ORCHESTRATOR_") or key == "ORCHESTRATOR_LOG_FORMAT"
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(BIN.parent),
        ORCHESTRATOR_PROJECT_DIR=str(REPO),
        ORCHESTRATOR_STATE_DIR=str(tmp / "state"),
        ORCHESTRATOR_TASK_QUEUE=f"readme-{uuid.uuid4().hex[:10]}",
        ORCHESTRATOR_DEV_SERVER_PORT=str(free_port()),
        ORCHESTRATOR_DEV_SERVER_UI_PORT=str(free_port()),
        ORCHESTRATOR_API_PORT=str(free_port()),
        ORCHESTRATOR_METRICS_PORT="0",
        COLUMNS="200",
    )
    return env


def test_readme_has_runnable_blocks() -> None:
    """The parser finds the blocks (a broken fence regex would pass every test below)."""
    langs = [block.lang for block in BLOCKS]
    assert langs.count("bash") >= 2 and langs.count("python") >= 2, langs
    refused = [f"README.md:{b.line}: ```{b.lang}" for b in BLOCKS if b.lang in REFUSED]
    assert not refused, f"use ```bash or ```python so the block is tested: {refused}"


def test_markers_parse() -> None:
    assert parse_marker("needs=worker,api replay=model_scripts/x.yaml") == {
        "needs": "worker,api",
        "replay": "model_scripts/x.yaml",
    }
    assert parse_marker("skip=runs this very test suite") == {"skip": "runs this very test suite"}
    with pytest.raises(ValueError, match="unknown field"):
        parse_marker("need=worker")
    blocks = readme_blocks(
        "<!-- readme-test: needs=devserver -->\n\n```bash\necho hi\n```\ntext\n```bash\nls\n```\n"
    )
    assert [(b.line, b.needs) for b in blocks] == [(3, ["devserver"]), (7, [])]


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang in RUN], ids=lambda b: f"README.md:{b.line}-{b.lang}"
)
async def test_readme_block_runs(block: Block, dev_server: DevServer, tmp_path: Path) -> None:
    if "skip" in block.marker:
        reason = block.marker["skip"]
        assert len(reason) > 10, f"README.md:{block.line}: a skip needs a real reason"
        pytest.skip(f"README.md:{block.line}: {reason}")
    ctx = BlockContext(block=block, tmp=tmp_path, dev_server=dev_server, env=base_env(tmp_path))
    code = block.code
    excerpt = block.marker.get("excerpt-of")
    async with contextlib.AsyncExitStack() as stack:
        for name in block.needs:
            await stack.enter_async_context(_need(ctx, name))
        for default, actual in ctx.replacements.items():
            code = code.replace(default, actual)
        if excerpt:
            source = REPO / excerpt
            check_excerpt(block, source)
            command = [sys.executable, str(source)]
        elif block.lang == "python":
            script = tmp_path / "block.py"
            script.write_text(code, encoding="utf-8")
            command = [sys.executable, str(script)]
        else:
            script = tmp_path / "block.sh"
            script.write_text(code, encoding="utf-8")
            command = ["bash", "-euo", "pipefail", str(script)]
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=REPO,
            env=ctx.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), BLOCK_TIMEOUT)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise AssertionError(
                f"README.md:{block.line}: still running after {BLOCK_TIMEOUT}s"
            ) from None
    output = out.decode(errors="replace")
    assert proc.returncode == 0, (
        f"README.md:{block.line} ({block.lang}) exited {proc.returncode}:\n{code}\n---\n"
        f"{output[-4000:]}"
    )
