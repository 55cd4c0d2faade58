"""The `notifications:` section of `approvers.yaml`: how approvers are told a request waits.

```yaml
notifications:
  base_url: https://inbox.example.com      # where people open the inbox; links point here
  digest_seconds: 300                      # gather notices this long into one message
  link_seconds: 172800                     # a deep link works this long (two days)
  email:
    host: smtp.example.com
    port: 587
    security: starttls                     # starttls | tls | none
    username: orchestrator
    password_env: ORCHESTRATOR_SMTP_PASSWORD
    sender: approvals@example.com
  chat:                                    # per group: its channels' incoming webhooks
    finance: {slack: ORCHESTRATOR_SLACK_FINANCE, teams: ORCHESTRATOR_TEAMS_FINANCE}
users:
  lee: {groups: [finance], email: lee@example.com}
```

Secrets are never in the file: the SMTP password and the webhook URLs (a webhook URL is
its own credential) are read from the environment variables the file names, when the
notifier starts. A value that looks like a URL where a variable name belongs is refused
without repeating it, so a pasted secret does not end up in an error message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.exceptions import ConfigError

__all__ = ["ChatHooks", "Notifications", "SmtpSettings", "env_secret"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        # Never echo the value: it may be the secret itself, pasted in the wrong place.
        raise ValueError(
            "must name an environment variable (letters, digits, _), not hold the secret"
        )
    return value


class SmtpSettings(BaseModel):
    """The SMTP server that sends notices by e-mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """`starttls` upgrades a plain connection (port 587), `tls` starts in TLS (465),
    `none` only for a relay on loopback or a test server."""
    username: str | None = None
    password_env: str | None = None
    """The environment variable holding the SMTP password (never the password)."""
    sender: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    ca_file: str | None = None
    """PEM file of the CA(s) that sign the server's certificate, for a relay with a private
    CA (relative to the approvers file's folder); default: the system's trusted CAs."""
    timeout_seconds: float = Field(default=10.0, gt=0)

    _check_env = field_validator("password_env")(_env_name)


class ChatHooks(BaseModel):
    """A group's chat channels: environment variables holding incoming-webhook URLs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slack: str | None = None
    """Slack incoming webhook (posts Block Kit JSON)."""
    teams: str | None = None
    """Microsoft Teams incoming webhook / Workflows URL (posts an Adaptive Card message)."""

    _check_env = field_validator("slack", "teams")(_env_name)


class Notifications(BaseModel):
    """How and when approvers hear of requests waiting for them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """The inbox's public address (scheme and host, optionally a path prefix)."""
    digest_seconds: float = Field(default=300.0, ge=0)
    """A notice waits up to this long so later ones join it in one message; 0 sends at
    the next poll."""
    link_seconds: float = Field(default=2 * 86400.0, gt=0)
    """How long a deep link stays valid."""
    poll_seconds: float = Field(default=15.0, gt=0)
    """How often the notifier looks for requests and due notices."""
    max_attempts: int = Field(default=8, ge=1)
    """Tries per notice before it is given up as failed (logged, kept in the store)."""
    email: SmtpSettings | None = None
    chat: dict[str, ChatHooks] = Field(default_factory=dict)
    """Group → its chat channels."""

    def groups_named(self) -> list[str]:
        """The groups this section names, for the approvers file's group check."""
        return list(self.chat)


def env_secret(path: Path, field: str, variable: str) -> str:
    """The secret in environment variable `variable`, which `field` of `path` names.

    Raises:
        ConfigError: the variable is not set (naming file, field and variable, never a value).
    """
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(
            f"{path}: {field}: environment variable {variable} is not set;"
            f" export it before starting the API process"
        )
    return value
