"""A local model server that answers OpenAI chat-completions requests from a script.

Demos and tests use it instead of a real provider: it speaks the same protocol over real
HTTP on loopback, so the provider code under test is the code that runs in production, and
it answers statelessly, so a model call retried after a worker crash gets the same answer.
A script can also inject provider faults per call (`Fault`): error statuses, timeouts,
resets, bodies cut short or not JSON.

Run it standalone with `python -m orchestrator.replay SCRIPT --port 8765`, or in-process:

```python
async with ReplayServer(Path("replays/customer_refund.yaml")) as replay:
    provider = OpenAIProvider(base_url=replay.base_url)
```
"""

from orchestrator.replay.faults import Fault
from orchestrator.replay.script import (
    Conversation,
    ConversationMatch,
    ReplayScript,
    ScriptedToolCall,
    ScriptedUsage,
    Turn,
    load_replay_script,
)
from orchestrator.replay.server import (
    LoopbackServer,
    ReplayServer,
    ServedRequest,
    create_replay_app,
)

__all__ = [
    "Conversation",
    "ConversationMatch",
    "Fault",
    "LoopbackServer",
    "ReplayScript",
    "ReplayServer",
    "ScriptedToolCall",
    "ScriptedUsage",
    "ServedRequest",
    "Turn",
    "create_replay_app",
    "load_replay_script",
]
