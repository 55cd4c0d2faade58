"""An `mcp:connector/tool` contract bound to a call through the connector.

Arguments and output are checked against the schemas pinned in the contract (JSON
Schema), and every call first compares the server's current definition of the tool with
the pinned hash: a changed tool is refused, without retries, until it is re-synced.
Calls go over the worker's pooled connection to the server (`orchestrator.connectors.pool`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import RootModel
from temporalio.exceptions import ApplicationError

from orchestrator.connectors.client import definition_hash, offered_tools
from orchestrator.connectors.models import Connector, load_connector
from orchestrator.connectors.pool import connector_pool
from orchestrator.exceptions import (
    CallLostError,
    SkillArgumentsError,
    SkillDefinitionError,
    SkillOutputError,
    SkillToolError,
    ToolDefinitionChanged,
    failure_type,
    to_failure,
)
from orchestrator.logs import get_logger
from orchestrator.skills.contract import Contract, McpPin
from orchestrator.skills.models import SkillContext
from orchestrator.skills.skill import Skill, spec_for
from orchestrator.types import JsonObject

__all__ = ["CALL_LOST", "TOOL_CHANGED", "McpArguments", "McpSkill", "bind_mcp"]

log = get_logger(__name__)

TOOL_CHANGED = failure_type(ToolDefinitionChanged)
"""The error type of a call refused because the server's tool no longer matches its pin."""


class McpArguments(RootModel[dict[str, Any]]):
    """The arguments of an MCP tool call, checked against the pinned JSON Schema."""


class McpOutput(RootModel[dict[str, Any]]):
    """The structured output of an MCP tool call."""


CALL_LOST = failure_type(CallLostError)
"""The error type of a call whose connection failed after it was sent: it may have run."""

_TRANSPORT = (types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT)
"""SDK error codes of a call that got no answer; any other code is the server's answer."""


def _lost(where: str, message: str, *, idempotent: bool) -> ApplicationError:
    """The failure of a call sent but never answered: retried only if repeating is harmless.

    Failures before the call is sent (starting or reaching the server, listing its tools)
    are raised as they come and retried, since the tool certainly did not run.
    """
    if idempotent:
        return to_failure(
            CallLostError(f"{where} failed after the call was sent: {message}", retryable=True)
        )
    return to_failure(
        CallLostError(
            f"{where} failed after the call was sent ({message}); the tool may have run and"
            " its contract says it is not idempotent, so it is not called again"
        )
    )


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


def _output(result: types.CallToolResult, where: str) -> McpOutput:
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise SkillToolError(f"{where} answered with an error: {text}")
    if result.structured_content is not None:
        return McpOutput(dict(result.structured_content))
    return McpOutput({"text": text})


async def _live_tools(
    connector: Connector, project_dir: Path
) -> tuple[Client, dict[str, types.Tool]]:
    """The pooled client and the tools its server offers now.

    The listing is the first request on a reused connection, so a connection that died
    since (a killed process, a forgotten HTTP session) fails here, harmlessly: it is
    replaced and the listing asked again on the new one.
    """
    pool = connector_pool()
    client = await pool.client(connector, project_dir)
    try:
        return client, await offered_tools(client)
    except Exception as exc:
        log.info("mcp connection unusable; reconnecting", connector=connector.name, error=str(exc))
        await pool.discard(connector.name, client)
    client = await pool.client(connector, project_dir)
    return client, await offered_tools(client)


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
        client, offered = await _live_tools(connector, project_dir)
        tool = offered.get(tool_name)
        if tool is None or definition_hash(tool) != pin.definition_sha256:
            what = "no longer offers" if tool is None else "changed the definition of"
            raise to_failure(
                ToolDefinitionChanged(
                    f"{contract.name}@{contract.version} is blocked: MCP server"
                    f" {connector_name} {what} tool {tool_name!r} since it was pinned;"
                    " review it and run `orchestrator connectors sync`"
                )
            )
        where = f"{contract.name}: tool {tool_name!r} of MCP server {connector_name}"
        if ctx.before_send is not None:
            await ctx.before_send()  # recorded before it leaves: a retry knows it may have run
        try:
            result = await client.call_tool(tool_name, args.root)
        except MCPError as exc:
            if exc.code not in _TRANSPORT:
                raise SkillToolError(f"{where} answered with an error: {exc.message}") from None
            if exc.code == types.CONNECTION_CLOSED:
                await connector_pool().discard(connector_name, client)
            raise _lost(where, exc.message, idempotent=contract.idempotency.idempotent) from None
        return _output(result, where)

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
