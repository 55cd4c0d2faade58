"""`orchestrator approvals`: list, decide and delegate pending approvals from a terminal.

With an approvers file, `--as NAME` must be a person in it, and the same checks as the
API's hold: a member of the request's current group, not the one whose session asked, the
delegate when it was delegated. Without the file (a project that has not set approvers
up) the CLI is the operator's surface: anyone named decides, with one approval.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.markup import escape
from temporalio.client import Client

from orchestrator.approvals.api import Standing, delegation_refusal, standing
from orchestrator.approvals.delegation import delegate_approval
from orchestrator.approvals.people import (
    Approver,
    ApproverDirectory,
    approvers_file,
    hash_password,
    hash_token,
    load_approvers,
    new_token,
)
from orchestrator.approvals.rules import check_content
from orchestrator.cli._common import console, err_console, load_settings, run_async
from orchestrator.cli.notices import notices
from orchestrator.client import connect
from orchestrator.exceptions import ApprovalError
from orchestrator.service import decide_approval
from orchestrator.settings import Settings
from orchestrator.store.records import ApprovalRecord, ApprovalStatus
from orchestrator.store.store import Store

__all__ = ["LIST_FIELDS", "app", "listing", "read_password"]

app = typer.Typer(help="List and decide approval requests.", no_args_is_help=True)
app.command("notices")(notices)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


LIST_FIELDS = (
    "approval_id",
    "session_id",
    "workflow_id",
    "step_id",
    "kind",
    "skill",
    "skill_version",
    "arguments",
    "summary",
    "status",
    "requested_at",
    "decided_by",
    "decided_at",
    "reason",
)
"""The fields of each request `approvals list --json` prints, in this order (README)."""


def listing(records: list[ApprovalRecord]) -> list[dict[str, object]]:
    """The `--json` document: one object per request with exactly `LIST_FIELDS`.

    Named here rather than dumped from the record, so a field added to the store does not
    change what scripts read.
    """
    rows: list[dict[str, object]] = []
    for rec in records:
        dumped = rec.model_dump(mode="json")
        rows.append({field: dumped[field] for field in LIST_FIELDS})
    return rows


def _print_request(rec: ApprovalRecord) -> None:
    """One request as a block of lines that are never cut: ids must be copyable whole.

    A table squeezed into a narrow terminal cut ids short (`apr_012…`); here each line is
    printed as is and the terminal wraps what does not fit.
    """
    action = f"{rec.skill}@{rec.skill_version}" if rec.skill else "approval step"
    lines = [
        f"[bold]{rec.approval_id}[/]  {rec.status.value}",
        f"  session    {escape(rec.session_id)}",
        f"  step       {escape(rec.step_id)}",
        f"  action     {escape(action)}",
    ]
    if rec.skill:
        lines.append(f"  arguments  {escape(json.dumps(rec.arguments, sort_keys=True))}")
    else:
        lines.append(f"  summary    {escape(rec.summary)}")
    if rec.decided_by:
        why = f": {rec.reason}" if rec.reason else ""
        lines.append(f"  decided by {escape(rec.decided_by + why)}")
    else:
        lines.append(
            f"  decide     orchestrator approvals approve|reject {rec.approval_id} --as NAME"
        )
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)


@app.command("list")
@run_async
async def list_(
    project: Project = None,
    all_: Annotated[bool, typer.Option("--all", help="Include decided requests.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object per request) for scripts.")
    ] = False,
) -> None:
    """Show approval requests (pending only, unless --all), ids in full."""
    settings = load_settings(project)
    async with await Store.open(settings.resolved_database_url) as store:
        records = await store.list_approvals(status=None if all_ else ApprovalStatus.PENDING)
    if as_json:
        print(json.dumps(listing(records), indent=2))
        return
    if not records:
        console.print("no approval requests")
    for index, rec in enumerate(records):
        if index:
            console.print()
        _print_request(rec)


async def _checked(
    settings: Settings, client: Client, store: Store, approval_id: str, who: str
) -> tuple[ApproverDirectory, Approver | None, Standing | None]:
    """The approvers, `who` in them and where they stand, refused as the API would.

    Returns no person (and no standing) when the project has no approvers (operator mode).

    Raises:
        ApprovalError: `who` is not an approver, or may not decide this request now.
    """
    path = approvers_file(settings.project_dir)
    directory = load_approvers(path)
    if not directory.users:
        return directory, None, None
    person = directory.users.get(who)
    if person is None:
        raise ApprovalError(f"--as {who}: not an approver in {path}")
    record = await store.get_approval(approval_id)
    if record is None:
        raise ApprovalError(f"no approval request {approval_id!r}")
    now = await standing(store, directory, client, person, record)
    if now.refusal is not None and record.status is ApprovalStatus.PENDING:
        raise ApprovalError(f"refused: {now.refusal}")
    return directory, person, now


async def _decide(
    project: Path | None, approval_id: str, *, approve: bool, who: str, reason: str | None
) -> None:
    settings = load_settings(project)
    client = await connect(settings)
    async with await Store.open(settings.resolved_database_url) as store:
        check_content(approve=approve, reason=reason, edited=False, kind=None)
        _, person, _ = await _checked(settings, client, store, approval_id, who)
        result = await decide_approval(
            client,
            store,
            approval_id,
            approve=approve,
            decided_by=who,
            reason=reason,
            groups=person.groups if person else None,
        )
    note = " (already decided the same way; nothing changed)" if result.duplicate else ""
    console.print(f"{result.approval_id}: {result.status} by {result.decided_by}{note}")


As = Annotated[str, typer.Option("--as", help="Who decides (recorded in the audit trail).")]


@app.command()
@run_async
async def approve(
    approval_id: str,
    who: As,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    project: Project = None,
) -> None:
    """Approve a pending request; the waiting session goes on at once."""
    await _decide(project, approval_id, approve=True, who=who, reason=reason)


@app.command()
@run_async
async def reject(
    approval_id: str,
    who: As,
    reason: Annotated[str, typer.Option(help="Why (required).")],
    project: Project = None,
) -> None:
    """Reject a pending request with a reason."""
    await _decide(project, approval_id, approve=False, who=who, reason=reason)


@app.command()
@run_async
async def delegate(
    approval_id: str,
    who: As,
    to: Annotated[str, typer.Option("--to", help="Another member of the request's group.")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    project: Project = None,
) -> None:
    """Hand a pending request to another member of its group; only they decide it then."""
    settings = load_settings(project)
    client = await connect(settings)
    async with await Store.open(settings.resolved_database_url) as store:
        directory, person, now = await _checked(settings, client, store, approval_id, who)
        if person is None or now is None:
            raise ApprovalError("delegation needs an approvers file naming the group's members")
        record = await store.get_approval(approval_id)
        assert record is not None  # _checked found it
        wrong = delegation_refusal(directory, record, now.group, to)
        if wrong is not None:
            raise ApprovalError(wrong.removeprefix("to: "))
        result = await delegate_approval(
            client,
            store,
            approval_id,
            delegated_by=who,
            groups=person.groups,
            to=to,
            to_groups=directory.users[to].groups,
            reason=reason,
        )
    console.print(f"{result.approval_id}: delegated to {result.delegate} ({result.group})")


_PIPE_HINT = "printf '%s\\n' \"$PASSWORD\" | orchestrator approvals hash-password"


def read_password(stdin: TextIO) -> str:
    """The password to hash: asked twice on a terminal, else the first line of `stdin`.

    A password never comes from the command line, where shell history and `ps` keep it.

    Raises:
        ApprovalError: empty, or the two typed entries differ.
    """
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat it: "):
            raise ApprovalError("the two passwords differ; nothing was hashed")
    else:
        password = stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise ApprovalError("an empty password is not hashed; type one, or pipe it in")
    return password


@app.command(
    "hash-password",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def hash_password_(ctx: typer.Context) -> None:
    """Print the scrypt hash of a password, for `users.NAME.password` in approvers.yaml.

    Asks for it twice on a terminal; reads the first line of stdin otherwise, for scripts.
    """
    if ctx.args:
        err_console.print(
            "[bold red]error:[/] hash-password takes no password argument (shell history and"
            f" ps would keep it); run it and type the password, or pipe it: {_PIPE_HINT}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    try:
        password = read_password(sys.stdin)
    except ApprovalError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(hash_password(password), soft_wrap=True)


@app.command("new-token")
def new_token_() -> None:
    """Print a fresh API token (hand it out once) and the digest approvers.yaml stores."""
    token = new_token()
    console.print(f"token:  {token}", soft_wrap=True)
    console.print(f"stored: {hash_token(token)}", soft_wrap=True)
