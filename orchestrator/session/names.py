"""The workflow's stable names, re-exported from `orchestrator.names`, where they live.

The session's modules import them from here as before; clients outside the session
(the approvals surfaces) import `orchestrator.names`, so they need nothing of it.
"""

from __future__ import annotations

from orchestrator.names import *  # noqa: F403 (every name, spelled once over there)
from orchestrator.names import __all__ as __all__
