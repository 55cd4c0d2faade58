"""Which path each upstream call of a gateway under test takes, for the relay's tests.

`Upstreams.relay` sends the client's body as `relay.forwardable` wrote it; `complete`
sends the parsed conversation. The spies call the real methods: nothing else changes.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.gateway.upstream import Upstreams

__all__ = ["paths_taken"]


def paths_taken(monkeypatch: pytest.MonkeyPatch, forwarding: bool = True) -> list[str]:
    """The names (`relay`, `complete`) of the upstream calls made from now on, in order.

    With `forwarding` off no deployment takes a forwarded body: every call takes the full
    path, as it would for a body `forwardable` refuses.
    """
    taken: list[str] = []
    for name in ("relay", "complete"):
        real = getattr(Upstreams, name)

        async def spy(self: Upstreams, *args: Any, _real: Any = real, _name: str = name) -> Any:
            taken.append(_name)
            return await _real(self, *args)

        monkeypatch.setattr(Upstreams, name, spy)
    if not forwarding:
        monkeypatch.setattr(Upstreams, "forwards", lambda self, deployment: False)
    return taken
