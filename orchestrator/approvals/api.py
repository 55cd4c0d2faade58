"""The approvals JSON API: list, show and decide requests, with bearer-token auth.

Every decision goes through `orchestrator.service.decide_approval`, so the workflow's own
rules (binding hash, one decision, a reason for a rejection) hold here as on the CLI.
This layer authenticates the person (a known token) and checks them first by the same
rules (`orchestrator.approvals.rules`), against the group the project's approvers file
assigns to the request, so a refusal comes back with its own status before any round
trip. A refused request changes nothing. A member may also hand a request to
another member of its group (`POST /api/approvals/{id}/delegation`, see
`orchestrator.approvals.delegation`). The schema is served at `/api/openapi.json`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from orchestrator._fields import field_path
from orchestrator.approvals.delegation import delegate_approval, live_request
from orchestrator.approvals.edits import check_edit
from orchestrator.approvals.people import Approver, ApproverDirectory
from orchestrator.approvals.reloading import Approvers, current
from orchestrator.approvals.rules import check_content, check_decider, check_delegate_in_group
from orchestrator.approvals.types import PendingApproval
from orchestrator.exceptions import ApprovalEditNotAllowed, ApprovalError, ApprovalReasonRequired
from orchestrator.service import decide_approval
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, EventKind
from orchestrator.store.store import Store
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "MAX_BODY_BYTES",
    "DecisionBody",
    "DelegationBody",
    "Standing",
    "approval_routes",
    "current_group",
    "deciding_group",
    "delegation_refusal",
    "openapi_schema",
    "standing",
]


class DecisionBody(BaseModel):
    """The body of `POST /api/approvals/{id}/decision`."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=2000)
    """Why; required to reject."""
    arguments: dict[str, JsonValue] | None = None
    """Approve with these arguments instead (a smaller refund): checked against the skill's
    contract, recorded with the decision, and bound by a hash of their own."""


