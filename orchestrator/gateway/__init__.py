"""A session-aware model gateway: OpenAI- and Anthropic-compatible `/v1` endpoints.

Agents written with any framework call the gateway as they would call OpenAI or
Anthropic; their calls go through the same router, pins, budgets and audit trail as the
runtime's plans. A session is named by a header or fingerprinted from its opening
messages; inside an open tool loop the pinned deployment answers, and the router chooses
again only at a safe boundary. Pins, budget reservations and audit rows live in the store,
so gateway processes are stateless and can be many.

```python
gateway = Gateway(registry, GatewayKeys.load(path), store)
app = gateway_app(gateway)            # mount at /v1
```
"""

from orchestrator.gateway.app import gateway_app, gateway_routes
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.keys import GatewayKey, GatewayKeys
from orchestrator.gateway.service import AUTO, Gateway
from orchestrator.gateway.sessions import SESSION_HEADERS, Boundary, identify, in_tool_loop

__all__ = [
    "AUTO",
    "SESSION_HEADERS",
    "Boundary",
    "Gateway",
    "GatewayKey",
    "GatewayKeys",
    "GatewaySettings",
    "gateway_app",
    "gateway_routes",
    "identify",
    "in_tool_loop",
]
