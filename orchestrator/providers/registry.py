"""The model registry file: named models mapped to provider deployments.

A workflow names a model (`demo-strong`); this file says which endpoint serves it, with
which model id, at what price. Transport and auth live on the provider entry, the shape
of the model on the model entry, so moving a model to another endpoint is one line.

```yaml
providers:
  replay:
    kind: openai
    base_url: ${ORCHESTRATOR_REPLAY_URL:-http://127.0.0.1:8765/v1}
    api_key_env: REPLAY_API_KEY      # name of an environment variable, never the key
models:
  demo-strong:
    provider: replay
    model: scripted-strong
    input_price_per_mtok: 3.0
    output_price_per_mtok: 15.0
default_model: demo-fast
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.exceptions import ConfigError

__all__ = ["ModelEntry", "ModelRegistry", "ProviderEntry", "load_model_registry"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ProviderEntry(BaseModel):
    """Where and how to reach an endpoint."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai"] = "openai"
    """Wire protocol. `openai` covers OpenAI, vLLM, Ollama, OpenRouter and LiteLLM proxies."""
    base_url: str
    api_key_env: str | None = None
    """Environment variable holding the API key; the key itself never sits in a file."""
    timeout_seconds: float = Field(default=60.0, gt=0)

    def api_key(self) -> str | None:
        """The API key from the environment, if one is configured and set."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelEntry(BaseModel):
    """A named model: which provider serves it, its id there, and its price."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    input_price_per_mtok: float = Field(default=0.0, ge=0)
    output_price_per_mtok: float = Field(default=0.0, ge=0)
    context_window: int = Field(default=128_000, gt=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Price in US dollars of a call with these token counts."""
        return (
            input_tokens * self.input_price_per_mtok + output_tokens * self.output_price_per_mtok
        ) / 1_000_000


class ModelRegistry(BaseModel):
    """The whole models file."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderEntry]
    models: dict[str, ModelEntry]
    default_model: str

    @model_validator(mode="after")
    def _check_references(self) -> ModelRegistry:
        for name, entry in self.models.items():
            if entry.provider not in self.providers:
                raise ValueError(
                    f"models.{name}.provider: unknown provider {entry.provider!r}"
                    f" (known: {', '.join(sorted(self.providers))})"
                )
        if self.default_model not in self.models:
            raise ValueError(f"default_model: unknown model {self.default_model!r}")
        return self

    def resolve(self, name: str | None) -> tuple[str, ModelEntry, ProviderEntry]:
        """The model called `name` (or the default), with its provider.

        Raises:
            ConfigError: no model has that name.
        """
        key = name or self.default_model
        entry = self.models.get(key)
        if entry is None:
            raise ConfigError(f"unknown model {key!r} (known: {', '.join(sorted(self.models))})")
        return key, entry, self.providers[entry.provider]


def _expand_env(text: str) -> str:
    def sub(match: re.Match[str]) -> str:
        return os.environ.get(match.group(1)) or (match.group(2) or "")

    return _ENV_REF.sub(sub, text)


def load_model_registry(path: Path) -> ModelRegistry:
    """Load and validate a models file, expanding `${VAR:-default}` references.

    Raises:
        ConfigError: the file is missing, not YAML, or does not fit the schema; the message
            names the file and each field at fault.
    """
    try:
        raw = yaml.safe_load(_expand_env(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: models file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ModelRegistry.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
