"""The gateway's settings, from `ORCHESTRATOR_GATEWAY_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """How the gateway serves, retries and pins."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_GATEWAY_", extra="ignore")

    keys_file: Path | None = None
    """The virtual keys file; `gateway_keys.yaml` in the project when not set."""
    host: str = "127.0.0.1"
    port: int = Field(default=8010, ge=0, le=65535)
    cache_idle_seconds: float = Field(default=300.0, gt=0)
    """How long a provider's prompt cache outlives the last call (Anthropic's default
    cache lives 5 minutes): a session idle longer is re-routed without stickiness."""
    retries: int = Field(default=1, ge=0)
    """Retries of a failing deployment before failing over to another."""
    retry_backoff_seconds: float = Field(default=0.2, ge=0)
    """First pause between retries; doubles each time, or the provider's hint when it gives one."""
    max_retry_wait_seconds: float = Field(default=10.0, ge=0)
    """A provider asking for a longer pause is failed over instead of waited for."""
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    """A request's whole deadline, retries and failovers included."""
    max_body_bytes: int = Field(default=4_000_000, gt=0)
    learning_refresh_seconds: float = Field(default=1.0, ge=0)
    """How long outcome tallies read for routing are reused (per tenant and task type)."""
    default_max_tokens: int = Field(default=1024, gt=0)
    """Output tokens a request reserves against budgets when it sets no `max_tokens`."""

    def resolved_keys_file(self, project_dir: Path) -> Path:
        """The keys file in use."""
        return self.keys_file or project_dir / "gateway_keys.yaml"
