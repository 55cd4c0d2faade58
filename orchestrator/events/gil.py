"""A shorter GIL switch interval for the processes that carry live streams.

A worker and an API process each run their event loop beside threads that run Python:
aiosqlite's one thread per pooled connection, Temporal's workflow-task threads. When
the loop's thread wakes for a token (a provider's SSE chunk, a delta datagram, a
watcher's socket), it must take the GIL back from whichever of those threads holds it,
and CPython makes the holder give it up only after the switch interval, 5 ms by default.
Under a crowd some thread nearly always holds it, so every wake-up of the loop waited
up to 5 ms, and a token crosses two such loops (the worker's and the API's): the median
2 to 3 ms from the model server's send to the worker's sink, in `bench/stream.py`'s
crowd, was mostly that wait (bench/README.md, `stream.py`). A 1 ms interval bounds it to
1 ms per wake-up, for a little more switching between threads that were going to share
the CPU anyway.

The setting is the interpreter's, so it is only ever lowered here, never raised: a
process that chose a shorter interval keeps it.
"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["SWITCH_INTERVAL_S", "favour_event_loop"]

SWITCH_INTERVAL_S: Final = 0.001
"""The GIL switch interval of a process that streams (CPython's default is 0.005 s)."""


def favour_event_loop(interval: float = SWITCH_INTERVAL_S) -> float:
    """Lower the interpreter's GIL switch interval to `interval` if it is longer.

    Returns the interval in force afterwards.
    """
    if sys.getswitchinterval() > interval:
        sys.setswitchinterval(interval)
    return sys.getswitchinterval()
