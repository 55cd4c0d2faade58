"""Where one sequential gateway request's CPU goes, stage by stage, in the served process.

`gateway.py` and `gateway_ab.py` give what the gateway adds in all; this says where it
goes. It runs the scripted model server and one gateway process (the tree on PYTHONPATH)
whose stages are wrapped with timers (the thread's CPU time and the wall time, summed per
stage, a stage's time including the stages it calls), sends `N` sequential requests of
`gateway.py`'s workload (a session id header, tool loops of nine calls) and prints each
stage's CPU and wall time per request, beside the process's CPU per request read from
/proc. A stage's wall time beyond its CPU is waiting (the upstream call's includes the
scripted model server's own time).

    cd /tmp && PYTHONPATH=$REPO $REPO/.venv/bin/python $REPO/bench/gateway_stages.py [N]

Each wrapper costs about a microsecond, so the process's CPU per request is a little above
what it is unwrapped. The gateway is served as `orchestrator gateway` serves it (its own
HTTP/1.1 server, `settle_heap` after startup), by this file run with `--serve`. Prints JSON.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import gateway as bench
from gateway_ab import _cpu_seconds, _pid_of

from orchestrator.devserver import free_port

_TOTALS: dict[str, list[int]] = {}
"""Per stage: calls, thread CPU ns, wall ns."""


def _wrap(owner: Any, name: str, label: str) -> None:
    """Replace `owner.name` by a wrapper that adds its time to `label`'s totals."""
    fn: Callable[..., Any] = getattr(owner, name)
    totals = _TOTALS.setdefault(label, [0, 0, 0])

    def add(cpu: int, wall: int) -> None:
        totals[0] += 1
        totals[1] += time.thread_time_ns() - cpu
        totals[2] += time.perf_counter_ns() - wall

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
            try:
                return await fn(*args, **kwargs)
            finally:
                add(cpu, wall)

        setattr(owner, name, timed_async)
        return

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            add(cpu, wall)

    setattr(owner, name, timed)


def _install() -> None:
    """The stages: the server's parse and write, the routes, admission, the upstream call,
    the audit records and their commit."""
    from orchestrator.cache.gateway import GatewayCache
    from orchestrator.gateway import http1, openai_wire, routes, server, service, upstream
    from orchestrator.gateway.service import Gateway
    from orchestrator.gateway.upstream import Upstreams
    from orchestrator.providers import _http, openai
    from orchestrator.store import group_commit
    from orchestrator.store.group_commit import GroupCommit

    stages: list[tuple[Any, str, str]] = [
        (server._Connection, "_serve", "server: a request, whole (from its parse to its write)"),
        (server._Connection, "data_received", "server: parse the request (httptools)"),
        (server._Connection, "_write_whole", "server: write the answer"),
        (routes, "_json", "routes: the body's JSON"),
        (routes, "parse_chat", "routes: parse_chat"),
        (openai_wire, "forwardable", "routes: parse_chat: forwardable"),
        (routes, "render_chat", "routes: render_chat"),
        (routes, "json_reply", "routes: json_reply"),
        (Gateway, "admit", "admit"),
        (Gateway, "authenticate", "admit: authenticate"),
        (Gateway, "pool", "admit: pool"),
        (service, "identify", "admit: identify (session)"),
        (service, "identify_by", "admit: identify_by (session, forwarded body)"),
        (service, "in_tool_loop", "admit: in_tool_loop"),
        (service, "classify", "admit: classify"),
        (service, "task_of", "admit: task_of"),
        (service, "task_by", "admit: task_by (forwarded body)"),
        (GroupCommit, "read_pin", "admit: read_pin"),
        (Gateway, "run", "run"),
        (GatewayCache, "lookup", "run: cache lookup"),
        (Upstreams, "complete", "run: upstream call"),
        (Upstreams, "relay", "run: upstream call (forwarded body)"),
        (upstream, "read_answer", "run: upstream call: read_answer (relayed)"),
        (openai, "_request_to_wire", "run: upstream call: _request_to_wire"),
        (_http.HTTPProvider, "_post", "run: upstream call: HTTPProvider._post"),
        (http1.UpstreamClient, "post", "run: upstream call: UpstreamClient.post"),
        (openai, "_response_from_wire", "run: upstream call: _response_from_wire"),
        (Gateway, "_call", "run: audit row (_call)"),
        (Gateway, "_pin", "run: pin writes (_pin)"),
        (Gateway, "_settle", "run: spend writes (_settle)"),
        (GroupCommit, "commit", "run: commit"),
        (group_commit, "_apply_all", "run: commit: the statements"),
        (GatewayCache, "save", "run: cache save"),
    ]
    for owner, name, label in stages:
        _wrap(owner, name, label)


