"""How long one model call may run, from the deployment's own `timeout_seconds`.

A fixed activity timeout cuts off a slow deployment (a local model given ten minutes in
`models.yaml`) mid-answer, and Temporal then regenerates the answer from scratch on every
retry. The session's `model_call.start_to_close` is a floor: a deployment whose endpoint
may take longer gets its timeout plus a margin for connecting and recording the call.
Pure, so the workflow may call it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from orchestrator.session.types import ActivityOptions

if TYPE_CHECKING:
    from orchestrator.providers.registry import ModelRegistry

__all__ = ["CALL_MARGIN", "call_timeouts", "model_call_options"]

CALL_MARGIN = timedelta(seconds=30)
"""Time beyond the endpoint's timeout for connecting, writing the audit row and the spend."""


def call_timeouts(registry: ModelRegistry) -> dict[str, float]:
    """Each model name's endpoint timeout in seconds (an alias: its first deployment's)."""
    return {name: registry.resolve(name)[2].timeout_seconds for name in registry.names}


def model_call_options(base: ActivityOptions, timeout_seconds: float | None) -> ActivityOptions:
    """The model-call activity's options for a deployment with this endpoint timeout.

    Never shorter than `base`; None (a session started before timeouts were recorded)
    keeps `base` as it is.
    """
    if timeout_seconds is None:
        return base
    wanted = timedelta(seconds=timeout_seconds) + CALL_MARGIN
    if wanted <= base.start_to_close:
        return base
    return base.model_copy(update={"start_to_close": wanted})
