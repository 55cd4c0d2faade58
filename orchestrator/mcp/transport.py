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
from urllib.parse import urlparse

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import (
    AuthorizationContext,
    BearerAuthBackend,
    RequireAuthMiddleware,
)
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from orchestrator.mcp.auth import McpClients, TokenVerifierForClients

__all__ = [
    "MAX_BODY_BYTES",
    "SESSION_ID_BYTES",
    "BoundSessionManager",
    "SkillHttpApp",
    "metadata_path",
    "new_session_id",
    "resource_metadata",
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


def resource_metadata(audience: str) -> dict[str, object]:
    """RFC 9728 protected resource metadata of the `/mcp` endpoint.

    No `authorization_servers`: tokens come from the clients file, not from an OAuth
    server, and naming `/mcp` itself (as the SDK's helper requires one) sent clients to
    look for an authorization server that is not there.
    """
    return {
        "resource": audience,
        "bearer_methods_supported": ["header"],
        "resource_name": "orchestrator skills",
    }


def metadata_path(audience: str) -> str:
    """The local path of the metadata URL the 401's `resource_metadata` names (RFC 9728 3.1)."""
    return urlparse(str(build_resource_metadata_url(AnyHttpUrl(audience)))).path


class SkillHttpApp:
    """The `/mcp` ASGI app and its metadata route; serve it inside `run()`.

    A mounted route runs no lifespan. `paths` are the routes the host app must send here.
    """

    def __init__(self, app: Starlette, sessions: BoundSessionManager, audience: str) -> None:
        self._app = app
        self.sessions = sessions
        self.paths = ("/mcp", metadata_path(audience))

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
    metadata = resource_metadata(audience)

    async def serve_metadata(request: Request) -> JSONResponse:
        return JSONResponse(metadata)

    app = Starlette(
        routes=[
            Route("/mcp", endpoint=endpoint),
            Route(metadata_path(audience), endpoint=serve_metadata, methods=["GET"]),
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
    return SkillHttpApp(app, sessions, audience)