async def _serve(project: Path, port: int, report: Path) -> None:
    """`orchestrator gateway` with the stages wrapped; their totals written to `report` at
    SIGINT, counted from SIGUSR1 (after the warm-up)."""
    from orchestrator.cli._common import load_settings
    from orchestrator.cli.gateway import _served
    from orchestrator.gateway.config import GatewaySettings
    from orchestrator.gateway.serve import project_gateway
    from orchestrator.heap import settle_heap
    from orchestrator.store.store import Store

    _install()
    settings = load_settings(project)
    config = GatewaySettings()
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    async with (
        await Store.open(settings.resolved_database_url) as store,
        project_gateway(settings, store, config) as gateway,
        _served(store, gateway, "127.0.0.1", port) as url,
    ):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)

        def restart() -> None:
            for totals in _TOTALS.values():
                totals[:] = [0, 0, 0]

        loop.add_signal_handler(signal.SIGUSR1, restart)
        settle_heap()
        print(f"gateway on {url}/v1", flush=True)
        await stop.wait()
        report.write_text(json.dumps(_TOTALS))


async def main(n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gateway-stages-"))
    replay_port, port = free_port(), free_port()
    scripted_url = f"http://127.0.0.1:{replay_port}/v1"
    (folder / "script.yaml").write_text(yaml.safe_dump(bench.SCRIPT))
    project = folder / "project"
    project.mkdir()
    (project / "models.yaml").write_text(yaml.safe_dump(bench._models(scripted_url)))
    digest = hashlib.sha256(bench.TOKEN.encode()).hexdigest()
    keys = {"keys": [{"id": "bench", "token_sha256": digest, "tenant": "bench"}]}
    (project / "gateway_keys.yaml").write_text(yaml.safe_dump(keys))
    report = folder / "stages.json"
    env = {**os.environ, "ORCHESTRATOR_LOG_LEVEL": "WARNING", "ORCHESTRATOR_LOG_FORMAT": "json"}
    replay = [sys.executable, "-m", "orchestrator.scripted_model", str(folder / "script.yaml")]
    served = [sys.executable, __file__, "--serve", str(project), str(port), str(report)]
    auth = {"authorization": f"Bearer {bench.TOKEN}"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with (
        bench._process([*replay, "--port", str(replay_port)], "serving on", env),
        bench._process(served, "gateway on", env) as proc,
        httpx.AsyncClient(timeout=60) as http,
    ):
        pid = _pid_of(str(project))

        async def call(i: int) -> float:
            body = bench._body("a", i % 9 if i >= 0 else 0)
            return await bench._timed(http, url, body, {**auth, "x-session-id": f"s-{i // 9}"})

        for i in range(200):
            await call(-1 - i)
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
        start = _cpu_seconds(pid)
        latencies = [await call(i) for i in range(n)]
        cpu = _cpu_seconds(pid) - start
        proc.send_signal(signal.SIGINT)
        await proc.wait()
    totals: dict[str, list[int]] = json.loads(report.read_text())
    print(
        json.dumps(
            {
                "requests": n,
                "p50_ms": bench._pct(latencies, 50),
                "process_cpu_us_per_request": round(cpu / n * 1e6, 1),
                "stages_us_per_request": {
                    label: {
                        "calls": round(calls / n, 2),
                        "cpu": round(cpu_ns / n / 1e3, 1),
                        "wall": round(wall_ns / n / 1e3, 1),
                    }
                    for label, (calls, cpu_ns, wall_ns) in totals.items()
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        import uvloop

        uvloop.run(_serve(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
    else:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
