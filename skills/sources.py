"""The research-summary example's skill: read one source document by id.

Contract: `sources.read@1.0.0.contract.yaml` beside this module; the documents are in
`data/sources.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext

DATA = Path(__file__).parent / "data" / "sources.json"


class SourceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: str = Field(pattern=r"^S-\d+$")


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: str
    title: str
    text: str


async def read(args: SourceRef, ctx: SkillContext) -> Source:
    """Read one source document (e.g. S-1): its title and text."""
    data: dict[str, dict[str, str]] = json.loads(DATA.read_text())
    if args.source_id not in data:
        raise LookupError(f"no source {args.source_id}")
    return Source(source_id=args.source_id, **data[args.source_id])
