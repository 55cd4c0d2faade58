"""All runtime settings, in one pydantic-settings class.

Every knob is an environment variable with the `ORCHESTRATOR_` prefix (or a `.env` file in
the working directory), so moving from the embedded dev server to a Temporal cluster with
PostgreSQL is a settings change, never a code change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Runtime settings.

    Paths left empty are derived from `project_dir`, so one variable points the runtime at
    another project.
    """

    model_config = SettingsConfigDict(
        env_prefix="ORCHESTRATOR_", env_file=".env", extra="ignore", validate_default=True
    )

    project_dir: Path = Field(default_factory=Path.cwd)
    """The project: holds `workflows/`, `skills/`, `connectors/` and `models.yaml`."""

    state_dir: Path | None = None
    """Where the dev server database, the SQLite store and skill state live
    (default: `<project_dir>/.orchestrator`)."""

    temporal_address: str | None = None
    """`host:port` of an existing Temporal frontend. Empty: `orchestrator dev` starts the
    embedded dev server and uses it."""

    temporal_namespace: str = "default"
    temporal_tls: bool = False
    """Use TLS to reach `temporal_address` (system roots unless certificates are given)."""

    temporal_tls_client_cert: Path | None = None
    temporal_tls_client_key: Path | None = None
    temporal_tls_server_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    """API key for Temporal Cloud style auth; never logged."""

    task_queue: str = "orchestrator"

    max_cached_workflows: int = Field(default=1000, ge=0)
    """Workflow runs a worker keeps in memory between their tasks (Temporal's sticky
    cache). 0 replays every workflow task from the run's history: slower, and the way to
    prove the workflow code deterministic (`ORCHESTRATOR_MAX_CACHED_WORKFLOWS=0 pytest`)."""

    dev_server_port: int = Field(default=7233, ge=0, le=65535)
    """Frontend port of the embedded dev server; the other commands dial it when
    `temporal_address` is empty. A busy port stops `orchestrator dev` (it never moves
    elsewhere); 0 picks a free one (for tests, which then pass the address on)."""

    dev_server_ui_port: int = Field(default=8233, ge=0, le=65535)
    """Web UI port of the embedded dev server; busy: refused, 0: a free one."""

    dev_server_ip: str = "127.0.0.1"

    database_url: str | None = None
    """SQLAlchemy async URL of the store (default: SQLite file in `state_dir`)."""

    log_format: Literal["auto", "json", "console"] = "auto"
    """`auto` writes JSON when stderr is not a terminal."""

    log_level: str = "INFO"

    models_file: Path | None = None
    """Model registry file (default: `<project_dir>/models.yaml`)."""

    metrics_host: str = "127.0.0.1"
    """Interface the worker's `/metrics`, `/healthz` and `/readyz` listen on (`0.0.0.0` in
    a container)."""

    metrics_port: int | None = Field(default=9464, ge=0, le=65535)
    """Port of the worker's metrics endpoint; 0 picks a free one, `off` (or empty) turns
    it off."""

    api_host: str = "127.0.0.1"
    """Interface `orchestrator api` listens on."""

    api_port: int = Field(default=8000, ge=0, le=65535)
    """Port of `orchestrator api` (health and metrics; the HTTP API and inbox later)."""

    mcp_clients_file: Path | None = None
    """Bearer-token clients of the API process's MCP endpoint (default:
    `<project_dir>/mcp_clients.yaml`); without the file, `/mcp` is not served."""

    mcp_audience: str | None = None
    """The audience MCP tokens must be issued for (default: `http://<api host>:<port>/mcp`);
    set it to the public URL when the API is behind a proxy."""

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _port_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    @property
    def resolved_state_dir(self) -> Path:
        """`state_dir`, or `.orchestrator` inside the project."""
        return (self.state_dir or self.project_dir / ".orchestrator").resolve()

    @property
    def resolved_database_url(self) -> str:
        """`database_url`, or a SQLite file in the state folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_state_dir / 'orchestrator.db'}"

    @property
    def resolved_models_file(self) -> Path:
        """`models_file`, or `models.yaml` in the project."""
        return (self.models_file or self.project_dir / "models.yaml").resolve()

    @property
    def dev_server_address(self) -> str:
        """Frontend address of the embedded dev server."""
        return f"{self.dev_server_ip}:{self.dev_server_port}"
