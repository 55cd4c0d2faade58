"""Two gateway versions side by side under the same load: added latency and CPU per request.

On a shared machine two runs of `gateway.py` minutes apart differ by more than most
changes. This runs the scripted model server and two `orchestrator gateway` processes at once, A
with `PYTHONPATH=<a>` and B with `PYTHONPATH=<b>` (e.g. an unpacked `git archive` of the
older commit, and this checkout), sends sequential requests interleaved (direct, A, B in
rotating order), then 200 concurrent clients against each in turn, and reads each
process's CPU time from /proc, which the load does not inflate as it does wall time.

    cd /tmp && /path/to/.venv/bin/python /path/to/bench/gateway_ab.py A_DIR B_DIR [N] \
        [--budgeted] [--shape plain|agents|pydantic-ai|openai-dump] [--stream]

`--budgeted` gives the bench's key a daily budget and a rate limit (both far above what
the run spends), so every request also reserves, spends and settles its budget and counts
against its limits, as a production key does.

`--shape` writes the tool loop's bodies as a client does (`SHAPES`): `plain` as the
gateway's full path writes them (`gateway.py`'s bodies, the default), `agents` as the
OpenAI Agents SDK sends them, `pydantic-ai` as pydantic-ai does, `openai-dump` as an
`openai` SDK loop that sends the answer's message back with `model_dump(exclude_none=True)`
(tests/gateway/sdk_bodies.json holds the captured bodies these follow).

`--stream` sends `gateway.py`'s streamed workload instead (`stream: true`, each turn
answered in text) and times each request to its first text delta (`_first_token`, which
reads the rest of the stream too), so the figures are time to first token and CPU per
streamed request.

Run it from a folder that holds no `orchestrator` package: `python -m` puts the working
folder ahead of PYTHONPATH. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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


_LOOKUP: Any = {
    "name": "lookup",
    "description": "Look a thing up.",
    "parameters": {
        "properties": {"n": {"title": "N", "type": "integer"}},
        "required": ["n"],
        "title": "lookup_args",
        "type": "object",
        "additionalProperties": False,
    },
}


def _agents(body: Any) -> Any:
    """The OpenAI Agents SDK's body: a strict tool; the system message's keys as it orders them."""
    system, *rest = body["messages"]
    tools = [{"type": "function", "function": {**_LOOKUP, "strict": True}}]
    messages = [{"content": system["content"], "role": "system"}, *rest]
    return {"model": body["model"], "messages": messages, "tools": tools, "max_tokens": 64}


def _pydantic_ai(body: Any) -> Any:
    """pydantic-ai's body: `stream: false`, `tool_choice`, strict tools, `max_completion_tokens`."""
    return {
        "model": body["model"],
        "stream": False,
        "messages": body["messages"],
        "max_completion_tokens": 64,
        "tool_choice": "auto",
        "tools": [{"type": "function", "function": {**_LOOKUP, "strict": True}}],
    }


def _openai_dump(body: Any) -> Any:
    """An `openai` SDK loop's body: each answer sent back with `model_dump(exclude_none=True)`,
    so an assistant message that asked for tools has no `content`."""
    messages = [
        {k: v for k, v in m.items() if k != "content"} if m["role"] == "assistant" else m
        for m in body["messages"]
    ]
    return {**body, "messages": messages, "tools": [{"type": "function", "function": _LOOKUP}]}


SHAPES: dict[str, Callable[[Any], Any]] = {
    "plain": lambda body: body,
    "agents": _agents,
    "pydantic-ai": _pydantic_ai,
    "openai-dump": _openai_dump,
}
"""How a client writes `gateway.py`'s bodies (`--shape`)."""

_BUDGETED = {
    "budgets": [{"period": "day", "limit_usd": 1000.0}],
    "rate_limit": {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000},
}


async def main(
    a_path: str,
    b_path: str,
    n: int,
    budgeted: bool = False,
    shape: str = "plain",
    stream: bool = False,
) -> None:
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
        shaped = SHAPES[shape]
        timed = bench._first_token if stream else bench._timed
        system = bench.SAY if stream else "You look things up."
        session = "say" if stream else "s"

        def direct(client: httpx.AsyncClient, i: int) -> Awaitable[float]:
            body = bench._body("replay-a", i % 9 if i >= 0 else 0, system)
            return timed(client, f"{scripted_url}/chat/completions", body, {})

        def through(name: str) -> Callable[[httpx.AsyncClient, int], Awaitable[float]]:
            def call(client: httpx.AsyncClient, i: int) -> Awaitable[float]:
                return timed(
                    client,
                    f"http://127.0.0.1:{ports[name]}/v1/chat/completions",
                    shaped(bench._body("a", i % 9 if i >= 0 else 0, system)),
                    {**auth, "x-session-id": f"{session}-{i // 9}"},
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
            "shape": shape,
            "stream": stream,
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Two gateway versions (PYTHONPATH folders) under the same load; JSON out."
    )
    parser.add_argument("a", help="PYTHONPATH of gateway A (e.g. an unpacked git archive)")
    parser.add_argument("b", help="PYTHONPATH of gateway B")
    parser.add_argument("n", nargs="?", type=int, default=300, help="sequential requests each")
    parser.add_argument(
        "--budgeted", action="store_true", help="the key has a budget and a rate limit"
    )
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="plain", help="how the client writes bodies"
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="streamed requests, timed to their first text delta",
    )
    return parser


if __name__ == "__main__":
    args = _parser().parse_args()
    asyncio.run(main(args.a, args.b, args.n, args.budgeted, args.shape, args.stream))
