"""The model registry file: deployments, the aliases workflows code against, and policies.

A deployment (an entry of `models:`, e.g. `demo-strong`) is one model id on one provider
endpoint, with its prices, context window, capabilities, region, the data classes it may
receive and its quality per task type. An alias (`reasoning-strong`) names an ordered list
of deployments: the router chooses among them, and the order is the fallback chain.
Transport and auth live on the provider entry, so moving a model is one line. The
`routing:` and `budgets:` sections are described in `orchestrator.routing.policy`.

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
    capabilities: [tools, json]      # what the router may rely on
    region: eu
    data_classes: [public, internal, pii]
    quality: {default: 0.9, code: 0.95}
    stream: true                     # default; false for endpoints that cannot stream
aliases:
  reasoning-strong: {deployments: [demo-strong, demo-strong-b]}
default_model: demo-fast
```
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.cache.config import CacheConfig
from orchestrator.exceptions import ConfigError
from orchestrator.providers.messages import Usage
from orchestrator.routing.policy import Budget, RoutingConfig

__all__ = ["AliasEntry", "ModelEntry", "ModelRegistry", "ProviderEntry", "load_model_registry"]

Capability = Literal["tools", "json", "vision"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ProviderEntry(BaseModel):
    """Where and how to reach an endpoint."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "anthropic", "openai_responses"] = "openai"
    """Wire protocol. `openai` (chat completions) covers OpenAI, vLLM, Ollama, OpenRouter
    and LiteLLM proxies; `anthropic` is Anthropic's Messages API; `openai_responses` is
    OpenAI's Responses API, for models served only there."""
    base_url: str
    api_key_env: str | None = None
    """Environment variable holding the API key; the key itself never sits in a file."""
    timeout_seconds: float = Field(default=60.0, gt=0)

    def api_key(self) -> str | None:
        """The API key from the environment, if one is configured and set."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelEntry(BaseModel):
    """A deployment: which provider serves it, its id there, its price and what it can do."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    input_price_per_mtok: float = Field(default=0.0, ge=0)
    output_price_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_price_per_mtok: float | None = Field(default=None, ge=0)
    """Price of prompt tokens read from the prompt cache; empty: `input_price_per_mtok`."""
    cache_write_price_per_mtok: float | None = Field(default=None, ge=0)
    """Price of prompt tokens written to the cache (Anthropic charges 1.25x input for a
    5-minute cache); empty: `input_price_per_mtok`."""
    prompt_cache: bool | None = None
    """Use the provider's prompt cache. For `kind: anthropic` the adapter then marks the
    stable prefix with `cache_control` breakpoints (Anthropic caches nothing unasked); empty:
    on when a cached-input or cache-write price is declared. `false` also stops the router
    pricing cache reads for the deployment. OpenAI's APIs cache whatever this says."""
    context_window: int = Field(default=128_000, gt=0)
    capabilities: frozenset[Capability] = frozenset({"tools", "json"})
    region: str = "any"
    """Where the deployment processes data; `any` satisfies no region requirement but `any`."""
    data_classes: frozenset[Literal["public", "internal", "pii", "confidential"]] = frozenset(
        {"public", "internal"}
    )
    """Classes of data it may receive; a `pii` step never goes to one without `pii`."""
    quality: dict[str, float] = Field(default_factory=lambda: {"default": 0.5})
    """Quality 0..1 per task type; `default` covers task types not listed."""
    latency_ms: float = Field(default=1000.0, gt=0)
    """Expected latency of one call, used until live measurements exist."""
    stream: bool = True
    """Ask for the answer as a stream (SSE), so watchers see tokens as they come and the
    call heartbeats while it runs; `false` for endpoints that cannot stream."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Default longest answer per call, unless a step sets its own; for `kind: anthropic`
    4096 when neither does (its API requires a limit)."""
    endpoint_retries: bool = False
    """The endpoint retries failed calls itself (a LiteLLM proxy with `num_retries`, a
    gateway with fallbacks): a 429, 5xx or timeout it answers is final, so the call is made
    once and then fails over, instead of multiplying its retries by ours."""

    @property
    def caches_prompts(self) -> bool:
        """`prompt_cache`, or whether cache prices are declared when it is not set."""
        if self.prompt_cache is not None:
            return self.prompt_cache
        return (
            self.cached_input_price_per_mtok is not None
            or self.cache_write_price_per_mtok is not None
        )

    def quality_for(self, task_type: str) -> float:
        """Quality for a task type, falling back to `default` (then 0.5)."""
        return self.quality.get(task_type, self.quality.get("default", 0.5))

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Price in US dollars of a call with these token counts.

        Summed in decimal, so a price list's figures add up exactly as written (3 x 0.1 is
        0.3, not 0.30000000000000004); cache reads and writes are priced at their own rates
        and the rest of `input_tokens` at the input price.
        """
        cached_price = _or(self.cached_input_price_per_mtok, self.input_price_per_mtok)
        write_price = _or(self.cache_write_price_per_mtok, self.input_price_per_mtok)
        fresh = max(0, input_tokens - cached_input_tokens - cache_write_tokens)
        micro = (
            fresh * Decimal(str(self.input_price_per_mtok))
            + cached_input_tokens * Decimal(str(cached_price))
            + cache_write_tokens * Decimal(str(write_price))
            + output_tokens * Decimal(str(self.output_price_per_mtok))
        )
        return float(micro / 1_000_000)

    def usage_cost(self, usage: Usage) -> float:
        """Price in US dollars of a call's reported usage, cache reads and writes included."""
        return self.cost(
            usage.input_tokens,
            usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )


