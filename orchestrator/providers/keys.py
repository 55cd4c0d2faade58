"""API keys a models file asks for but the environment does not hold.

A provider's `api_key_env` names the variable with its key. Unset (or empty), requests
would go out with no `Authorization` at all and fail far from the cause, as a 401 inside a
session. So the gaps are found up front: `orchestrator validate` warns, `orchestrator run`
refuses before a session starts, and workers and the gateway log a warning at startup.
Only the variable's name is ever reported, never a value. A provider without
`api_key_env` (a local endpoint, the scripted model server) asks for no key and is never reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.exceptions import ConfigError
from orchestrator.logs import get_logger
from orchestrator.plans.models import AgentStep, EnsembleStep, Plan, SubPlanStep
from orchestrator.providers.registry import ModelRegistry

__all__ = ["MissingKey", "missing_keys", "plan_deployments", "warn_missing_keys"]

log = get_logger(__name__)


@dataclass(frozen=True)
class MissingKey:
    """An unset key variable and the deployments that would be called without a key."""

    variable: str
    provider: str
    deployments: tuple[str, ...]

    def describe(self, models_file: Path) -> str:
        """One line naming the variable, the deployments and the models file."""
        which = ", ".join(self.deployments)
        return (
            f"{self.variable} is not set: {models_file} gives it as the API key of provider"
            f" {self.provider!r} (deployment(s) {which}); set it, or remove api_key_env"
            " there if the endpoint needs no key"
        )


def missing_keys(
    models: ModelRegistry,
    deployments: Iterable[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> list[MissingKey]:
    """The key variables that `deployments` (default: all) need and `environ` lacks.

    An empty variable counts as unset: it would send no key either.
    """
    wanted = set(models.models) if deployments is None else set(deployments) & set(models.models)
    by_provider: dict[str, list[str]] = {}
    for name in sorted(wanted):
        provider_name = models.models[name].provider
        variable = models.providers[provider_name].api_key_env
        if variable and not environ.get(variable):
            by_provider.setdefault(provider_name, []).append(name)
    return [
        MissingKey(
            variable=models.providers[provider].api_key_env or "",
            provider=provider,
            deployments=tuple(names),
        )
        for provider, names in sorted(by_provider.items())
    ]


def plan_deployments(plan: Plan, models: ModelRegistry) -> set[str] | None:
    """The deployments a session of `plan` could call, or None when that is not known.

    Agent steps route within the model they (or the plan) name, and a cascade within its
    `escalate_to`; ensembles call their models and verifier. Not known: an agent step
    naming no model (any deployment may win), a sub-plan (its own plan decides), and so
    is every deployment for a model switch requested while the session runs.
    """
    names: list[str] = []
    for step in plan.all_steps():
        if isinstance(step, SubPlanStep):
            return None
        if isinstance(step, AgentStep):
            name = step.model or plan.model
            if name is None:
                return None
            names += [name, *([step.escalate_to] if step.escalate_to else [])]
        elif isinstance(step, EnsembleStep):
            names += [*step.models, *([step.verifier] if step.verifier else [])]
    deployments: set[str] = set()
    for name in names:
        try:
            deployments.update(models.deployments_for(name))
        except ConfigError:
            return None  # an unknown name: the session fails on it; check every deployment
    return deployments


def warn_missing_keys(models: ModelRegistry, models_file: Path, process: str) -> None:
    """Log a warning for each key variable the models file needs and `process` lacks."""
    for missing in missing_keys(models):
        log.warning(
            "api key not set",
            process=process,
            variable=missing.variable,
            provider=missing.provider,
            deployments=list(missing.deployments),
            detail=missing.describe(models_file),
        )
