"""Errors the gateway answers with, and their shape in each API's own error format.

```
GatewayError                    status, kind, message
├── BadRequest          400     malformed JSON or a body the API does not accept
├── Unauthorized        401     no key, or one `gateway_keys.yaml` does not know
├── OverBudget          402     a budget cannot cover the request (names it and its figures)
├── ModelNotAllowed     403     the key may not use the model it named
├── UnknownModel        404     no alias or deployment has that name
├── BodyTooLarge        413     the body is over the gateway's limit
├── RateLimited         429     over the key's requests or tokens per minute (`Retry-After`)
└── UpstreamFailed      502/504 every deployment tried failed; names each cause
```

An OpenAI client gets `{"error": {"message", "type", "code"}}`, an Anthropic client gets
`{"type": "error", "error": {"type", "message"}}`, so each SDK raises its own typed error.
"""

from __future__ import annotations

from orchestrator.gateway.exchange import Dialect, Reply, json_reply
from orchestrator.types import JsonObject

__all__ = [
    "BadRequest",
    "BodyTooLarge",
    "Dialect",
    "GatewayError",
    "ModelNotAllowed",
    "OverBudget",
    "RateLimited",
    "Unauthorized",
    "UnknownModel",
    "UpstreamFailed",
    "error_response",
]


class GatewayError(Exception):
    """A request the gateway refuses or cannot serve, with the status it answers."""

    status: int = 500
    openai_type: str = "server_error"
    anthropic_type: str = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(GatewayError):
    """Malformed JSON, or a body the API does not accept."""

    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class Unauthorized(GatewayError):
    """No key, or one the keys file does not know."""

    status = 401
    openai_type = "invalid_request_error"
    anthropic_type = "authentication_error"


class OverBudget(GatewayError):
    """A budget cannot cover the request; the message names it and its figures."""

    status = 402
    openai_type = "insufficient_quota"
    anthropic_type = "billing_error"


class ModelNotAllowed(GatewayError):
    """The key may not use the model it named."""

    status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class UnknownModel(GatewayError):
    """No alias or deployment has the name the request gave."""

    status = 404
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class BodyTooLarge(GatewayError):
    """The body is over the gateway's size limit."""

    status = 413
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"


class RateLimited(GatewayError):
    """Over the key's requests or tokens per minute; carries `Retry-After`."""

    status = 429
    openai_type = "rate_limit_exceeded"
    anthropic_type = "rate_limit_error"


class UpstreamFailed(GatewayError):
    """Every deployment tried failed; `status` is 504 when the last failure was a timeout."""

    openai_type = "upstream_error"
    anthropic_type = "api_error"

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.status = 504 if timeout else 502


def error_response(error: GatewayError, dialect: Dialect, extra: dict[str, str]) -> Reply:
    """The error in the shape the client's SDK parses, with `extra` headers added."""
    if dialect == "anthropic":
        body: JsonObject = {
            "type": "error",
            "error": {"type": error.anthropic_type, "message": error.message},
        }
    else:
        body = {
            "error": {
                "message": error.message,
                "type": error.openai_type,
                "code": error.openai_type,
                "param": None,
            }
        }
    return json_reply(body, error.status, {**extra, **error.headers})
