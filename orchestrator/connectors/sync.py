"""`orchestrator connectors sync`: contract files from a server's tool definitions.

For each bound tool, the contract gets the tool's schemas, a risk level from its
annotations and the connector's trust, and the hash of its definition. A tool whose
definition is unchanged keeps its file as it is (the engineer's edits stay); a changed
one gets a new major version, and the old version is marked deprecated, so no session
runs a definition nobody reviewed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mcp_types as types
import yaml

from orchestrator.connectors.client import connect, definition_hash, offered_tools
from orchestrator.connectors.models import Connector
from orchestrator.exceptions import ConfigError
from orchestrator.skills.models import RiskLevel
from orchestrator.types import JsonObject

__all__ = ["SyncedTool", "risk_for", "sync_connector"]

TEXT_OUTPUT: JsonObject = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
"""The output schema of a tool that declares none: its text content, joined."""


@dataclass(frozen=True)
class SyncedTool:
    """What sync did for one tool."""

    skill: str
    version: str
    path: Path
    change: str
    """`new`, `unchanged` or `changed` (a new major version; the old one deprecated)."""


def risk_for(annotations: types.ToolAnnotations | None, connector: Connector) -> RiskLevel:
    """The risk level of a tool from its annotations and the connector's trust.

    The operator's floor (`default_risk`) is lowered only by a trusted server's
    `readOnlyHint`; `destructiveHint` and `openWorldHint` raise it.
    """
    hints = annotations or types.ToolAnnotations()
    read_only = hints.read_only_hint is True
    risk = connector.default_risk
    if read_only and connector.trusted:
        risk = RiskLevel.READ_ONLY
    raised = []
    if hints.destructive_hint is True and not (read_only and connector.trusted):
        raised.append(RiskLevel.IRREVERSIBLE_WRITE)
    if hints.open_world_hint is True and not read_only:
        raised.append(RiskLevel.EXTERNAL_SIDE_EFFECT)
    return max([risk, *raised], key=lambda level: level.rank)


def _contract(
    connector: Connector, tool: types.Tool, skill: str, version: str
) -> dict[str, object]:
    hints = tool.annotations or types.ToolAnnotations()
    contract: dict[str, object] = {
        "name": skill,
        "version": version,
        "description": tool.description or f"{tool.name} from MCP server {connector.name}",
        "implementation": f"mcp:{connector.name}/{tool.name}",
        "risk": risk_for(tool.annotations, connector).value,
        "idempotency": {"idempotent": hints.idempotent_hint is True},
    }
    if connector.owner:
        contract["owner"] = connector.owner
    contract["mcp"] = {
        "tool": tool.name,
        "definition_sha256": definition_hash(tool),
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema or TEXT_OUTPUT,
    }
    return contract


def _existing(folder: Path, skill: str) -> list[tuple[tuple[int, ...], Path, dict[str, object]]]:
    found = []
    for path in folder.glob(f"{skill}@*.contract.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            version = tuple(int(p) for p in str(data.get("version", "0.0.0")).split("."))
            found.append((version, path, data))
    return sorted(found, key=lambda item: item[0])


def _write(path: Path, contract: dict[str, object], connector: Connector) -> None:
    header = (
        f"# Written by `orchestrator connectors sync` from connector {connector.name}."
        " Review it; edits to risk,\n# approval, timeout and retry stay until the tool's"
        " definition changes.\n"
    )
    # Written aside and renamed over: a running worker re-reads synced contracts when they
    # change (`SkillRegistry.refresh`) and must never see half a file.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(header + yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    os.replace(partial, path)


async def sync_connector(connector: Connector, project_dir: Path) -> list[SyncedTool]:
    """Write or update the contract of every bound tool of one connector.

    Raises:
        ConfigError: the server does not offer a tool the connector binds.
    """
    async with connect(connector, project_dir) as client:
        offered = await offered_tools(client)
    folder = project_dir / "skills" / "mcp" / connector.name
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for bound in connector.tools:
        tool = offered.get(bound.tool)
        if tool is None:
            raise ConfigError(
                f"connector {connector.name}: the server offers no tool {bound.tool!r}"
                f" (it offers: {', '.join(sorted(offered)) or 'none'})"
            )
        skill = connector.skill_name(bound)
        versions = _existing(folder, skill)
        digest = definition_hash(tool)
        if not versions:
            path = folder / f"{skill}@1.0.0.contract.yaml"
            _write(path, _contract(connector, tool, skill, "1.0.0"), connector)
            results.append(SyncedTool(skill, "1.0.0", path, "new"))
            continue
        latest_version, latest_path, latest = versions[-1]
        pin = latest.get("mcp")
        if isinstance(pin, dict) and pin.get("definition_sha256") == digest:
            version = ".".join(map(str, latest_version))
            results.append(SyncedTool(skill, version, latest_path, "unchanged"))
            continue
        version = f"{latest_version[0] + 1}.0.0"
        path = folder / f"{skill}@{version}.contract.yaml"
        _write(path, _contract(connector, tool, skill, version), connector)
        latest["deprecated"] = f"the server changed {tool.name}; use {skill} {version}"
        _write(latest_path, latest, connector)
        results.append(SyncedTool(skill, version, path, "changed"))
    return results
