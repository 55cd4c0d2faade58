"""Latency the gateway adds, and how often a tool loop keeps its deployment.

Runs the scripted model server and `orchestrator gateway` as separate processes and drives
them over loopback HTTP from this one:

1. sequential requests, straight to the scripted model server and through the gateway
   (the difference of the medians is what the gateway adds);
2. the same with 200 concurrent clients;
3. time to the first streamed byte through the gateway (kept for older readers), and time
   to first token (the first SSE event that carries text, not the headers nor the role-only
   chunk) for every target, sequential in rotating order and with the 200 concurrent
   clients: what the gateway adds before a client sees text;
4. a replayed tool-heavy workload (sessions of tool loops over two equally good
   deployments): the share of calls served by the previous call's deployment, through
   the gateway's pins, against a per-request router (a new session id on every call);
5. with `--litellm` (the `bench` extra, `litellm[proxy]`), LiteLLM's proxy in front of the
   same scripted model server, started beside the gateway: the sequential requests go to
   the scripted model server, the gateway and LiteLLM in rotating order, so all three meet
   the same load, and each server's CPU time per request is read from /proc (robust to
   the shared box's load, unlike wall time).
6. with `--floor`, a bare Python proxy that only forwards bytes (`_floor_proxy.py`:
   httptools and uvloop, no JSON, no store) in the same rotation: what any asyncio proxy
   adds before it does any work of its own.

    .venv/bin/python bench/gateway.py [--requests 300] [--clients 200] [--litellm] [--floor]

Writes `bench/results/gateway.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from orchestrator.devserver import free_port

TOKEN = "sk-gw-bench"
LITELLM_KEY = "sk-bench-" + "5" * 40
"""LiteLLM's proxy refuses to start without a master key; a fixed one for loopback only."""
RESULTS = Path(__file__).parent / "results"
RECONNECTS: list[str] = []
"""Requests sent again because the server had closed the kept-alive connection."""


SAY = "You say where things are."
"""The system text of the streamed workload's requests (answered in text, not tools)."""


def _turns(slow: range, delay: float) -> list[Any]:
    """Eight tool rounds and a final answer; the rounds in `slow` answer `delay` late."""
    turns: list[Any] = []
    for i in range(8):
        turn: Any = {"tool_calls": [{"name": "lookup", "arguments": {"n": i}}]}
        if delay and i in slow:
            turn["fault"] = {"kind": "timeout", "seconds": delay}
        turns.append(turn)
    return [*turns, {"content": "done"}]


SCRIPT: Any = {
    "conversations": [
        # The warm-cache workload: `a` is slow in the first half of each tool loop and `b`
        # in the second, so the live latency a per-request router reads turns against
        # whichever deployment it is on, mid-loop: it moves, and a moved call starts with a
        # cold prompt cache. Pins keep the loop where it started.
        {
            "name": "warm-a",
            "match": {"model": "replay-a", "contains": "Warm"},
            "turns": _turns(range(0, 4), 0.1),
            "after_last": "repeat_last",
        },
        {
            "name": "warm-b",
            "match": {"model": "replay-b", "contains": "Warm"},
            "turns": _turns(range(4, 8), 0.1),
            "after_last": "repeat_last",
        },
        # The streamed workload: the same request shapes as `loop`, every turn answered in
        # text, so each stream carries text deltas whose first one is timed.
        {
            "name": "say",
            "match": {"contains": SAY},
            "turns": [{"content": "It is on the second shelf, left of the door."}] * 9,
            "after_last": "repeat_last",
        },
        {"name": "loop", "turns": _turns(range(0), 0.0), "after_last": "repeat_last"},
    ]
}


