"""Live streaming: what our stack adds between a provider's tokens and a watcher.

The scripted model (the scripted model server) runs in its own process behind a pacing layer that
sends one SSE event every `--interval` ms and stamps, on the machine's monotonic clock
(shared by every process), the moment it sends each piece of answer text. Then, in one
run, interleaved session by session:

- **direct**: the official `openai` SDK streams the same answer from that server: the
  provider's own delivery of each token (stamp to arrival in the client);
- **through the stack**: a real session on the tuned embedded dev server, with its worker
  in this process, streams the same answer; a watcher follows the session's Server-Sent
  Events from a separate `orchestrator api` process (SQLite store: deltas and the
  worker's durable-event notices over loopback UDP, a 0.1 s poll behind them), as a chat
  UI would.

It reports, from the provider's send of each token to its arrival at the watcher, the
first token and every token (p50/p95) beside the direct figures and their ratio; the delay
from a durable event's commit to its delivery to a watcher (events written one at a time
into a watched session), and from the `model_call` event's `created_at` (taken by the
activity before its two store writes) to its delivery; and tokens lost (0 expected).
Then a crowd: `--crowd-sessions` sessions live at once, each followed by
`--crowd-watchers` SSE watchers, with the same token figures, each durable event written
after the watchers connected from its commit in the worker (this process's store, whose
append methods the bench wraps to stamp them) to each watcher, the `model_call` event's
way in hops (`created_at`, the activity's `append_event` call, its commit, delivery),
tokens lost, and the API process's resident memory per watcher and CPU time per token
delivered (from /proc, which the machine's other load does not inflate).
`--watchers-process` runs the crowd's watchers in a process of their own rather than
beside the worker. The crowd's watchers stamp their socket reads and decode them after the
crowd's last session ended (`RawWatcher`; until 2026-12-07, each after its own session);
`--httpx-watchers` has them parse with httpx as the bytes come, as before 2026-12-06
(their own CPU then queues the tokens they time).
Temporal's workflow streams take about 100 ms per round trip (issue
13): shown beside ours for reference, not measured here. Prints JSON and writes
`bench/results/stream.json`.

`--against TREE` (e.g. an unpacked `git archive` of an older commit) runs that tree's
`orchestrator api` beside this one's, and the crowd alternates between the two,
`--rounds` times each, in the same run: both meet the same load, so their ratio holds
where a second run minutes later would differ by more than the change. Both API processes
receive every delta throughout; the worker is this tree's. `--against-switch-interval S`
sets this process's GIL switch interval (its worker's and watchers') to S during the
other tree's rounds: with a tree whose processes set a shorter interval (bench/README.md,
`stream.py`, "the GIL"), the comparison with CPython's 5 ms. Each crowd reports its
rounds' p95s (`p95_by_round`: one round's stall can carry a pooled p95) and splits the
first token at the worker: the server's send to the worker's delta sink, the sink to each
watcher (`FirstDeltas`).

    .venv/bin/python bench/stream.py [--sessions 20 --words 120 --interval 2
                                      --crowd-sessions 50 --crowd-watchers 4]
    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python bench/stream.py --against /tmp/before --rounds 3
    .venv/bin/python bench/stream.py --against /tmp/before --against-switch-interval 0.005
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h11
import httpx
from _harness import TUNED, BenchDevServer, Stats, machine, replay_without_nagle

from orchestrator.approvals.people import hash_token
from orchestrator.client import connect
from orchestrator.devserver import free_port
from orchestrator.events.client import sse_messages
from orchestrator.events.publisher import DeltaPublisher, ProviderDelta, Tags
from orchestrator.heap import settle_heap
from orchestrator.logs import configure_logging
from orchestrator.plans.models import AgentStep, ApprovalStep, Plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import LoopbackServer, load_model_script
from orchestrator.scripted_model._app import create_replay_app
from orchestrator.service import decide_approval, start_session
from orchestrator.settings import Settings
from orchestrator.store import AuditEvent, EventKind, SessionRecord, Store
from orchestrator.testing import wait_for_pending_approval
from orchestrator.worker import build_worker

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-stream-token"
PLAN = Plan(
    name="stream-bench",
    steps=[
        ApprovalStep(type="approval", id="gate", summary="Go on?"),
        AgentStep(id="answer", goal="Answer {{ input.case }}.", model="demo-fast"),
    ],
)
CASE = re.compile(r"case-[0-9a-f]{12}")
"""Names the session (or direct call) a model request is for, in its messages."""
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- the model server's process ----------------------------------------------------------


class Paced:
    """ASGI layer: a streamed answer's SSE events one by one, `interval` s apart, each
    event carrying answer text stamped (`time.monotonic()`) as it is sent."""

    def __init__(self, app: Any, interval: float, stamps: Path) -> None:
        self.app = app
        self.interval = interval
        self.stamps = stamps

    async def __call__(self, scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        sent: list[float] = []
        streaming = False
        asked = bytearray()

        async def reading() -> MutableMapping[str, Any]:
            message: MutableMapping[str, Any] = await receive()
            asked.extend(message.get("body", b""))
            return message

        async def paced(message: MutableMapping[str, Any]) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                streaming = (
                    dict(message["headers"])
                    .get(b"content-type", b"")
                    .startswith(b"text/event-stream")
                )
            if message["type"] != "http.response.body" or not streaming:
                await send(message)
                return
            for event in message.get("body", b"").split(b"\n\n"):
                if not event.strip():
                    continue
                await asyncio.sleep(self.interval)
                if _has_text(event):
                    sent.append(time.monotonic())
                await send(
                    {"type": "http.response.body", "body": event + b"\n\n", "more_body": True}
                )
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, reading, paced)
        if streaming:
            case = CASE.search(asked.decode(errors="replace"))
            with self.stamps.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"case": case.group(0) if case else "", "sent": sent}) + "\n")


def _has_text(event: bytes) -> bool:
    data = event.partition(b"data: ")[2]
    if not data or data.startswith(b"[DONE]"):
        return False
    choices = json.loads(data).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def serve_model(script: Path, port: int, interval: float, stamps: Path) -> None:
    app = Paced(create_replay_app(load_model_script(script)), interval, stamps)
    with replay_without_nagle():
        async with LoopbackServer(app, port=port):
            print("serving", flush=True)
            await asyncio.Event().wait()


# --- the bench -----------------------------------------------------------------------


def answer_text(words: int) -> str:
    return " ".join(f"word{i}" for i in range(words)) + "."


def write_script(folder: Path, answer: str) -> Path:
    script = folder / "script.yaml"
    script.write_text(
        "conversations:\n  - name: answer\n    match: {contains: 'Step: answer'}\n"
        f"    after_last: repeat_last\n    turns:\n      - content: '{answer}'\n"
    )
    return script


@contextlib.asynccontextmanager
async def process(
    args: list[str], env: dict[str, str], ready: str, cwd: Path | None = None, stdin: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process, once a line of its output contains `ready`; stopped at the end."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        limit=1 << 26,  # the watchers' process answers with one long line
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(120):
            while ready not in (line := (await proc.stdout.readline()).decode()):
                if not line:
                    raise RuntimeError(f"{args[:4]} exited before it was ready")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


RETRIED_ATTEMPTS: list[int] = []
"""Each time a watcher saw a model call's later attempt take over (its tokens kept, the
failed attempt's dropped), the attempt number: what a UI does with the `attempt` tag."""


