"""An `mcp:connector/tool` contract bound to a call through the connector.

Arguments and output are checked against the schemas pinned in the contract (JSON
Schema), and every call first compares the server's current definition of the tool with
the pinned hash: a changed tool is refused, without retries, until it is re-synced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types as types
from pydantic import RootModel
from temporalio.exceptions import ApplicationError

from orchestrator.connectors.client import connect, definition_hash
from orchestrator.connectors.models import load_connector
from orchestrator.exceptions import SkillArgumentsError, SkillDefinitionError, SkillOutputError
from orchestrator.skills.contract import Contract, McpPin
from orchestrator.skills.models import SkillContext
from orchestrator.skills.skill import Skill, spec_for
from orchestrator.types import JsonObject

__all__ = ["TOOL_CHANGED", "McpArguments", "McpSkill", "bind_mcp"]

TOOL_CHANGED = "McpToolDefinitionChanged"
"""The error type of a call refused because the server's tool no longer matches its pin."""


class McpArguments(RootModel[dict[str, Any]]):
    """The arguments of an MCP tool call, checked against the pinned JSON Schema."""


class McpOutput(RootModel[dict[str, Any]]):
    """The structured output of an MCP tool call."""


def _fault(exc: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in exc.absolute_path) or "<root>"
    return f"{where}: {exc.message}"


@dataclasses.dataclass(frozen=True)
class McpSkill(Skill[McpArguments, McpOutput]):
    """A skill whose implementation is a tool on an MCP server."""

    pin: McpPin | None = None

    def validate_arguments(self, arguments: JsonObject) -> McpArguments:
        """Check arguments against the pinned input schema (JSON Schema 2020-12)."""
        assert self.pin is not None
        errors = sorted(
            jsonschema.Draft202012Validator(self.pin.input_schema).iter_errors(arguments),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            faults = "; ".join(_fault(e) for e in errors)
            raise SkillArgumentsError(f"invalid arguments for {self.spec.name}: {faults}")
        return McpArguments(arguments)

    def validate_output(self, result: object) -> JsonObject:
        """Check the tool's structured output against the pinned output schema."""
        assert self.pin is not None
        data = result.root if isinstance(result, McpOutput) else result
        errors = list(jsonschema.Draft202012Validator(self.pin.output_schema).iter_errors(data))
        if errors or not isinstance(data, dict):
            faults = "; ".join(_fault(e) for e in errors) or "not an object"
            raise SkillOutputError(
                f"{self.spec.ref} returned output that breaks its contract: {faults}"
            )
        return data


def _output(result: types.CallToolResult) -> McpOutput:
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise ApplicationError(f"the MCP tool answered with an error: {text}")
    if result.structured_content is not None:
        return McpOutput(dict(result.structured_content))
    return McpOutput({"text": text})


def bind_mcp(contract: Contract, *, project_dir: Path, source: str) -> McpSkill:
    """Bind an `mcp:` contract to its connector (read at call time, so a fixed file helps).

    Raises:
        SkillDefinitionError: the contract has no pinned definition.
    """
    pin = contract.mcp
    if pin is None:
        raise SkillDefinitionError(
            f"{source}: mcp: an mcp: implementation needs the pinned tool definition;"
            " run `orchestrator connectors sync`"
        )
    connector_name, _, tool_name = contract.implementation.removeprefix("mcp:").partition("/")

    async def call(args: McpArguments, ctx: SkillContext) -> McpOutput:
        connector = load_connector(project_dir / "connectors" / f"{connector_name}.yaml")
        # Errors are raised after the connection closes: inside it, the SDK's task groups
        # would wrap them in an exception group and Temporal would not see their type.
        result: types.CallToolResult | None = None
        async with connect(connector, project_dir) as client:
            offered = {tool.name: tool for tool in (await client.list_tools()).tools}
            tool = offered.get(tool_name)
            pinned = tool is not None and definition_hash(tool) == pin.definition_sha256
            if pinned:
                result = await client.call_tool(tool_name, args.root)
        if result is None:
            what = "no longer offers" if tool is None else "changed the definition of"
            raise ApplicationError(
                f"{contract.name}@{contract.version} is blocked: MCP server"
                f" {connector_name} {what} tool {tool_name!r} since it was pinned;"
                " review it and run `orchestrator connectors sync`",
                type=TOOL_CHANGED,
                non_retryable=True,
            )
        return _output(result)

    spec = spec_for(
        contract,
        description=contract.description or f"{tool_name} on MCP server {connector_name}",
        input_schema=pin.input_schema,
        output_schema=pin.output_schema,
        source=source,
    )
    return McpSkill(
        spec=spec,
        input_model=McpArguments,
        output_model=McpOutput,
        fn=call,
        module=source,
        pin=pin,
    )
