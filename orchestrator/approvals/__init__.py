"""Approvals: the domain the session's gate and every surface share.

`types` (the payloads that cross the workflow boundary), `rules` (who may decide or
delegate, what a decision holds, the policy) and `binding` (the hash that ties a
decision to one action) are what the session imports; the surfaces (`api`, `inbox`,
the CLI) call the same rules. Nothing here imports `orchestrator.session`.
"""

from orchestrator.approvals.binding import approval_id_for, binding_hash

__all__ = ["approval_id_for", "binding_hash"]