class Pieces:
    """A watcher's text pieces, of the latest attempt only (arrival time, text).

    A model call retried after a fault (a connection the model server closed, a cut
    stream) streams again as attempt 2; its pieces replace whatever attempt 1 sent, as a
    UI drops a failed attempt's tokens, so the whole answer is still there to compare.
    """

    def __init__(self) -> None:
        self.attempt = 1
        self.texts: list[tuple[float, str]] = []

    def add(self, body: dict[str, object], at: float) -> None:
        attempt = int(str(body["attempt"]))
        if attempt < self.attempt:
            return
        if attempt > self.attempt:
            RETRIED_ATTEMPTS.append(attempt)
            self.attempt, self.texts = attempt, []
        self.texts.append((at, str(body["text"])))


async def stamps_of(stamps: Path, case: str) -> list[float]:
    """When the model server sent each text piece of its answer for `case` (it logs them
    once the answer is sent, a moment after the client may have read it all)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in stamps.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["case"] == case:
                return list(record["sent"])
        await asyncio.sleep(0.01)
    raise LookupError(f"the model server logged no answer for {case}")


def new_case() -> str:
    return f"case-{uuid.uuid4().hex[:12]}"


async def direct(base_url: str, stamps: Path) -> tuple[list[float], float]:
    """The official SDK streams the answer: each token's stamp-to-arrival, and the time
    from sending the request to the first token."""
    from openai import AsyncOpenAI

    arrived: list[float] = []
    case = new_case()
    async with AsyncOpenAI(base_url=base_url, api_key="bench") as sdk:
        asked = time.monotonic()
        stream = await sdk.chat.completions.create(
            model="replay-fast",
            messages=[
                {"role": "system", "content": "Step: answer"},
                {"role": "user", "content": f"Answer {case}."},
            ],
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrived.append(time.monotonic())
    sent = await stamps_of(stamps, case)
    return [a - s for a, s in zip(arrived, sent, strict=False)], arrived[0] - asked


class Watcher:
    """One SSE watcher of one session: when each piece of text and durable event came."""

    def __init__(self, http: httpx.AsyncClient, session_id: str) -> None:
        self.http = http
        self.session_id = session_id
        self.pieces = Pieces()
        self.durable: list[tuple[str, str, float, float]] = []
        """Each durable event: its kind, its key, its `created_at` and its arrival (wall)."""
        self.connected = asyncio.Event()

    async def run(self) -> None:
        async with self.http.stream("GET", f"/api/sessions/{self.session_id}/events") as response:
            async for message in sse_messages(response.aiter_lines()):
                now, wall = time.monotonic(), time.time()
                if message.event == "delta":
                    body = message.json()
                    if body["kind"] == "text":
                        self.pieces.add(body, now)
                elif message.event == "message":
                    event = message.json()
                    created = datetime.fromisoformat(str(event["created_at"])).timestamp()
                    self.durable.append((event["kind"], event["event_key"], created, wall))
                    self.connected.set()
                elif message.event == "end":
                    return


class RawWatcher:
    """An SSE watcher that only keeps the bytes and when they came while the session
    streams, and reads them once the crowd's sessions have all ended (`decode`).

    A crowd's tokens arrive in bursts: 50 sessions' answers within the same half second.
    An httpx watcher (`Watcher`) parses every line in Python as it comes, and 200 of them
    in one process spend more CPU on a burst than the burst lasts: the watchers' own queue
    then sits inside the figures. This one reads the socket and stamps each read, which is
    what a watcher on another machine would see, and decodes the HTTP chunks and the SSE
    frames afterwards, each frame stamped with the read that completed it.
    """

    def __init__(self, api: str, session_id: str) -> None:
        url = httpx.URL(api)
        self.host, self.port = url.host, url.port or 80
        self.session_id = session_id
        self.reads: list[tuple[float, float, bytes]] = []
        """Each read: its monotonic and wall time, and its bytes."""
        self.pieces = Pieces()
        self.durable: list[tuple[str, str, float, float]] = []
        self.connected = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            (
                f"GET /api/sessions/{self.session_id}/events HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        tail = b""
        try:
            while chunk := await reader.read(1 << 16):
                self.reads.append((time.monotonic(), time.time(), chunk))
                seen = tail + chunk
                if not self.connected.is_set() and b"\nid: " in seen:
                    self.connected.set()  # a durable event: the watcher is attached
                if b"event: end" in seen:
                    break
                tail = chunk[-16:]
        finally:
            writer.close()

    def decode(self) -> None:
        """Read the frames out of the stamped bytes: once every session of the crowd has
        ended, so that no CPU of it is spent while other sessions still stream."""
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", self.host)]))
        conn.send(h11.EndOfMessage())
        text = codecs.getincrementaldecoder("utf-8")()
        pending = ""
        for mono, wall, chunk in self.reads:
            conn.receive_data(chunk)
            while isinstance(event := conn.next_event(), h11.Response | h11.Data):
                if isinstance(event, h11.Data):
                    pending += text.decode(bytes(event.data))
            *frames, pending = pending.split("\n\n")
            for frame in frames:
                self._frame(frame, mono, wall)

    def _frame(self, frame: str, mono: float, wall: float) -> None:
        kind, data = "message", []
        for line in frame.split("\n"):
            name, _, value = line.partition(":")
            if name == "event":
                kind = value.strip()
            elif name == "data":
                data.append(value.removeprefix(" "))
        if not data:
            return
        body = json.loads("\n".join(data))
        if kind == "delta":
            if body["kind"] == "text":
                self.pieces.add(body, mono)
        elif kind == "message":
            created = datetime.fromisoformat(str(body["created_at"])).timestamp()
            self.durable.append((body["kind"], body["event_key"], created, wall))


HTTPX_WATCHERS = False
"""`--httpx-watchers`: the crowd's watchers are `Watcher`s (httpx, parsed as they come)."""


