"""`relay.forwardable`'s cost per body, in microseconds, of the tree this runs in.

Each body of `tests/gateway/sdk_bodies.json` (what agent frameworks send), best of five runs
of 2,000 calls. Run it in two trees' folders in turn to compare them (bench/README.md).
"""

import json
import sys
import timeit

from orchestrator.gateway.relay import forwardable

bodies = json.load(open(sys.argv[1]))
out = []
for entry in bodies:
    body = entry["body"]
    n = 2000
    t = min(timeit.repeat(lambda: forwardable(body), number=n, repeat=5)) / n * 1e6
    out.append(round(t, 2))
print(json.dumps(out))
