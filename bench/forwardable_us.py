"""`relay.forwardable`'s cost per body, in microseconds, of the tree this runs in.

Each body of `tests/gateway/sdk_bodies.json` (what agent frameworks send), best of five runs
of 2,000 calls. Run it in two trees' folders in turn to compare them (bench/README.md).
"""

import json
import sys
import timeit
from pathlib import Path
from typing import Any

from orchestrator.gateway.relay import forwardable


def cost_us(body: Any, n: int = 2000) -> float:
    """Best of five runs of `n` calls, per call."""
    return min(timeit.repeat(lambda: forwardable(body), number=n, repeat=5)) / n * 1e6


if __name__ == "__main__":
    bodies = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps([round(cost_us(entry["body"]), 2) for entry in bodies]))