def _models(scripted_url: str) -> Any:
    deployment = {
        "provider": "replay",
        "model": "replay-a",
        "input_price_per_mtok": 1.0,
        "output_price_per_mtok": 2.0,
        "quality": {"default": 0.8},
        "latency_ms": 5,
    }
    return {
        "providers": {"replay": {"kind": "openai", "base_url": scripted_url}},
        "models": {"a": deployment, "b": {**deployment, "model": "replay-b"}},
        "aliases": {"pair": {"deployments": ["a", "b"]}},
        "default_model": "a",
        "routing": {
            "default_policy": "even",
            # Latency decides between two equal deployments; no stickiness bonus, so a
            # router asked afresh each call follows every move of the live measurements.
            "policies": {
                "even": {
                    "weights": {"quality": 0.6, "cost": 0.3, "latency": 0.1},
                    "stickiness": 0.0,
                }
            },
        },
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 3)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": _pct(values, 50),
        "p99_ms": _pct(values, 99),
        "mean_ms": round(statistics.fmean(values) * 1000, 3),
    }


@contextlib.asynccontextmanager
async def _process(
    argv: list[str], ready: str, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{argv[0]} exited before it was ready")
                if ready in line:
                    break

        async def drain() -> None:
            assert proc.stdout is not None
            while await proc.stdout.readline():
                pass

        drainer = asyncio.create_task(drain())
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if "drainer" in locals():
            drainer.cancel()


def _cpu_seconds(group: int) -> float:
    """CPU time (user + system) of every live process of a process group, from /proc.

    Robust to the box's load, unlike wall time: what a server spent, not what it waited.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _body(model: str, turn: int = 0, system: str = "You look things up.") -> dict[str, Any]:
    messages: list[Any] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Find it."},
    ]
    for i in range(turn):
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"n": i})},
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"},
        ]
    return {"model": model, "messages": messages, "max_tokens": 64}


async def _timed(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> float:
    for attempt in range(3):
        start = time.perf_counter()
        try:
            answer = await http.post(url, json=body, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # A kept-alive connection the server closed as it was reused: counted, sent again.
            RECONNECTS.append(url)
            if attempt == 2:
                raise
            continue
        answer.raise_for_status()
        return time.perf_counter() - start
    raise AssertionError("unreachable")


async def _ttfb(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> float:
    start = time.perf_counter()
    async with http.stream("POST", url, json={**body, "stream": True}, headers=headers) as answer:
        answer.raise_for_status()
        first: float | None = None
        async for _ in answer.aiter_bytes():
            if first is None:
                first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("empty stream")
    return first


def _has_text(line: str) -> bool:
    """Whether an SSE line is a chat-completion chunk carrying text (not the role-only
    chunk that opens a stream, whose content is empty)."""
    if not line.startswith("data:"):
        return False
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return False
    chunk = json.loads(data)
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", []))


async def _first_token(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> float:
    """Seconds from sending a streamed request to its first text delta; the rest of the
    stream is read to its end, so the connection is kept for the next request."""
    for attempt in range(3):
        start = time.perf_counter()
        first: float | None = None
        try:
            async with http.stream(
                "POST", url, json={**body, "stream": True}, headers=headers
            ) as answer:
                answer.raise_for_status()
                async for line in answer.aiter_lines():
                    if first is None and _has_text(line):
                        first = time.perf_counter() - start
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if first is not None:
                raise
            RECONNECTS.append(url)
            if attempt == 2:
                raise
            continue
        if first is None:
            raise RuntimeError(f"no text delta in the stream from {url}")
        return first
    raise AssertionError("unreachable")


async def _sequential(call: Callable[[int], Awaitable[float]], n: int) -> list[float]:
    for i in range(max(20, n // 10)):
        await call(-1 - i)
    return [await call(i) for i in range(n)]


async def _concurrent(
    call: Callable[[httpx.AsyncClient, int], Awaitable[float]],
    clients: int,
    each: int,
    shared: httpx.AsyncClient | None = None,
) -> list[float]:
    """`clients` concurrent clients of `each` requests; each its own `httpx.AsyncClient`
    (one connection), unless `shared` is given (one pool for all, the old way).

    httpcore's pool walks every connection, and for each idle one every connection again,
    whenever a request enters or leaves it: one pool of 200 connections cost this process
    ~11 ms of CPU per request and saturated its core, so the crowd waited here, not in the
    server measured (bench/README.md, gateway).
    """
    async with contextlib.AsyncExitStack() as stack:
        if shared is not None:
            own = [shared] * clients
        else:
            context = httpx.create_ssl_context()  # once: loading the CA bundle is slow
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            own = [
                await stack.enter_async_context(
                    httpx.AsyncClient(timeout=120, limits=limits, verify=context)
                )
                for _ in range(clients)
            ]

        async def client(c: int) -> list[float]:
            return [await call(own[c], c * each + i) for i in range(each)]

        await asyncio.gather(*(call(own[c], -1 - c) for c in range(clients)))
        results = await asyncio.gather(*(client(c) for c in range(clients)))
    return [v for r in results for v in r]


async def _warm_share(
    http: httpx.AsyncClient, url: str, sessions: int, per_request: bool
) -> dict[str, Any]:
    kept = total = 0
    # Both deployments measured fast first, so the router's live latency starts even (a
    # first call's connection setup would otherwise mark one slow for good: a per-request
    # router never tries it again).
    for i in range(15):
        for model in ("a", "b"):
            warmup = await http.post(
                url,
                json=_body(model),
                headers={"authorization": f"Bearer {TOKEN}", "x-session-id": f"even-{i}"},
            )
            warmup.raise_for_status()
    for s in range(sessions):
        previous = None
        for turn in range(9):
            sid = f"warm-{per_request}-{s}-{turn}" if per_request else f"warm-{s}"
            answer = await http.post(
                url,
                json=_body("pair", turn, f"Warm workload, session {s}."),
                headers={"authorization": f"Bearer {TOKEN}", "x-session-id": sid},
            )
            answer.raise_for_status()
            deployment = answer.headers["x-orchestrator-deployment"]
            if previous is not None:
                total += 1
                kept += deployment == previous
            previous = deployment
    return {
        "calls_after_the_first": total,
        "same_as_previous": kept,
        "share": round(kept / total, 4) if total else None,
    }


@contextlib.asynccontextmanager
async def _floor(upstream_port: int, env: dict[str, str]) -> AsyncIterator[Target]:
    """The floor of a Python proxy (`_floor_proxy.py`): forwards bytes, does nothing else."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).parent / "_floor_proxy.py")]
    argv += [f"127.0.0.1:{upstream_port}", str(port)]
    async with _process(argv, "floor proxy on", env) as proc:
        yield Target(
            "floor",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            "replay-a",
            {},
            proc.pid,
            sessions=False,
        )


@contextlib.asynccontextmanager
async def _litellm(folder: Path, scripted_url: str) -> AsyncIterator[Target]:
    """LiteLLM's proxy (no database, like its quick start) before the same scripted model
    server, as its own process on loopback."""
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": "a",
                "litellm_params": {
                    "model": "openai/replay-a",
                    "api_base": scripted_url,
                    "api_key": "x",
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": LITELLM_KEY},
    }
    (folder / "litellm.yaml").write_text(yaml.safe_dump(config))
    binary = Path(sys.executable).parent / "litellm"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [str(binary), "--config", str(folder / "litellm.yaml")]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    async with _process(argv, "Uvicorn running", env) as proc:
        yield Target(
            "litellm",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            "a",
            {"authorization": f"Bearer {LITELLM_KEY}"},
            proc.pid,
            sessions=False,
        )


class Target:
    """One server the bench sends chat requests to, and the process group it runs in."""

    def __init__(
        self,
        name: str,
        url: str,
        model: str,
        headers: dict[str, str],
        group: int,
        *,
        sessions: bool,
    ) -> None:
        self.name, self.url, self.model, self.headers = name, url, model, headers
        self.group = group
        self.sessions = sessions
        """Whether to send a session id (the gateway's tool loops, 9 calls each)."""

    def call(self, http: httpx.AsyncClient, i: int) -> Awaitable[float]:
        """Request `i`: turn `i % 9` of session `i // 9` (warm-ups, `i < 0`: turn 0)."""
        headers = dict(self.headers)
        if self.sessions:
            headers["x-session-id"] = f"s-{i // 9}"
        return _timed(http, self.url, _body(self.model, i % 9 if i >= 0 else 0), headers)

    def first_token(self, http: httpx.AsyncClient, i: int) -> Awaitable[float]:
        """Request `i` of the streamed workload (the same shapes as `call`, answered in
        text): seconds to its first text delta."""
        headers = dict(self.headers)
        if self.sessions:
            headers["x-session-id"] = f"say-{i // 9}"
        body = _body(self.model, i % 9 if i >= 0 else 0, SAY)
        return _first_token(http, self.url, body, headers)


Measure = Callable[[Target, httpx.AsyncClient, int], Awaitable[float]]
"""One request of a workload to a target (`Target.call` or `Target.first_token`)."""


async def _interleaved(
    http: httpx.AsyncClient, targets: list[Target], n: int, measure: Measure = Target.call
) -> dict[str, dict[str, Any]]:
    """`n` sequential requests to each target, in rotating order, so all meet the same
    load; with each target's CPU time per request (the first target is the backend)."""
    for i in range(max(20, n // 10)):
        for t in targets:
            await measure(t, http, -1 - i)
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    before = {t.name: _cpu_seconds(t.group) for t in targets}
    for i in range(n):
        shift = i % len(targets)
        for t in targets[shift:] + targets[:shift]:
            times[t.name].append(await measure(t, http, i))
    # The scripted model server (`targets[0]`) also answers every proxy's upstream call:
    # its CPU is shared by all the requests of the phase.
    served = {t.name: n for t in targets}
    served[targets[0].name] = n * len(targets)
    return {
        t.name: {
            **_summary(times[t.name]),
            "cpu_ms_per_request": round(
                (_cpu_seconds(t.group) - before[t.name]) / served[t.name] * 1000, 3
            ),
        }
        for t in targets
    }


async def _crowd(
    target: Target,
    clients: int,
    each: int,
    shared: httpx.AsyncClient | None,
    measure: Measure = Target.call,
) -> dict[str, Any]:
    """`clients` concurrent clients of `each` requests, with the target's CPU per request."""
    before = _cpu_seconds(target.group)

    def call(http: httpx.AsyncClient, i: int) -> Awaitable[float]:
        return measure(target, http, i)

    values = await _concurrent(call, clients, each, shared)
    cpu = _cpu_seconds(target.group) - before
    return {**_summary(values), "cpu_ms_per_request": round(cpu / (clients * (each + 1)) * 1000, 3)}


def _added(results: dict[str, Any], name: str) -> dict[str, float]:
    direct, through = results["direct"], results[name]
    return {
        "added_p50_ms": round(through["p50_ms"] - direct["p50_ms"], 3),
        "added_p99_ms": round(through["p99_ms"] - direct["p99_ms"], 3),
    }


_MODES = ("sequential", "concurrent", "ttft_sequential", "ttft_concurrent")
"""The phases measured on every target: whole answers and time to first token, each with
one client at a time and with the crowd."""


def _ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    """The gateway's figures over LiteLLM's (None where LiteLLM's is not positive)."""
    return {
        what: round(ours[what] / theirs[what], 3) if theirs[what] > 0 else None
        for what in ("added_p50_ms", "added_p99_ms", "cpu_ms_per_request")
    }


def _table(results: dict[str, Any]) -> str:
    """The phases side by side: p50/p99 and what each proxy adds over the direct calls."""
    lines = [f"{'phase':<16}{'target':<9}{'p50':>9}{'p99':>9}{'+p50':>9}{'+p99':>9}{'cpu/req':>9}"]
    for mode in _MODES:
        for name, row in results[mode].items():
            added = [row.get("added_p50_ms", 0.0), row.get("added_p99_ms", 0.0)]
            cells = [row["p50_ms"], row["p99_ms"], *added, row["cpu_ms_per_request"]]
            lines.append(f"{mode:<16}{name:<9}" + "".join(f"{v:>9.2f}" for v in cells))
    for mode, ratio in results.get("gateway_over_litellm", {}).items():
        shown = ", ".join(f"{k} {v}" for k, v in ratio.items())
        lines.append(f"gateway / litellm, {mode}: {shown}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    replay_port, gateway_port = free_port(), free_port()
    scripted_url = f"http://127.0.0.1:{replay_port}/v1"
    gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
    (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
    (folder / "models.yaml").write_text(yaml.safe_dump(_models(scripted_url)))
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (folder / "gateway_keys.yaml").write_text(
        yaml.safe_dump({"keys": [{"id": "bench", "token_sha256": digest, "tenant": "bench"}]})
    )
    env = {**os.environ, "ORCHESTRATOR_LOG_LEVEL": "WARNING", "ORCHESTRATOR_LOG_FORMAT": "json"}
    results: dict[str, Any] = {
        "requests": args.requests,
        "clients": args.clients,
        "shared_client": args.shared_client,
    }
    limits = httpx.Limits(
        max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10
    )
    scripted_argv = [sys.executable, "-m", "orchestrator.scripted_model"]
    scripted_argv += [str(folder / "script.yaml"), "--port", str(replay_port)]
    gateway_argv = [sys.executable, "-m", "orchestrator", "gateway", "--project", str(folder)]
    gateway_argv += ["--port", str(gateway_port)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            scripted = await stack.enter_async_context(_process(scripted_argv, "serving on", env))
            gateway = await stack.enter_async_context(_process(gateway_argv, "gateway on", env))
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=120, limits=limits))
            auth = {"authorization": f"Bearer {TOKEN}"}
            direct = Target(
                "direct",
                f"{scripted_url}/chat/completions",
                "replay-a",
                {},
                scripted.pid,
                sessions=False,
            )
            ours = Target(
                "gateway", f"{gateway_url}/chat/completions", "a", auth, gateway.pid, sessions=True
            )
            targets = [direct, ours]
            if args.litellm:
                targets.append(await stack.enter_async_context(_litellm(folder, scripted_url)))
            if args.floor:
                targets.append(await stack.enter_async_context(_floor(replay_port, env)))

            def first_byte(i: int) -> Awaitable[float]:
                return _ttfb(
                    http,
                    f"{gateway_url}/chat/completions",
                    _body("a", 0),
                    {**auth, "x-session-id": f"t-{i}"},
                )

            # First, while the router's live measurements come from this workload only: the
            # load phases below would leave latencies of seconds behind.
            results["warm_cache"] = {
                "pinned": await _warm_share(
                    http, f"{gateway_url}/chat/completions", args.sessions, False
                ),
                "per_request": await _warm_share(
                    http, f"{gateway_url}/chat/completions", args.sessions, True
                ),
            }
            sequential = await _interleaved(http, targets, args.requests)
            for t in targets[1:]:
                sequential[t.name].update(_added(sequential, t.name))
            results["sequential"] = sequential
            results["ttfb_gateway_stream"] = _summary(
                await _sequential(first_byte, args.requests // 3)
            )
            shared = http if args.shared_client else None
            concurrent = {t.name: await _crowd(t, args.clients, args.each, shared) for t in targets}
            for t in targets[1:]:
                concurrent[t.name].update(_added(concurrent, t.name))
            results["concurrent"] = concurrent
            first = Target.first_token
            ttft_sequential = await _interleaved(http, targets, args.requests, first)
            for t in targets[1:]:
                ttft_sequential[t.name].update(_added(ttft_sequential, t.name))
            results["ttft_sequential"] = ttft_sequential
            ttft_concurrent = {
                t.name: await _crowd(t, args.clients, args.each, shared, first) for t in targets
            }
            for t in targets[1:]:
                ttft_concurrent[t.name].update(_added(ttft_concurrent, t.name))
            results["ttft_concurrent"] = ttft_concurrent
            if args.litellm:
                results["gateway_over_litellm"] = {
                    mode: _ratio(results[mode]["gateway"], results[mode]["litellm"])
                    for mode in _MODES
                }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["reconnects"] = len(RECONNECTS)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(_table(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--each", type=int, default=5, help="requests per concurrent client")
    parser.add_argument(
        "--sessions", type=int, default=30, help="sessions of the warm-cache workload"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure a bare Python proxy that only forwards bytes (the floor)",
    )
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy")
    parser.add_argument(
        "--shared-client",
        action="store_true",
        help="the concurrent clients share one httpx pool (before: the bench was the bottleneck)",
    )
    asyncio.run(main(parser.parse_args()))
