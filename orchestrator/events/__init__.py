"""The live event stream of sessions: durable events exactly once, deltas best effort.

Durable events are the session's audit rows, numbered per session by `seq` as the store
writes them (`orchestrator.store.event_seq`); a watcher resumes after the last `seq` it
saw and misses nothing, sees nothing twice. Deltas are pieces of model answers while they
stream, sent by the worker (`DeltaPublisher`) and never stored.

- `live_hub(store, state_dir)`: a process's `EventHub`, fed by the store's notices
  (SQLite: the worker's notices and deltas over loopback UDP, a 0.1 s poll behind them;
  PostgreSQL: `LISTEN`/`NOTIFY`).
- `session_routes(hub, directory)`: `GET /api/sessions/{id}` and its SSE `events`.
- `EventHub.watch(session_id, after=N)`: the same stream in Python.
"""

from orchestrator.events.api import session_routes
from orchestrator.events.hub import EventHub, Watch
from orchestrator.events.live import live_hub
from orchestrator.events.models import TERMINAL_KINDS, Dropped, StreamDelta, StreamItem
from orchestrator.events.publisher import DeltaPublisher, Tags

__all__ = [
    "TERMINAL_KINDS",
    "DeltaPublisher",
    "Dropped",
    "EventHub",
    "StreamDelta",
    "StreamItem",
    "Tags",
    "Watch",
    "live_hub",
    "session_routes",
]
