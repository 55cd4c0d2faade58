"""Approvals, first form: binding hashes; the wait itself lives in the session workflow."""

from orchestrator.approvals.binding import approval_id_for, binding_hash

__all__ = ["approval_id_for", "binding_hash"]