def watchers_client(api: str) -> httpx.AsyncClient:
    """One HTTP client for many watchers (a client each would cost an SSL context each)."""
    return httpx.AsyncClient(
        base_url=api,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=None,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
    )


Seen = list[list[tuple[list[tuple[float, str]], list[tuple[str, str, float, float]]]]]
"""Per session, per watcher: (each text piece's arrival and text, each durable event's kind,
key, `created_at` and arrival)."""


async def watch_crowd(
    api: str, ids: list[str], watchers: int, connected: Callable[[], Awaitable[None]]
) -> Seen:
    """`watchers` SSE watchers of each session in `ids` until the sessions end; `connected`
    is awaited once all of them have their first event."""
    async with watchers_client(api) as http:
        crowd = [
            [Watcher(http, i) if HTTPX_WATCHERS else RawWatcher(api, i) for _ in range(watchers)]
            for i in ids
        ]
        tasks = [asyncio.create_task(w.run()) for group in crowd for w in group]
        await asyncio.wait_for(
            asyncio.gather(*(w.connected.wait() for group in crowd for w in group)), 120
        )
        await connected()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    for group in crowd:
        for w in group:
            if isinstance(w, RawWatcher):
                w.decode()
    return [[(w.pieces.texts, w.durable) for w in group] for group in crowd]


