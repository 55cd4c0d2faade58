"""The processes that carry live streams shorten the GIL switch interval, never lengthen it.

Why it matters is in `orchestrator/events/gil.py`: an event loop that wakes for a token
waits for the thread holding the GIL for up to the switch interval.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.events import live_hub
from orchestrator.events.gil import SWITCH_INTERVAL_S, favour_event_loop
from orchestrator.events.publisher import DeltaPublisher
from orchestrator.store import Store


@pytest.fixture
def default_interval() -> Iterator[None]:
    """CPython's default interval for the test, the interpreter's own back after it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_a_longer_interval_is_lowered_and_a_shorter_one_kept(default_interval: None) -> None:
    assert favour_event_loop() == pytest.approx(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    sys.setswitchinterval(SWITCH_INTERVAL_S / 4)
    assert favour_event_loop() == pytest.approx(SWITCH_INTERVAL_S / 4)


async def test_a_workers_publisher_lowers_it(default_interval: None, tmp_path: Path) -> None:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}") as store:
        publisher = DeltaPublisher.for_store(store, tmp_path / "state")
        try:
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        finally:
            await publisher.close()


async def test_a_watching_process_lowers_it(default_interval: None, store: Store) -> None:
    async with live_hub(store, None):
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
