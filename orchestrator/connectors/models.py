"""A connector file: one MCP server, how to reach it, and which of its tools to bind.

```yaml
# connectors/time.yaml
name: time
transport: stdio                 # stdio | http
command: mcp-server-time         # found on PATH, beside this Python, or under the project
args: [--local-timezone, UTC]
env: {}
# transport: http
# url: http://127.0.0.1:3001/mcp
# headers: {X-Team: support}
# bearer_token_env: EVERYTHING_TOKEN    # the variable's name; a token is never inline
trusted: false                   # only a trusted server's readOnlyHint lowers risk
default_risk: reversible_write   # the operator's floor for an untrusted server's tools
owner: platform-team
tools:
  - tool: get_current_time
    skill: time.current          # optional; default <name>.<tool>
```
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Literal

from mcp.client.stdio import StdioServerParameters
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator._fields import field_path
from orchestrator._yaml import YamlFault, parse, where
from orchestrator.exceptions import ConfigError
from orchestrator.skills.models import RiskLevel

__all__ = ["BoundTool", "Connector", "load_connector", "load_connectors"]

_NAME = r"^[a-z][a-z0-9_]*$"


class BoundTool(BaseModel):
    """One tool of the server, exposed as a skill."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    skill: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class Connector(BaseModel):
    """One MCP server and the tools bound from it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    trusted: bool = False
    default_risk: RiskLevel = RiskLevel.REVERSIBLE_WRITE
    owner: str | None = None
    tools: list[BoundTool] = Field(min_length=1)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _transport_fields(self) -> Connector:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio connector needs a command")
        if self.transport == "http" and not self.url:
            raise ValueError("an http connector needs a url")
        for key in self.headers:
            if key.lower() == "authorization":
                raise ValueError(
                    "headers: no Authorization header inline; name the token's variable"
                    " in bearer_token_env"
                )
        return self

    def skill_name(self, tool: BoundTool) -> str:
        """The skill a bound tool becomes: its own name, else `<connector>.<tool>`."""
        return tool.skill or f"{self.name}.{re.sub(r'[^a-z0-9_]', '_', tool.tool.lower())}"

    def stdio_parameters(self, project_dir: Path) -> StdioServerParameters:
        """How to start the server: the command found on PATH, beside Python, or in the project."""
        assert self.command is not None
        command = self.command
        beside = Path(sys.executable).parent / command
        local = project_dir / command
        if shutil.which(command) is None:
            if beside.exists():
                command = str(beside)
            elif local.exists():
                command = str(local)
        return StdioServerParameters(
            command=command, args=list(self.args), env=dict(self.env), cwd=project_dir
        )

    def http_headers(self) -> dict[str, str]:
        """Headers of every request, with the bearer token read from its variable now.

        Raises:
            ConfigError: the token's variable is not set.
        """
        headers = dict(self.headers)
        if self.bearer_token_env:
            token = os.environ.get(self.bearer_token_env)
            if not token:
                raise ConfigError(
                    f"connector {self.name}: environment variable {self.bearer_token_env}"
                    " (bearer_token_env) is not set"
                )
            headers["Authorization"] = f"Bearer {token}"
        return headers


def load_connector(path: Path) -> Connector:
    """Read one connector file.

    Raises:
        ConfigError: unreadable or malformed, naming the file and each field at fault.
    """
    try:
        raw, found = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read connector: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: byte {exc.start}: {exc.reason}") from None
    except YamlFault as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a connector file must be a YAML mapping with name and tools")
    try:
        connector = Connector.model_validate(raw)
    except ValidationError as exc:
        faults = "\n".join(
            f"{path}: {where(found, [str(p) for p in err['loc']])}:"
            f" {field_path(err['loc'])}:"
            f" {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(faults) from None
    if connector.name != path.stem:
        raise ConfigError(
            f"{path}: {where(found, ['name'])}: name: {connector.name!r} must match the file name"
        )
    connector.source = path
    return connector


def load_connectors(directory: Path) -> dict[str, Connector]:
    """Every `*.yaml` connector in a project's `connectors/` folder, by name."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        connector = load_connector(path)
        found[connector.name] = connector
    return found