async def serve_watchers() -> None:
    """The crowd's watchers in a process of their own (`--watchers-process`), as watchers
    on other machines would be: not in the worker's event loop. One job a line on stdin
    (`{"api", "ids", "watchers"}`); `connected` once all are connected, then the `Seen`
    as one JSON line, on stdout."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        job = json.loads(line)

        async def connected() -> None:
            print("connected", flush=True)

        seen = await watch_crowd(job["api"], job["ids"], job["watchers"], connected)
        print(json.dumps(seen), flush=True)


class WatchersProcess:
    """The parent's end of `serve_watchers`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def watch(
        self, api: str, ids: list[str], watchers: int, connected: Callable[[], Awaitable[None]]
    ) -> Seen:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            (json.dumps({"api": api, "ids": ids, "watchers": watchers}) + "\n").encode()
        )
        await self.proc.stdin.drain()
        while (line := (await self.proc.stdout.readline()).decode()).strip() != "connected":
            if not line:
                raise RuntimeError("the watchers' process ended")
        await connected()
        while not (line := (await self.proc.stdout.readline()).decode()).startswith("["):
            if not line:
                raise RuntimeError("the watchers' process ended")
        seen: Seen = json.loads(line)
        return seen


@dataclass
class Watched:
    """What the watchers of some sessions saw, against what the model server sent."""

    tokens: list[float] = field(default_factory=list)
    """Each token, from the server's send to a watcher's receipt, for every watcher."""
    first: list[float] = field(default_factory=list)
    """The first token of each answer, to each watcher."""
    durable: list[float] = field(default_factory=list)
    """Each `model_call` event, from its `created_at` to a watcher's receipt."""
    to_sink: list[float] = field(default_factory=list)
    """Each answer's first token, from the server's send to the worker's delta sink."""
    sink_to_watcher: list[float] = field(default_factory=list)
    """Each answer's first token, from the worker's delta sink to each watcher."""
    committed: list[float] = field(default_factory=list)
    """Each durable event written after the watchers connected, from its commit in the
    worker to a watcher's receipt."""
    to_write: list[float] = field(default_factory=list)
    """Each `model_call` event, from its `created_at` to its `append_event` call (the
    activity's spend write is between)."""
    writing: list[float] = field(default_factory=list)
    """Each `model_call` event, from its `append_event` call to its commit."""
    stalls: list[str] = field(default_factory=list)
    """What this process's main thread was running each time its loop had not ticked for
    `STALL_S` (one sample per stall, innermost frames of ours and of the libraries)."""
    collections: list[tuple[int, float]] = field(default_factory=list)
    """Each garbage collection in this process while the sessions streamed: its
    generation and how long it took."""
    loop_lag: list[float] = field(default_factory=list)
    """How late a 1 ms timer in this process's event loop (the worker's, and the
    watchers' unless `--watchers-process`) fired, each tick from the approvals that let
    the sessions stream to the end of the last session:
    what every token read or sent on that loop waited at least."""
    lost: int = 0
    api_rss_kib: tuple[int, int] = (0, 0)
    """The API process's resident memory before and with the watchers connected."""
    api_cpu_s: float = 0.0
    """CPU time the API process used from the approvals to the last watcher's end."""
    watchers: int = 0
    by_round: list[dict[str, float]] = field(default_factory=list)
    """Each pooled round's first-token and every-token p95 (ms): how much one round's
    tail moves the pooled one."""

    def add(self, other: Watched) -> None:
        """Pool another round's figures into these."""
        self.tokens.extend(other.tokens)
        self.first.extend(other.first)
        self.durable.extend(other.durable)
        self.committed.extend(other.committed)
        self.to_sink.extend(other.to_sink)
        self.sink_to_watcher.extend(other.sink_to_watcher)
        self.to_write.extend(other.to_write)
        self.writing.extend(other.writing)
        self.loop_lag.extend(other.loop_lag)
        self.collections.extend(other.collections)
        self.stalls.extend(other.stalls)
        self.lost += other.lost
        self.api_cpu_s += other.api_cpu_s
        self.watchers += other.watchers
        self.by_round.append(
            {
                "first_token_p95_ms": Stats.of(other.first).p95_ms,
                "every_token_p95_ms": Stats.of(other.tokens).p95_ms,
            }
        )
        if not self.api_rss_kib[1]:
            self.api_rss_kib = other.api_rss_kib

    def figures(self) -> dict[str, Any]:
        """The crowd's figures, as the results file has them."""
        before, during = self.api_rss_kib
        return {
            "first_token_to_watcher": vars(Stats.of(self.first)),
            "every_token_to_watcher": vars(Stats.of(self.tokens)),
            "first_token_to_worker_sink": vars(Stats.of(self.to_sink)),
            "first_token_worker_sink_to_watcher": vars(Stats.of(self.sink_to_watcher)),
            "durable_event_committed_to_delivered": vars(Stats.of(self.committed)),
            "model_call_created_to_delivered": vars(Stats.of(self.durable)),
            "model_call_created_to_append": vars(Stats.of(self.to_write)),
            "model_call_append_to_committed": vars(Stats.of(self.writing)),
            "bench_loop_lag": vars(Stats.of(self.loop_lag or [0.0])),
            "bench_full_collections_ms": [
                round(s * 1000, 1) for g, s in self.collections if g == 2
            ],
            "bench_young_collections_ms": {
                "total": round(1000 * sum(s for g, s in self.collections if g < 2), 1),
                "longest": round(
                    1000 * max((s for g, s in self.collections if g < 2), default=0.0), 1
                ),
            },
            "bench_loop_stalls": _stall_summary(self.stalls),
            "tokens_lost": self.lost,
            "p95_by_round": self.by_round,
            "api_rss_kib_per_watcher": round((during - before) / max(self.watchers, 1), 1),
            "api_cpu_us_per_token_delivered": round(
                1e6 * self.api_cpu_s / max(len(self.tokens), 1), 1
            ),
        }


