"""The project's asset registry, as governance reviews ask for it.

Every model deployment, skill version, connector and plan, with owner, region, data
classes and risk, and the model gateway's virtual keys.

Read from the project's files (`models.yaml`, `skills/`, `connectors/`, `workflows/`), not
from the store: it lists what could run, not what did. A plan's data classes, regions and
risk are derived from its steps and the skills they may call (its highest skill risk), so
a reviewer sees at a glance which plans touch personal data or move money.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.keys import GatewayKeys
from orchestrator.plans.loader import load_plans
from orchestrator.plans.models import AgentStep, Plan, SkillStep
from orchestrator.providers.registry import load_model_registry
from orchestrator.settings import Settings
from orchestrator.skills.models import RiskLevel, SkillSpec
from orchestrator.skills.registry import SkillRegistry

__all__ = ["Asset", "AssetKind", "build_inventory"]

AssetKind = Literal["model", "skill", "connector", "plan", "gateway_key"]


class Asset(BaseModel):
    """One entry of the inventory."""

    kind: AssetKind
    name: str
    version: str | None = None
    owner: str | None = None
    region: str | None = None
    data_classes: list[str] = Field(default_factory=list)
    risk: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    """Kind-specific facts (provider and model id, approval policy, models a plan uses)."""


def build_inventory(settings: Settings) -> list[Asset]:
    """Every asset of the project in `settings`, models first, then skills, connectors, plans.

    Raises:
        ConfigError: the models file is invalid.
        SkillDefinitionError: a skill contract or module is invalid.
        PlanError: a plan file is invalid.
    """
    project = settings.project_dir
    skills = SkillRegistry.load_directory(project / "skills")
    specs = [item.spec for item in skills.all()]
    assets = _models(settings) + [_skill(spec) for spec in specs]
    assets += _connectors(project / "connectors")
    workflows = project / "workflows"
    plans = load_plans(workflows) if workflows.is_dir() else {}
    assets += [_plan(plan, specs) for plan in plans.values()]
    return assets + _gateway_keys(project)


def _gateway_keys(project: Path) -> list[Asset]:
    """The model gateway's virtual keys: who spends, on which models, within what limits."""
    path = GatewaySettings().resolved_keys_file(project)
    if not path.exists():
        return []
    return [
        Asset(
            kind="gateway_key",
            name=key.id,
            owner=f"{key.tenant}/{key.team}",
            details={
                "models": ", ".join(key.models),
                "budgets": "; ".join(
                    f"{b.period}: ${b.limit_usd}"
                    if b.limit_usd is not None
                    else f"{b.period}: {b.limit_tokens} tokens"
                    for b in key.budgets
                )
                or "-",
                "rate_limit": f"{key.rate_limit.requests_per_minute or '-'} rpm,"
                f" {key.rate_limit.tokens_per_minute or '-'} tpm",
            },
        )
        for key in GatewayKeys.load(path).keys
    ]


def _models(settings: Settings) -> list[Asset]:
    registry = load_model_registry(settings.resolved_models_file)
    assets = []
    aliases = getattr(registry, "aliases", {})
    for name, entry in sorted(registry.models.items()):
        provider = registry.providers[entry.provider]
        member_of = sorted(a for a, alias in aliases.items() if name in alias.deployments)
        assets.append(
            Asset(
                kind="model",
                name=name,
                owner=getattr(entry, "owner", None),
                region=getattr(entry, "region", None),
                data_classes=sorted(getattr(entry, "data_classes", ())),
                details={
                    "provider": f"{entry.provider} ({provider.kind})",
                    "model": entry.model,
                    "price_per_mtok": f"{entry.input_price_per_mtok}/{entry.output_price_per_mtok}",
                    "default": "yes" if name == registry.default_model else "no",
                    "context_window": str(entry.context_window),
                    "capabilities": ", ".join(sorted(getattr(entry, "capabilities", ()))) or "-",
                    "aliases": ", ".join(member_of) or "-",
                },
            )
        )
    return assets


def _skill(spec: SkillSpec) -> Asset:
    if spec.requires_approval:
        approval = "always"
    elif spec.approval_condition:
        approval = f"when {spec.approval_condition}"
    else:
        approval = "never"
    details = {"approval": approval}
    if spec.deprecated:
        details["deprecated"] = spec.deprecated
    if spec.implementation:
        details["implementation"] = spec.implementation
    return Asset(
        kind="skill",
        name=spec.name,
        version=spec.version,
        owner=spec.owner,
        data_classes=sorted({*spec.reads, *spec.writes}),
        risk=spec.risk.value,
        details=details,
    )


def _connectors(folder: Path) -> list[Asset]:
    """Connector declarations: each YAML file names an MCP server (no loader exists yet)."""
    assets = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        data = raw if isinstance(raw, dict) else {}
        classes = data.get("data_classes")
        assets.append(
            Asset(
                kind="connector",
                name=str(data.get("name") or path.stem),
                version=_opt(data.get("version")),
                owner=_opt(data.get("owner")),
                region=_opt(data.get("region")),
                data_classes=[str(c) for c in classes] if isinstance(classes, list) else [],
                risk=_opt(data.get("risk")),
                details={"file": path.name},
            )
        )
    return assets


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _plan(plan: Plan, specs: list[SkillSpec]) -> Asset:
    skill_names: list[str] = []
    models: list[str] = []
    classes: set[str] = set()
    regions: set[str] = set()
    for step in plan.steps:
        if isinstance(step, AgentStep):
            skill_names += [ref.split("@", 1)[0] for ref in step.skills]
            models.append(step.model or plan.model or "(routed)")
            classes.add(str(getattr(step, "data_class", "")) or "")
            regions.add(str(getattr(step, "region", None) or ""))
        elif isinstance(step, SkillStep):
            skill_names.append(step.skill.split("@", 1)[0])
    used = [spec for spec in specs if spec.name in set(skill_names)]
    for spec in used:
        classes.update(spec.reads)
        classes.update(spec.writes)
    risks = [spec.risk for spec in used]
    top = max(risks, key=lambda r: list(RiskLevel).index(r)) if risks else None
    return Asset(
        kind="plan",
        name=plan.name,
        version=plan.version,
        owner=getattr(plan, "owner", None),
        region=", ".join(sorted(r for r in regions if r)) or None,
        data_classes=sorted(c for c in classes if c),
        risk=top.value if top else None,
        details={
            "steps": str(len(plan.steps)),
            "models": ", ".join(dict.fromkeys(models)) or "-",
            "skills": ", ".join(dict.fromkeys(skill_names)) or "-",
        },
    )