class DelegationBody(BaseModel):
    """The body of `POST /api/approvals/{id}/delegation`."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=200)
    """The approver (a name in the approvers file) who decides the request instead."""
    reason: str | None = Field(default=None, max_length=2000)


async def requested_by(store: Store, session_id: str) -> str | None:
    """Who started the session that asked for the action (from its audit trail)."""
    for event in await store.list_events(session_id, kind=EventKind.SESSION_STARTED):
        who = event.payload.get("requested_by")
        if isinstance(who, str):
            return who
    return None


async def current_group(
    store: Store, directory: ApproverDirectory, record: ApprovalRecord
) -> str | None:
    """The group that decides `record` now: the policy's first, or the last escalation's."""
    group = directory.group_for(record)
    for event in await store.list_events(record.session_id, kind=EventKind.APPROVAL_ESCALATED):
        if event.payload.get("approval_id") == record.approval_id:
            moved = event.payload.get("to_group")
            group = moved if isinstance(moved, str) else group
    return group


async def deciding_group(
    store: Store,
    directory: ApproverDirectory,
    record: ApprovalRecord,
    live: PendingApproval | None = None,
) -> str | None:
    """The group that decides `record` now.

    The workflow's live view when it names one (the policy it resolved, moved on by
    escalations), else the approvers file and the audit trail's escalations.
    """
    if live is not None and live.group is not None:
        return live.group
    return await current_group(store, directory, record)


@dataclass(frozen=True)
class Standing:
    """Where a person stands on a request now, read once for a whole request handler."""

    live: PendingApproval | None
    """The request as its workflow holds it now (`live_request`), or None."""
    group: str | None
    """The group that decides it now (`deciding_group`)."""
    refusal: str | None
    """Why the person may not decide it, in one sentence; None when they may."""
    requested_by: str | None = None
    """Who started the session that asked (never one who decides it)."""


async def standing(
    store: Store,
    directory: ApproverDirectory,
    client: Client,
    person: Approver,
    record: ApprovalRecord,
) -> Standing:
    """The live view, the deciding group, and whether `person` may decide `record`.

    With a live view its group and delegate count; without one, the group comes from the
    approvers file and the audit trail. The refusal is `rules.check_decider`'s.
    """
    live = await live_request(client, record)
    group = await deciding_group(store, directory, record, live)
    asker = await requested_by(store, record.session_id)
    try:
        check_decider(
            record.approval_id,
            person.name,
            groups=person.groups,
            group=group,
            requested_by=asker,
            delegate=live.delegate if live else None,
            assigned_only=True,
        )
    except ApprovalError as exc:
        return Standing(live, group, str(exc), asker)
    return Standing(live, group, None, asker)


def delegation_refusal(
    directory: ApproverDirectory, record: ApprovalRecord, group: str | None, to: str
) -> str | None:
    """Why `to` cannot take `record` over (unknown, or outside its group), or None.

    The rest of the delegation rules are the workflow's to apply (`rules.check_delegation`).
    """
    target = directory.users.get(to)
    if target is None:
        return f"to: no approver named {to!r}"
    try:
        check_delegate_in_group(record.approval_id, group, to, target.groups)
    except ApprovalError as exc:
        return f"to: {exc}"
    return None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _view(
    record: ApprovalRecord, group: str | None, live: PendingApproval | None = None
) -> dict[str, object]:
    view: dict[str, object] = {**record.model_dump(mode="json"), "group": group}
    if live is not None:
        view.update(
            live.model_dump(
                mode="json",
                include={"group", "chain", "deadline", "required", "approved_by", "delegate"},
            )
        )
    return view


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{field_path(e['loc']) if e['loc'] else 'body'}: {e['msg']}" for e in exc.errors()
    )


MAX_BODY_BYTES = 1 << 20
"""A POST body larger than this is refused (413) before it is read into a model."""


_NO_TOKEN = "a valid API token is required (Authorization: Bearer ...)"

BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass(frozen=True)
class Asked(Generic[BodyT]):
    """A POST that passed the checks every decision and delegation needs."""

    person: Approver
    body: BodyT
    record: ApprovalRecord
    live: PendingApproval | None
    group: str | None
    """The group that decides the request now."""


class _Handlers:
    """The endpoints, over a store, the approvers and a (lazily connected) client."""

    def __init__(
        self,
        store: Store,
        directory: Approvers,
        client: Callable[[], Awaitable[Client]],
        skills: SkillRegistry | None,
    ) -> None:
        self.store = store
        self.approvers = directory
        self.client = client
        self.skills = skills

    @property
    def directory(self) -> ApproverDirectory:
        """The approvers in force now (the file is re-read when it changed)."""
        return current(self.approvers)

    def checked_edit(self, record: ApprovalRecord, body: DecisionBody) -> JsonObject | str | None:
        """The edited arguments validated by the contract, or why they are refused."""
        if body.arguments is None:
            return None
        return check_edit(self.skills, record, body.arguments)

    def person_of(self, request: Request) -> Approver | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.directory.by_token(token.strip())

    async def list_(self, request: Request) -> Response:
        if self.person_of(request) is None:
            return _error(401, _NO_TOKEN)
        raw = request.query_params.get("status", "pending")
        try:
            status = None if raw == "all" else ApprovalStatus(raw)
        except ValueError:
            allowed = ", ".join([*(s.value for s in ApprovalStatus), "all"])
            return _error(400, f"status: {raw!r} is not one of {allowed}")
        records = await self.store.list_approvals(status=status)
        views = [_view(r, self.directory.group_for(r)) for r in records]
        return JSONResponse({"approvals": views})

    async def show(self, request: Request) -> Response:
        if self.person_of(request) is None:
            return _error(401, _NO_TOKEN)
        approval_id = request.path_params["approval_id"]
        record = await self.store.get_approval(approval_id)
        if record is None:
            return _error(404, f"no approval request {approval_id!r}")
        live = await live_request(await self.client(), record)
        group = await deciding_group(self.store, self.directory, record, live)
        return JSONResponse(_view(record, group, live))

    async def admit(self, request: Request, model: type[BodyT]) -> Asked[BodyT] | Response:
        """The person, body, request and live view of a POST, or the response refusing it."""
        person = self.person_of(request)
        if person is None:
            return _error(401, _NO_TOKEN)
        approval_id = request.path_params["approval_id"]
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"body: more than {MAX_BODY_BYTES} bytes")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"body: more than {MAX_BODY_BYTES} bytes")
        try:
            body = model.model_validate_json(raw)
        except ValidationError as exc:
            return _error(422, _problems(exc))
        record = await self.store.get_approval(approval_id)
        if record is None:
            return _error(404, f"no approval request {approval_id!r}")
        now = await standing(self.store, self.directory, await self.client(), person, record)
        if now.refusal is not None:
            return _error(403, now.refusal)
        return Asked(person, body, record, now.live, now.group)

    async def decide(self, request: Request) -> Response:
        asked = await self.admit(request, DecisionBody)
        if isinstance(asked, Response):
            return asked
        body = asked.body
        try:
            check_content(
                approve=body.decision == "approve",
                reason=body.reason,
                edited=body.arguments is not None,
                kind=asked.record.kind,
            )
        except ApprovalReasonRequired as exc:
            return _error(422, f"reason: {exc}")
        except ApprovalEditNotAllowed as exc:
            return _error(422, f"arguments: {exc}")
        edit = self.checked_edit(asked.record, body)
        if isinstance(edit, str):
            return _error(422, edit)
        try:
            result = await decide_approval(
                await self.client(),
                self.store,
                asked.record.approval_id,
                approve=body.decision == "approve",
                decided_by=asked.person.name,
                reason=body.reason,
                groups=asked.person.groups,
                arguments=edit,
            )
        except ApprovalError as exc:
            return _error(409, str(exc))
        return JSONResponse(result.model_dump(mode="json"))

    async def delegate(self, request: Request) -> Response:
        asked = await self.admit(request, DelegationBody)
        if isinstance(asked, Response):
            return asked
        record, to = asked.record, asked.body.to
        wrong = delegation_refusal(self.directory, record, asked.group, to)
        if wrong is not None:
            return _error(422, wrong)
        try:
            result = await delegate_approval(
                await self.client(),
                self.store,
                record.approval_id,
                delegated_by=asked.person.name,
                groups=asked.person.groups,
                to=to,
                to_groups=self.directory.users[to].groups,
                reason=asked.body.reason,
            )
        except ApprovalError as exc:
            return _error(409, str(exc))
        return JSONResponse(result.model_dump(mode="json"))

    async def schema(self, request: Request) -> Response:
        return JSONResponse(openapi_schema())


def approval_routes(
    store: Store,
    directory: Approvers,
    client: Callable[[], Awaitable[Client]],
    skills: SkillRegistry | None = None,
) -> list[Route]:
    """The API's routes, over a store, the approvers and a (lazily connected) client.

    `skills` checks approvers' argument edits against contracts; without it edits are
    refused.
    """
    h = _Handlers(store, directory, client, skills)
    return [
        Route("/api/openapi.json", h.schema),
        Route("/api/approvals", h.list_),
        Route("/api/approvals/{approval_id}", h.show),
        Route("/api/approvals/{approval_id}/decision", h.decide, methods=["POST"]),
        Route("/api/approvals/{approval_id}/delegation", h.delegate, methods=["POST"]),
    ]


def openapi_schema() -> dict[str, object]:
    """The OpenAPI 3.1 document of the approvals API."""
    record = ApprovalRecord.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = record.pop("$defs", {})
    error = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    }

    def answer(description: str, ref: str) -> dict[str, object]:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
        return {"description": description, "content": content}

    refused: dict[str, object] = {
        "401": answer("No or unknown API token", "Error"),
        "404": answer("No such request", "Error"),
    }

    def with_refused(codes: dict[str, object]) -> dict[str, object]:
        return {**codes, **refused}

    approval_id = {
        "name": "approval_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator approvals API", "version": "1"},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **defs,
                "Approval": record,
                "DecisionBody": DecisionBody.model_json_schema(),
                "DelegationBody": DelegationBody.model_json_schema(),
                "Error": error,
            },
        },
        "security": [{"token": []}],
        "paths": {
            "/api/approvals": {
                "get": {
                    "summary": "List approval requests",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {
                                "enum": [*(s.value for s in ApprovalStatus), "all"],
                                "default": "pending",
                            },
                        }
                    ],
                    "responses": with_refused({"200": {"description": "Requests, oldest first"}}),
                }
            },
            "/api/approvals/{approval_id}": {
                "get": {
                    "summary": "Show one request",
                    "parameters": [approval_id],
                    "responses": with_refused({"200": answer("The request", "Approval")}),
                }
            },
            "/api/approvals/{approval_id}/decision": {
                "post": {
                    "summary": "Approve or reject a request as the token's owner",
                    "parameters": [approval_id],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/DecisionBody"}
                            }
                        },
                    },
                    "responses": with_refused(
                        {
                            "200": {"description": "The workflow took the decision"},
                            "413": answer("Body over MAX_BODY_BYTES", "Error"),
                            "403": answer("Not in the request's group, or own session", "Error"),
                            "409": answer(
                                "Already decided otherwise, or binding mismatch", "Error"
                            ),
                            "422": answer("Malformed body, or a rejection without reason", "Error"),
                        }
                    ),
                }
            },
            "/api/approvals/{approval_id}/delegation": {
                "post": {
                    "summary": "Hand a pending request to another member of its group",
                    "parameters": [approval_id],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/DelegationBody"}
                            }
                        },
                    },
                    "responses": with_refused(
                        {
                            "200": {"description": "Only the delegate may decide it now"},
                            "413": answer("Body over MAX_BODY_BYTES", "Error"),
                            "403": answer("Not one who may decide it now", "Error"),
                            "409": answer("Decided, or refused by the workflow", "Error"),
                            "422": answer(
                                "Malformed body, or a delegate outside the group", "Error"
                            ),
                        }
                    ),
                }
            },
        },
    }
