"""The skill server over streamable HTTP: bearer tokens, bound sessions, bounded bodies.

The SDK's session manager names a session with `uuid4().hex`, 122 random bits; a session
id here is `secrets.token_urlsafe(32)`, 256 bits, so guessing one is hopeless. Each
session belongs to the token identity that opened it (the SDK compares the credential of
every later request with its opener's and answers another's with 404), and a session is
never taken as authentication: every request carries and is checked for its own token.
"""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import (
    AuthorizationContext,
    BearerAuthBackend,
    RequireAuthMiddleware,
)
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from orchestrator.mcp.auth import McpClients, TokenVerifierForClients

__all__ = [
    "MAX_BODY_BYTES",
    "SESSION_ID_BYTES",
    "BoundSessionManager",
    "SkillHttpApp",
    "new_session_id",
    "streamable_http_app",
]

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the HTTP endpoint reads."""
SESSION_ID_BYTES = 32
"""Random bytes in a session id (256 bits; the specification asks for unguessable ids)."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def new_session_id() -> str:
    """A fresh session id: `SESSION_ID_BYTES` from the OS's CSPRNG, URL-safe base64."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


class BoundSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, opening sessions under 256-bit random ids.

    The SDK has no option for the id's source; `_admit_session` is the one place it
    creates a session, so it is replaced whole (same admission rules, another id).
    `tests/mcp/test_http_sessions.py` fails if a new SDK stops calling it.
    """

    def _admit_session(
        self, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = new_session_id()
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport


class SkillHttpApp:
    """The `/mcp` ASGI app; serve it inside `run()` (a mounted route runs no lifespan)."""

    def __init__(self, app: Starlette, sessions: BoundSessionManager) -> None:
        self._app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request."""
        await self._app(scope, receive, send)

    def run(self) -> AbstractAsyncContextManager[None]:
        """The session manager's task group, for as long as the app is served."""
        return self.sessions.run()


def streamable_http_app(
    server: Server[dict[str, object]], clients: McpClients, *, audience: str, host: str
) -> SkillHttpApp:
    """The skill server at `/mcp` over streamable HTTP, behind bearer tokens for `audience`.

    A missing, unknown, expired or foreign-audience token gets 401 with
    `WWW-Authenticate` from the SDK's middleware. No CORS middleware is added, so
    browsers get no cross-origin access at all; bodies over `MAX_BODY_BYTES` get 413; on
    loopback the SDK's DNS-rebinding check refuses foreign `Host` and `Origin` headers.
    """
    security = None
    if host in LOOPBACK:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    sessions = BoundSessionManager(
        app=server, security_settings=security, max_request_body_size=MAX_BODY_BYTES
    )
    resource = AnyHttpUrl(audience)
    endpoint = RequireAuthMiddleware(
        StreamableHTTPASGIApp(sessions), [], build_resource_metadata_url(resource)
    )
    app = Starlette(
        routes=[
            Route("/mcp", endpoint=endpoint),
            *create_protected_resource_routes(
                resource_url=resource, authorization_servers=[resource]
            ),
        ],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerAuthBackend(
                    TokenVerifierForClients(clients), resource_server_url=resource
                ),
            ),
            Middleware(AuthContextMiddleware),
        ],
    )
    return SkillHttpApp(app, sessions)
