"""Who may call the skill server over HTTP: bearer tokens issued per client identity.

The clients file (`ORCHESTRATOR_MCP_CLIENTS_FILE`) lists each client with the SHA-256 of
its token (never the token), the audience the token was issued for, the skills it may
call and when it expires:

```yaml
clients:
  - id: support-agent
    token_sha256: 9f86d0...        # sha256 of the bearer token, hex
    audience: http://127.0.0.1:8000/mcp
    skills: [tickets.get, orders.get]   # or ["*"]
    expires_at: 2027-01-01T00:00:00Z    # optional
```

The SDK's bearer middleware does the refusing: no token, an unknown or expired one, or one
issued for another audience gets 401 with `WWW-Authenticate`. Which skills a client may
call travels as `skill:<name>` scopes on its access token; the server checks them per call.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path

import yaml
from mcp.server.auth.provider import AccessToken
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.exceptions import ConfigError

__all__ = ["McpClient", "McpClients", "TokenVerifierForClients", "allows", "skill_scope"]

ALL_SKILLS = "*"


def skill_scope(name: str) -> str:
    """The scope that lets a token call skill `name` (`skill:*`: every skill)."""
    return f"skill:{name}"


class McpClient(BaseModel):
    """One client identity allowed to call the skill server."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    audience: str = Field(min_length=1)
    """The resource the token was issued for: this server's MCP URL."""
    skills: list[str] = Field(default_factory=list)
    """Skill names this client may call; `*` for all."""
    expires_at: datetime | None = None

    def access_token(self, token: str) -> AccessToken:
        """The SDK's view of a verified token: identity, scopes, expiry, audience."""
        return AccessToken(
            token=token,
            client_id=self.id,
            scopes=[skill_scope(name) for name in self.skills],
            expires_at=int(self.expires_at.timestamp()) if self.expires_at else None,
            resource=self.audience,
        )


class McpClients(BaseModel):
    """Every client identity of the skill server."""

    model_config = ConfigDict(extra="forbid")

    clients: list[McpClient] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> McpClients:
        """Read a clients file.

        Raises:
            ConfigError: the file is missing or malformed, naming the field at fault.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read MCP clients file: {exc}") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            faults = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{path}: {faults}") from None

    def find(self, token: str) -> McpClient | None:
        """The client whose token this is, compared by digest in constant time."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for client in self.clients:
            if hmac.compare_digest(client.token_sha256, digest):
                found = client
        return found


def allows(scopes: list[str], skill: str) -> bool:
    """Whether a token's scopes let it call `skill`."""
    return skill_scope(ALL_SKILLS) in scopes or skill_scope(skill) in scopes


class TokenVerifierForClients:
    """The SDK `TokenVerifier` over a clients file; expiry and audience are the SDK's checks."""

    def __init__(self, clients: McpClients) -> None:
        self._clients = clients

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access token of a known client, else None (the middleware answers 401)."""
        client = self._clients.find(token)
        return client.access_token(token) if client else None