class FirstDeltas:
    """When this process's worker handed the first delta of each session to its delta
    publisher (monotonic), by session id: it wraps the publisher's `sink`, so a first
    token's way splits at the worker (the server's send to the worker's sink, the sink
    to each watcher) without touching the runtime."""

    def __init__(self, publisher: DeltaPublisher | None) -> None:
        self.at: dict[str, float] = {}
        if publisher is None:
            return
        make = publisher.sink

        def sink(tags: Tags) -> Callable[[ProviderDelta], Awaitable[None]]:
            inner = make(tags)

            async def on_delta(delta: ProviderDelta) -> None:
                self.at.setdefault(tags.session_id, time.monotonic())
                await inner(delta)

            return on_delta

        publisher.sink = sink  # type: ignore[method-assign]


class Commits:
    """When this process's worker called the store to append each audit event and when the
    call returned (committed), wall clock, by event key: it wraps the two append methods
    of the worker's `Store`."""

    def __init__(self, store: Store) -> None:
        self.at: dict[str, tuple[float, float]] = {}
        one, many = store.append_event, store.append_events

        async def append_event(event: AuditEvent) -> bool:
            began = time.time()
            written = await one(event)
            self.at[event.event_key] = (began, time.time())
            return written

        async def append_events(events: Any, **more: Any) -> list[bool]:
            began = time.time()
            written = await many(events, **more)
            done = time.time()
            for event in events:
                self.at[event.event_key] = (began, done)
            return written

        store.append_event = append_event  # type: ignore[method-assign]
        store.append_events = append_events  # type: ignore[method-assign]


STALL_S = 0.02
"""A loop that has not ticked for this long is stalled: `LoopLag` samples what it runs."""


def _where(frame: Any) -> str:
    """A thread's stack as its innermost six frames, `file:function` each."""
    names = []
    while frame is not None and len(names) < 6:
        names.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(names)


def _stall_summary(stalls: list[str]) -> list[tuple[int, str]]:
    """The stalls' stacks, the most frequent first."""
    counts: dict[str, int] = {}
    for stack in stalls:
        counts[stack] = counts.get(stack, 0) + 1
    return sorted(((n, stack) for stack, n in counts.items()), reverse=True)[:12]


class LoopLag:
    """A 1 ms timer in this process's event loop while it runs: how late each tick fired;
    and each garbage collection meanwhile (the process's threads stop for it), by
    generation."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self.collections: list[tuple[int, float]] = []
        self.stalls: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._began = 0.0
        self._ticked = time.monotonic()
        self._running = False
        self._loop_thread = threading.get_ident()

    def _watch(self) -> None:
        """In a thread: sample the loop's thread once per stall."""
        sampled = 0.0
        while self._running:
            time.sleep(STALL_S / 4)
            ticked = self._ticked
            if time.monotonic() - ticked > STALL_S and ticked != sampled:
                sampled = ticked
                frame = sys._current_frames().get(self._loop_thread)
                self.stalls.append(_where(frame))

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.collections.append((info["generation"], time.perf_counter() - self._began))

    async def _tick(self) -> None:
        while True:
            due = time.monotonic() + 0.001
            await asyncio.sleep(0.001)
            self._ticked = now = time.monotonic()
            self.late.append(max(now - due, 0.0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())
        gc.callbacks.append(self._collecting)
        self._ticked, self._running = time.monotonic(), True
        threading.Thread(target=self._watch, daemon=True).start()

    def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
        self._running = False
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._collecting)
        return self.late