class AliasEntry(BaseModel):
    """An abstract model name and the deployments that may serve it, in fallback order."""

    model_config = ConfigDict(extra="forbid")

    deployments: list[str] = Field(min_length=1)
    description: str | None = None


class ModelRegistry(BaseModel):
    """The whole models file."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderEntry]
    models: dict[str, ModelEntry]
    """Deployments by name."""
    aliases: dict[str, AliasEntry] = Field(default_factory=dict)
    default_model: str
    """A deployment or alias for steps that name none."""
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    budgets: list[Budget] = Field(default_factory=list)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    """Which model names' answers the response cache may reuse (`orchestrator.cache`)."""

    @model_validator(mode="after")
    def _check_references(self) -> ModelRegistry:
        for name, entry in self.models.items():
            if entry.provider not in self.providers:
                raise ValueError(
                    f"models.{name}.provider: unknown provider {entry.provider!r}"
                    f" (known: {', '.join(sorted(self.providers))})"
                )
        for name, alias in self.aliases.items():
            if name in self.models:
                raise ValueError(f"aliases.{name}: a deployment already has this name")
            for deployment in alias.deployments:
                if deployment not in self.models:
                    raise ValueError(f"aliases.{name}: unknown deployment {deployment!r}")
        if self.default_model not in self.models and self.default_model not in self.aliases:
            raise ValueError(f"default_model: unknown model {self.default_model!r}")
        for policy_name, policy in self.routing.policies.items():
            for rule in policy.rules:
                for ref in [*rule.exclude, *rule.only, *rule.prefer]:
                    if ref not in self.models and ref not in self.aliases:
                        raise ValueError(
                            f"routing.policies.{policy_name}: rule {rule.name!r} names"
                            f" unknown model {ref!r}"
                        )
        self._check_classifier()
        self._check_cache()
        return self

    def _check_classifier(self) -> None:
        """The difficulty classifier, when one is named, is a known model."""
        classifier = self.routing.complexity.classifier
        if classifier is not None and classifier not in self.names:
            raise ValueError(f"routing.complexity.classifier: unknown model {classifier!r}")

    def _check_cache(self) -> None:
        """The cache names known models, and embeds on an endpoint that has embeddings."""
        for name in sorted(self.cache.models):
            if name not in self.models and name not in self.aliases:
                raise ValueError(f"cache.models: unknown model {name!r}")
        embeddings = self.cache.embeddings
        if embeddings is None:
            return
        if embeddings not in self.models and embeddings not in self.aliases:
            raise ValueError(f"cache.embeddings: unknown model {embeddings!r}")
        first = self.models[self.deployments_for(embeddings)[0]]
        if self.providers[first.provider].kind != "openai":
            raise ValueError(
                f"cache.embeddings: {embeddings!r} is served by a provider of kind"
                f" {self.providers[first.provider].kind!r}, which has no /v1/embeddings;"
                " name an OpenAI-compatible deployment"
            )

    @property
    def names(self) -> list[str]:
        """Every name a plan or a switch request may use: deployments and aliases."""
        return sorted([*self.models, *self.aliases])

    def deployments_for(self, name: str | None) -> list[str]:
        """The deployments a name stands for, in fallback order (a deployment: itself).

        Raises:
            ConfigError: no deployment or alias has that name.
        """
        key = name or self.default_model
        if key in self.models:
            return [key]
        alias = self.aliases.get(key)
        if alias is None:
            raise ConfigError(f"unknown model {key!r} (known: {', '.join(self.names)})")
        return list(alias.deployments)

    def resolve(self, name: str | None) -> tuple[str, ModelEntry, ProviderEntry]:
        """The deployment called `name` (or the default), with its provider.

        An alias gives its first deployment.

        Raises:
            ConfigError: no deployment or alias has that name.
        """
        key = self.deployments_for(name)[0]
        entry = self.models[key]
        return key, entry, self.providers[entry.provider]


def _or(price: float | None, fallback: float) -> float:
    return fallback if price is None else price


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
