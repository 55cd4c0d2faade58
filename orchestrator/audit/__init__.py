"""The audit trail read back: a session's story, spend reports, the asset inventory.

Everything here reads; nothing writes. Stories and spend come from the store (the record
of what ran), the inventory from the project's files (what could run).
"""

from orchestrator.audit.cost import CostGroup, cost_report, spend_by_skill
from orchestrator.audit.inventory import Asset, AssetKind, build_inventory
from orchestrator.audit.story import SessionStory, build_story

__all__ = [
    "Asset",
    "AssetKind",
    "CostGroup",
    "SessionStory",
    "build_inventory",
    "build_story",
    "cost_report",
    "spend_by_skill",
]
