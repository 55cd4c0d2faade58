"""Virtual keys: who may call the gateway, as whom, for which models, within what limits.

`gateway_keys.yaml` (the project's, or `ORCHESTRATOR_GATEWAY_KEYS_FILE`) holds the SHA-256
of each token, never the token, as the MCP clients file does:

```yaml
keys:
  - id: support-bot
    token_sha256: 9f86d0...            # sha256 of the bearer token, hex
    tenant: acme
    team: support
    models: [auto, fast-cheap]         # aliases or deployments it may name; ["*"] for all
    budgets:
      - {period: day, limit_usd: 5.0}
    rate_limit: {requests_per_minute: 60, tokens_per_minute: 100000}
```

A request presents the token as `Authorization: Bearer <token>` (OpenAI SDKs) or
`x-api-key: <token>` (Anthropic SDKs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator._fields import field_path
from orchestrator._yaml import YamlFault, parse, where
from orchestrator.exceptions import ConfigError

__all__ = ["ALL_MODELS", "GatewayKey", "GatewayKeys", "KeyBudget", "RateLimit", "token_of"]

ALL_MODELS = "*"


class KeyBudget(BaseModel):
    """A spending limit on one key per period; each request reserves its worst case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Literal["day", "month", "total"] = "month"
    limit_usd: float | None = Field(default=None, ge=0)
    limit_tokens: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _limits_something(self) -> KeyBudget:
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError("a budget needs limit_usd or limit_tokens")
        return self


class RateLimit(BaseModel):
    """Requests and tokens per minute; either may be left out (no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)


class GatewayKey(BaseModel):
    """One virtual key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(default="default", min_length=1)
    team: str = Field(default="default", min_length=1)
    models: list[str] = Field(default_factory=lambda: [ALL_MODELS])
    """Aliases, deployments, or `auto` this key may name; `*` for all."""
    policy: str | None = None
    """Routing policy for this key's requests; the models file's default when empty."""
    budgets: list[KeyBudget] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    def may_use(self, name: str) -> bool:
        """Whether the key may name `name` as its model."""
        return ALL_MODELS in self.models or name in self.models

    @property
    def budget_scope(self) -> str:
        """The key's budgets' name in the ledger and in messages."""
        return f"gateway-key/{self.id}"


class GatewayKeys(BaseModel):
    """Every virtual key of the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[GatewayKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> GatewayKeys:
        seen: set[str] = set()
        for key in self.keys:
            if key.id in seen:
                raise ValueError(f"keys: id {key.id!r} appears twice")
            seen.add(key.id)
        return self

    @classmethod
    def load(cls, path: Path) -> GatewayKeys:
        """Read a keys file; a duplicate YAML key is refused, not silently overwritten.

        Raises:
            ConfigError: the file is missing or malformed, naming the line and field at fault.
        """
        try:
            raw, found = parse(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read gateway keys file: {exc.strerror}") from None
        except (UnicodeDecodeError, YamlFault) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        try:
            return cls.model_validate(raw or {})
        except ValidationError as exc:
            faults = "\n".join(
                f"{path}: {where(found, [str(p) for p in err['loc']])}:"
                f" {field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise ConfigError(faults) from None

    def find(self, token: str) -> GatewayKey | None:
        """The key this token belongs to, compared by digest in constant time."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.token_sha256, digest):
                found = key
        return found


def token_of(headers: Mapping[str, str]) -> str | None:
    """The token a request presents: `Authorization: Bearer` or `x-api-key`."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None
