"""A local model server that answers OpenAI and Anthropic model requests from a script.

Demos and tests use it instead of a real provider: it speaks the same protocols
(`/v1/chat/completions` and `/v1/messages`, streamed as the real APIs stream, and
`/v1/models`) over real HTTP on loopback, so the provider code under test is the code that
runs in production, and it answers statelessly, so a model call retried after a worker
crash gets the same answer.
A script can also inject provider faults per call (`Fault`): error statuses, timeouts,
resets, bodies or streams cut short, bodies that are not JSON.

Run it standalone with `python -m orchestrator.scripted_model SCRIPT --port 8765`, or in-process:

```python
async with ScriptedModelServer(Path("model_scripts/customer_refund.yaml")) as replay:
    provider = OpenAIProvider(base_url=replay.base_url)
```
"""

from orchestrator.scripted_model.faults import Fault
from orchestrator.scripted_model.script import (
    Conversation,
    ConversationMatch,
    ReplayScript,
    ScriptedToolCall,
    ScriptedUsage,
    Turn,
    load_model_script,
)
from orchestrator.scripted_model.server import (
    LoopbackServer,
    ScriptedModelServer,
    ServedRequest,
    create_replay_app,
)

__all__ = [
    "Conversation",
    "ConversationMatch",
    "Fault",
    "LoopbackServer",
    "ReplayScript",
    "ScriptedModelServer",
    "ScriptedToolCall",
    "ScriptedUsage",
    "ServedRequest",
    "Turn",
    "create_replay_app",
    "load_model_script",
]
