"""Two gateway versions side by side under the same load: added latency and CPU per request.

On a shared machine two runs of `gateway.py` minutes apart differ by more than most
changes. This runs the scripted model server and two `orchestrator gateway` processes at once, A
with `PYTHONPATH=<a>` and B with `PYTHONPATH=<b>` (e.g. an unpacked `git archive` of the
older commit, and this checkout), sends sequential requests interleaved (direct, A, B in
rotating order), then 200 concurrent clients against each in turn, and reads each
process's CPU time from /proc, which the load does not inflate as it does wall time.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/gateway_ab.py A_DIR B_DIR [N] [--budgeted]

`--budgeted` gives the bench's key a daily budget and a rate limit (both far above what
the run spends), so every request also reserves, spends and settles its budget and counts
against its limits, as a production key does.

Run it from a folder that holds no `orchestrator` package: `python -m` puts the working
folder ahead of PYTHONPATH. Prints JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import gateway as bench

from orchestrator.devserver import free_port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid_of(needle: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in command and "python" in command:
                return int(entry.name)
    raise RuntimeError(f"no process runs {needle}")


_BUDGETED = {
    "budgets": [{"period": "day", "limit_usd": 1000.0}],
    "rate_limit": {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000},
}


async def main(a_path: str, b_path: str, n: int, budgeted: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gateway-ab-"))
    replay_port = free_port()
    scripted_url = f"http://127.0.0.1:{replay_port}/v1"
    (folder / "script.yaml").write_text(yaml.safe_dump(bench.SCRIPT))
    env = {**os.environ, "ORCHESTRATOR_LOG_LEVEL": "WARNING", "ORCHESTRATOR_LOG_FORMAT": "json"}
    digest = hashlib.sha256(bench.TOKEN.encode()).hexdigest()
    ports = {"A": free_port(), "B": free_port()}
    for name in ports:
        project = folder / name
        project.mkdir()
        (project / "models.yaml").write_text(yaml.safe_dump(bench._models(scripted_url)))
        key = {"id": "bench", "token_sha256": digest, "tenant": "bench"}
        keys = {"keys": [{**key, **_BUDGETED} if budgeted else key]}
        (project / "gateway_keys.yaml").write_text(yaml.safe_dump(keys))

    def gateway(name: str) -> list[str]:
        return [sys.executable, "-m", "orchestrator", "gateway", "--project", str(folder / name)]

    limits = httpx.Limits(max_connections=420, max_keepalive_connections=420)
    replay = [sys.executable, "-m", "orchestrator.scripted_model", str(folder / "script.yaml")]
    async with (
        bench._process([*replay, "--port", str(replay_port)], "serving on", env),
        bench._process(
            [*gateway("A"), "--port", str(ports["A"])],
            "gateway on",
            {**env, "PYTHONPATH": a_path},
        ),
        bench._process(
            [*gateway("B"), "--port", str(ports["B"])],
            "gateway on",
            {**env, "PYTHONPATH": b_path},
        ),
        httpx.AsyncClient(timeout=120, limits=limits) as http,
    ):
        pids = {
            "A": _pid_of(str(folder / "A")),
            "B": _pid_of(str(folder / "B")),
            "replay": _pid_of(str(folder / "script.yaml")),
        }
        auth = {"authorization": f"Bearer {bench.TOKEN}"}

        def direct(client: httpx.AsyncClient, i: int) -> Awaitable[float]:
            body = bench._body("replay-a", i % 9 if i >= 0 else 0)
            return bench._timed(client, f"{scripted_url}/chat/completions", body, {})

        def through(name: str) -> Callable[[httpx.AsyncClient, int], Awaitable[float]]:
            def call(client: httpx.AsyncClient, i: int) -> Awaitable[float]:
                return bench._timed(
                    client,
                    f"http://127.0.0.1:{ports[name]}/v1/chat/completions",
                    bench._body("a", i % 9 if i >= 0 else 0),
                    {**auth, "x-session-id": f"s-{i // 9}"},
                )

            return call

        calls = {"direct": direct, "A": through("A"), "B": through("B")}
        for i in range(40):
            for call in calls.values():
                await call(http, -1 - i)
        order = list(calls)
        latencies: dict[str, list[float]] = {k: [] for k in calls}
        before = {k: _cpu_seconds(p) for k, p in pids.items()}
        for i in range(n):
            for k in order[i % 3 :] + order[: i % 3]:
                latencies[k].append(await calls[k](http, i))
        out: dict[str, object] = {
            "sequential": {k: bench._summary(v) for k, v in latencies.items()},
            "sequential_cpu_ms_per_request": {
                k: round((_cpu_seconds(p) - before[k]) / (n * (3 if k == "replay" else 1)) * 1e3, 3)
                for k, p in pids.items()
            },
        }
        concurrent: dict[str, object] = {}
        for k in order:
            start_cpu = {name: _cpu_seconds(p) for name, p in pids.items()}
            start = time.perf_counter()
            values = await bench._concurrent(calls[k], 200, 5)
            requests = 200 + len(values)
            concurrent[k] = {
                **bench._summary(values),
                "wall_s": round(time.perf_counter() - start, 2),
                "cpu_ms_per_request": {
                    name: round((_cpu_seconds(p) - start_cpu[name]) / requests * 1e3, 3)
                    for name, p in pids.items()
                },
            }
        out["concurrent"] = concurrent
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--budgeted"]
    asyncio.run(
        main(args[0], args[1], int(args[2]) if len(args) > 2 else 300, "--budgeted" in sys.argv)
    )
