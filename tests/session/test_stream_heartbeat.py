"""The model-call activity heartbeats while its answer streams in, throttled from its start."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from orchestrator.providers import ModelDelta
from orchestrator.session.activities import _heartbeating, beating_sink

DELTAS = [ModelDelta(kind="text", text=f"piece {i} ") for i in range(5)]


def _environment(heartbeat: timedelta | None) -> tuple[ActivityEnvironment, list[int]]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=heartbeat)
    beats: list[int] = []
    env.on_heartbeat = lambda *details: beats.append(len(details))
    return env, beats


async def _stream(every: float, published: list[ModelDelta]) -> None:
    async def publish(delta: ModelDelta) -> None:
        published.append(delta)

    sink = beating_sink(publish, every=every)
    for delta in DELTAS:
        await sink(delta)


async def test_every_delta_may_beat_and_is_passed_on() -> None:
    env, beats = _environment(timedelta(seconds=10))
    published: list[ModelDelta] = []
    await env.run(_stream, 0.0, published)
    assert len(beats) == len(DELTAS)
    assert published == DELTAS


async def test_beats_are_throttled() -> None:
    env, beats = _environment(timedelta(seconds=10))
    published: list[ModelDelta] = []
    await env.run(_stream, math.inf, published)
    assert published == DELTAS
    # Not even the first delta beats: the first beat is due `every` after the sink was
    # made, so an answer streamed sooner costs no heartbeat call to the server.
    assert beats == []


async def test_no_beats_without_a_heartbeat_timeout() -> None:
    env, beats = _environment(None)
    published: list[ModelDelta] = []
    await env.run(_stream, 0.0, published)
    assert beats == []
    assert published == DELTAS


async def test_a_long_call_beats_every_third_of_its_timeout_until_it_ends() -> None:
    env, beats = _environment(timedelta(seconds=0.15))
    second = asyncio.Event()

    def beat(*details: object) -> None:
        beats.append(len(details))
        if len(beats) > 1:
            second.set()

    env.on_heartbeat = beat

    async def call() -> int:
        async with _heartbeating():
            await second.wait()  # a call that lasts two beats (0.05 s apart)
        return len(beats)

    assert await env.run(call) >= 2
