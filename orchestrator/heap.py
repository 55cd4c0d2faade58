"""The garbage collector's settings for a long-lived serving process.

A worker, an API process and a gateway each build a large heap at startup (modules,
pydantic and SQLAlchemy schemas, the models and keys files, the workflow sandbox's
passed-through modules) that lives as long as the process. Python's collector walked all of
it again on every full pass: about 0.2 ms of CPU per request in the gateway at 200
concurrent clients, and 1.5 ms per step in a worker running 100 gated sessions (1.0 ms of it
full passes; bench/README.md, "load.py"). `settle_heap` is called once, after startup.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GC_THRESHOLD", "settle_heap"]

YOUNG_GC_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def settle_heap() -> None:
    """Take what the process built at startup out of the garbage collector's sight.

    `gc.freeze` moves every object alive now to a generation the collector skips; a larger
    first-generation threshold lets a request's or an activation's short-lived objects die by
    reference count before a pass starts. Cycles are still collected, a little later.
    Objects frozen here stay for the process's life, which is what startup objects do anyway.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