def cpu_seconds(pid: int) -> float:
    """A process's CPU time (user and system), from /proc (Linux): unlike wall time, the
    machine's other load does not inflate it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def watched_sessions(
    env: dict[str, Any],
    api: tuple[str, int],
    stamps: Path,
    answer: str,
    sessions: int,
    watchers: int,
    elsewhere: WatchersProcess | None = None,
) -> Watched:
    """`sessions` live sessions at once, each followed by `watchers` SSE watchers of the
    API process at `api` (its URL and process id): in this process, or in `elsewhere`."""
    client, store, queue = env["client"], env["store"], env["queue"]
    commits: Commits = env["commits"]
    sinks: FirstDeltas = env["sinks"]
    (api_url, api_pid) = api
    cases = [new_case() for _ in range(sessions)]
    handles = await asyncio.gather(
        *(start_session(client, PLAN, {"case": c}, task_queue=queue) for c in cases)
    )
    ids = [h.id.removeprefix("session-") for h in handles]
    pending = await asyncio.gather(*(wait_for_pending_approval(store, i) for i in ids))
    seen = Watched(api_rss_kib=(rss_kib(api_pid), 0), watchers=sessions * watchers)
    cpu_from = released = 0.0
    lag = LoopLag()

    async def connected() -> None:
        """Everyone watches: let the sessions stream."""
        nonlocal cpu_from, released
        released = time.time()
        seen.api_rss_kib = (seen.api_rss_kib[0], rss_kib(api_pid))
        cpu_from = cpu_seconds(api_pid)
        lag.start()
        await asyncio.gather(
            *(
                decide_approval(client, store, p.approval_id, approve=True, decided_by="bench")
                for p in pending
            )
        )
        await asyncio.gather(*(h.result() for h in handles))
        # Every session has ended: what the loop does from here on (decoding what the
        # watchers read, and the garbage it makes) is no token's wait.
        seen.loop_lag = lag.stop()
        seen.collections = lag.collections
        seen.stalls = lag.stalls

    if elsewhere is None:
        got = await watch_crowd(api_url, ids, watchers, connected)
    else:
        got = await elsewhere.watch(api_url, ids, watchers, connected)
    seen.api_cpu_s = cpu_seconds(api_pid) - cpu_from
    for session_id, case, group in zip(ids, cases, got, strict=True):
        sent = await stamps_of(stamps, case)
        sunk = sinks.at.get(session_id)
        if sunk is not None and sent:
            seen.to_sink.append(sunk - sent[0])
        for texts, durable in group:
            delays = [a - s for (a, _), s in zip(texts, sent, strict=False)]
            seen.tokens.extend(delays)
            seen.first.extend(delays[:1])
            if sunk is not None and texts:
                seen.sink_to_watcher.append(texts[0][0] - sunk)
            for kind, key, created, arrived in durable:
                began, done = commits.at.get(key, (0.0, 0.0))
                if kind == "model_call":
                    seen.durable.append(arrived - created)
                    if began:
                        seen.to_write.append(began - created)
                        seen.writing.append(done - began)
                if began > released:
                    seen.committed.append(arrived - done)
            text = "".join(t for _, t in texts)
            seen.lost += max(len(sent) - len(texts), 1) if text != answer else 0
    return seen


def rss_kib(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def written_to_delivered(store: Store, api: str, count: int) -> list[float]:
    """Audit events written one at a time into a watched session: from the write's commit
    (`append_event` returned) to the event's arrival at an SSE watcher."""
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await store.record_session_start(
        SessionRecord(
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="bench",
            plan_name="bench",
            plan_version="1",
            started_at=now,
        )
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    delays: list[float] = []
    async with (
        httpx.AsyncClient(base_url=api, headers=headers, timeout=None) as http,
        http.stream("GET", f"/api/sessions/{session_id}/events") as response,
    ):
        messages = sse_messages(response.aiter_lines())
        for n in range(count + 1):
            await store.append_event(
                AuditEvent(
                    event_key=f"{session_id}:{n}",
                    session_id=session_id,
                    workflow_id=f"session-{session_id}",
                    run_id="bench",
                    kind=EventKind.STEP_STARTED,
                    created_at=datetime.now(UTC),
                )
            )
            written = time.monotonic()
            while (await anext(messages)).event != "message":
                pass
            if n:  # the first one waited for the watcher's connection too
                delays.append(time.monotonic() - written)
    return delays


async def bench(
    sessions: int,
    words: int,
    interval: float,
    crowd_sessions: int,
    crowd_watchers: int,
    against: Path | None = None,
    rounds: int = 1,
    watchers_process: bool = False,
    against_switch: float | None = None,
    gc_freeze: bool = False,
) -> dict[str, Any]:
    answer = answer_text(words)
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        folder = Path(tmp)
        script, stamps = write_script(folder, answer), folder / "stamps.jsonl"
        stamps.touch()
        approvers = folder / "approvers.yaml"
        approvers.write_text(f"users:\n  bench:\n    tokens: ['{hash_token(TOKEN)}']\n")
        model_port, api_port, other_port = free_port(), free_port(), free_port()
        base_url = f"http://127.0.0.1:{model_port}/v1"
        os.environ["ORCHESTRATOR_REPLAY_URL"] = base_url
        server = BenchDevServer(TUNED, folder)
        await server.start()
        settings = Settings(
            project_dir=REPO,
            state_dir=folder / "state",
            temporal_address=server.address,
            task_queue=f"stream-{uuid.uuid4().hex[:8]}",
            log_level="WARNING",
        )
        child_env = {
            **os.environ,
            "ORCHESTRATOR_PROJECT_DIR": str(REPO),
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_TEMPORAL_ADDRESS": server.address,
            "ORCHESTRATOR_APPROVERS_FILE": str(approvers),
            "ORCHESTRATOR_LOG_LEVEL": "WARNING",
        }
        model_cmd = [sys.executable, __file__, "--serve-model", str(script), str(model_port)]
        model_cmd += [str(interval), str(stamps)]
        api_cmd = [sys.executable, "-m", "orchestrator", "api", "--port"]
        # Run from the scratch folder: `python -m` puts the working folder first on the path.
        this_env = {**child_env, "PYTHONPATH": str(REPO)}
        other_env = {**child_env, "PYTHONPATH": str(against)}
        try:
            runtime = await Runtime.open(settings)
            switch = sys.getswitchinterval()  # as the runtime left it
            client = await connect(settings)
            async with (
                process(model_cmd, child_env, "serving"),
                process([*api_cmd, str(api_port)], this_env, "api on", folder) as api_proc,
                contextlib.AsyncExitStack() as more,
                build_worker(client, runtime),
            ):
                env = {
                    "client": client,
                    "store": runtime.store,
                    "queue": settings.task_queue,
                    "commits": Commits(runtime.store),
                    "sinks": FirstDeltas(runtime.deltas),
                }
                api = (f"http://127.0.0.1:{api_port}", api_proc.pid)
                elsewhere = None
                if watchers_process:
                    elsewhere = WatchersProcess(
                        await more.enter_async_context(
                            process(
                                [sys.executable, __file__, "--watchers-process"]
                                + (["--httpx-watchers"] if HTTPX_WATCHERS else []),
                                child_env,
                                "ready",
                                stdin=True,
                            )
                        )
                    )
                other: tuple[str, int] | None = None
                if against is not None:
                    other_proc = await more.enter_async_context(
                        process([*api_cmd, str(other_port)], other_env, "api on", folder)
                    )
                    other = (f"http://127.0.0.1:{other_port}", other_proc.pid)
                    await watched_sessions(env, other, stamps, answer, 1, 1)  # warm it up
                await watched_sessions(env, api, stamps, answer, 1, 1)  # warm both paths up
                await direct(base_url, stamps)
                if gc_freeze:
                    # What the worker's process holds now, out of every collection, as
                    # `orchestrator worker` and `orchestrator dev` do once they are up.
                    settle_heap()
                first_d, all_d, ttft_d = [], [], []
                one = Watched()
                for _ in range(sessions):
                    tokens, ttft = await direct(base_url, stamps)
                    first_d.append(tokens[0])
                    all_d.extend(tokens)
                    ttft_d.append(ttft)
                    seen = await watched_sessions(env, api, stamps, answer, 1, 1)
                    one.tokens.extend(seen.tokens)
                    one.first.extend(seen.first)
                    one.durable.extend(seen.durable)
                    one.lost += seen.lost
                committed = await written_to_delivered(runtime.store, api[0], sessions * 5)
                crowd, crowd_other = Watched(), Watched()
                for n in range(rounds):
                    turns: list[tuple[Watched, tuple[str, int] | None]] = [
                        (crowd, api),
                        (crowd_other, other),
                    ]
                    for pooled, where in turns if n % 2 == 0 else turns[::-1]:
                        if where is None:
                            continue
                        kept = sys.getswitchinterval()
                        if where is other and against_switch is not None:
                            sys.setswitchinterval(against_switch)
                        try:
                            pooled.add(
                                await watched_sessions(
                                    env,
                                    where,
                                    stamps,
                                    answer,
                                    crowd_sessions,
                                    crowd_watchers,
                                    elsewhere,
                                )
                            )
                        finally:
                            sys.setswitchinterval(kept)
            await runtime.close()
        finally:
            await server.stop()
    first_direct, first_stack = Stats.of(first_d), Stats.of(one.first)
    every_direct, every_stack = Stats.of(all_d), Stats.of(one.tokens)
    watchers = crowd_sessions * crowd_watchers
    result: dict[str, Any] = {
        "machine": await machine(),
        "sessions": sessions,
        "tokens_per_answer": words + 1,
        "interval_ms": interval * 1000,
        "first_token_to_client": {"direct": vars(first_direct), "stack": vars(first_stack)},
        "every_token_to_client": {"direct": vars(every_direct), "stack": vars(every_stack)},
        "added_by_stack_ms": {
            "first_token_p50": round(first_stack.median_ms - first_direct.median_ms, 2),
            "first_token_p95": round(first_stack.p95_ms - first_direct.p95_ms, 2),
            "per_token_p50": round(every_stack.median_ms - every_direct.median_ms, 2),
            "per_token_p95": round(every_stack.p95_ms - every_direct.p95_ms, 2),
        },
        "ratio_stack_to_direct": {
            "first_token_p50": round(first_stack.median_ms / first_direct.median_ms, 2),
            "per_token_p50": round(every_stack.median_ms / every_direct.median_ms, 2),
        },
        "direct_request_to_first_token": vars(Stats.of(ttft_d)),
        "durable_event_committed_to_delivered": vars(Stats.of(committed)),
        "model_call_created_to_delivered": vars(Stats.of(one.durable)),
        "tokens_lost": one.lost,
        # Watchers in the bench's process that saw a model call's retry take over (a
        # retried call's tokens are kept, its failed attempt's dropped; not counted lost).
        "retried_attempts_seen": len(RETRIED_ATTEMPTS),
        "crowd": {
            "sessions": crowd_sessions,
            "watchers": watchers,
            "rounds": rounds,
            "bench_switch_interval_s": switch,
            "gc_frozen_after_warm_up": gc_freeze,
            "watchers_in": "a process of their own"
            if watchers_process
            else "the bench's process (with the worker)",
            **crowd.figures(),
        },
        "temporal_workflow_streams_round_trip_ms": "about 100 (issue 13, not measured here)",
    }
    if against is not None:
        theirs, ours = crowd_other.figures(), crowd.figures()
        result["crowd_against"] = {
            "tree": str(against),
            "bench_switch_interval_s": against_switch,
            **theirs,
        }
        result["crowd_ratio_against_to_this"] = {
            f"{what}_{stat}": round(theirs[what][stat] / ours[what][stat], 2)
            for what in ("first_token_to_watcher", "every_token_to_watcher")
            for stat in ("median_ms", "p95_ms")
        } | {
            "api_cpu_per_token": round(
                theirs["api_cpu_us_per_token_delivered"] / ours["api_cpu_us_per_token_delivered"],
                2,
            )
        }
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-model":
        script, port, interval, stamps = sys.argv[2:6]
        asyncio.run(serve_model(Path(script), int(port), float(interval), Path(stamps)))
        return
    global HTTPX_WATCHERS
    if len(sys.argv) > 1 and sys.argv[1] == "--watchers-process":
        HTTPX_WATCHERS = "--httpx-watchers" in sys.argv[2:]
        print("ready", flush=True)
        asyncio.run(serve_watchers())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--words", type=int, default=120, help="tokens per answer, about")
    parser.add_argument("--interval", type=float, default=2.0, help="ms between SSE events")
    parser.add_argument("--crowd-sessions", type=int, default=50, help="live at once")
    parser.add_argument("--crowd-watchers", type=int, default=4, help="per crowd session")
    parser.add_argument(
        "--against",
        type=Path,
        help="another source tree (e.g. an unpacked `git archive` of an older commit): its"
        " `orchestrator api` runs beside this tree's, and the crowd alternates between them",
    )
    parser.add_argument("--rounds", type=int, default=1, help="crowd rounds per API process")
    parser.add_argument(
        "--against-switch-interval",
        type=float,
        help="seconds: this process's GIL switch interval (the worker's and the watchers')"
        " during the --against tree's crowd rounds, e.g. 0.005 (CPython's default) to"
        " compare with a tree that does not lower it",
    )
    parser.add_argument(
        "--watchers-process",
        action="store_true",
        help="run the crowd's watchers in a process of their own instead of the bench's"
        " (where the worker runs too)",
    )
    parser.add_argument(
        "--httpx-watchers",
        action="store_true",
        help="the crowd's watchers parse with httpx as the bytes come (before 2026-12-06:"
        " their own CPU then queues the tokens they time) instead of stamping raw reads",
    )
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="leave the bench's process (the worker) with Python's collector defaults; by"
        " default it calls settle_heap after the warm-up (gc.freeze, young threshold"
        " 20,000), as `orchestrator worker` and `orchestrator dev` do once they are up",
    )
    args = parser.parse_args()
    HTTPX_WATCHERS = args.httpx_watchers
    configure_logging(level="WARNING", fmt="json")
    result = asyncio.run(
        bench(
            args.sessions,
            args.words,
            args.interval / 1000,
            args.crowd_sessions,
            args.crowd_watchers,
            args.against.resolve() if args.against else None,
            args.rounds,
            args.watchers_process,
            args.against_switch_interval,
            args.gc_freeze,
        )
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
