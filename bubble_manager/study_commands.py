"""`bubble-manager studies ...`: the study commands, online (REST API client) or offline.

Online, with `--hub-url URL` (or `$BUBBLE_MANAGER_HUB_URL`) and a JupyterHub token
(`$JUPYTERHUB_API_TOKEN`), every command is a call to the service's API: the hub says who
acts. Offline, the commands work on the store directly and `--actor NAME` is required: it is an
operator's assertion, recorded in the audit log with the operating-system user who ran it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Protocol

from . import clock
from .api_client import ApiClient, ApiClientError
from .cli_common import (EXIT_OK, CommandError, cli_actor, emit, open_context, operations_of, parse_date)
from .studies import study_summary
from .study_request import load_request_yaml

COMMAND_ROLES = {
    "request": {"researcher"}, "edit": {"researcher"}, "submit": {"researcher"}, "extend": {"researcher"},
    "members": {"researcher"}, "approve": {"steward"}, "reject": {"steward"}, "request-changes": {"steward"},
    "retention": {"steward"}, "revoke": {"steward", "admin"}, "activate": {"admin"},
}


class StudyBackend(Protocol):
    def list(self, states: list[str] | None, person: str | None) -> list[dict]: ...
    def get(self, slug: str) -> dict: ...
    def request(self, document: dict) -> dict: ...
    def edit(self, document: dict) -> dict: ...
    def act(self, slug: str, action: str, params: dict[str, Any]) -> dict: ...


class OfflineBackend:
    """Works on the store with the asserted actor; the roles are those the command asserts."""

    def __init__(self, args: argparse.Namespace, command: str):
        self.args = args
        self.context = open_context(args)
        self.operations = operations_of(args, self.context)
        self.command = command

    def _actor(self):
        if not getattr(self.args, "actor", None):
            raise CommandError("offline, this command needs --actor NAME (or --hub-url and a hub API token to act "
                               "as yourself through the API)")
        return cli_actor(self.args, COMMAND_ROLES[self.command])

    def _summary(self, study) -> dict:
        return {**study_summary(study, clock.utcnow()), "request": study.request.model_dump(mode="json")}

    def list(self, states, person):
        return [study_summary(s, clock.utcnow()) for s in self.operations.list(states=states, person=person)]

    def get(self, slug):
        return self._summary(self.operations.get(slug))

    def request(self, document):
        return self._summary(self.operations.request(self._actor(), document))

    def edit(self, document):
        return self._summary(self.operations.edit(self._actor(), document))

    def act(self, slug, action, params):
        operations, actor = self.operations, self._actor()
        if action == "activate":
            try:
                from .extract.activation import activate_with_extract
            except ImportError:
                return self._summary(operations.activate(actor, slug))
            return self._summary(activate_with_extract(self.context, actor, slug, progress=not self.args.json,
                                                       operations=self.operations))
        calls = {
            "submit": lambda: operations.submit(actor, slug),
            "approve": lambda: operations.approve(actor, slug, params.get("comment", ""),
                                                  tuple(params.get("include_free_text", ()))),
            "reject": lambda: operations.reject(actor, slug, params["comment"]),
            "request-changes": lambda: operations.request_changes(actor, slug, params["comment"]),
            "revoke": lambda: operations.revoke(actor, slug, params["reason"]),
            "extend": lambda: operations.extend(actor, slug, parse_date(params["until"])),
            "members": lambda: operations.change_members(actor, slug, tuple(params.get("add", ())),
                                                         tuple(params.get("remove", ()))),
            "retention": lambda: operations.set_retention(actor, slug, params["days"], params["reason"]),
        }
        return self._summary(calls[action]())


class ApiBackend:
    """Calls the service's REST API as the token's owner."""

    def __init__(self, client: ApiClient):
        self.client = client

    def _call(self, function, *args):
        try:
            return function(*args)
        except ApiClientError as error:
            raise CommandError(str(error) + (f" (field: {error.field})" if error.field else "")) from None

    def list(self, states, person):
        studies = self._call(self.client.list, states)
        return [s for s in studies if not person or person == s["requester"] or person in s["members"]]

    def get(self, slug):
        return self._call(self.client.get, slug)

    def request(self, document):
        return self._call(self.client.request, document)

    def edit(self, document):
        return self._call(self.client.edit, document)

    def act(self, slug, action, params):
        return self._call(self.client.act, slug, action, params)


def backend_for(args: argparse.Namespace, command: str) -> StudyBackend:
    hub_url = args.hub_url or os.environ.get("BUBBLE_MANAGER_HUB_URL")
    if not hub_url:
        return OfflineBackend(args, command)
    if getattr(args, "actor", None):
        raise CommandError("--actor is for offline administration; through the API you act as the token's owner")
    return ApiBackend(ApiClient(hub_url, os.environ.get("JUPYTERHUB_API_TOKEN", "")))


# --- parser --------------------------------------------------------------------------------------

def add_study_commands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    studies = commands.add_parser("studies", help="study requests and their lifecycle").add_subparsers(
        dest="studies_command", metavar="ACTION", required=True)

    listing = studies.add_parser("list", help="list studies")
    listing.add_argument("--state", action="append", help="only this state (repeatable)")
    listing.add_argument("--person", help="only studies this person requested or belongs to")
    listing.set_defaults(handler=cmd_list)

    show = studies.add_parser("show", help="show one study")
    show.add_argument("slug")
    show.set_defaults(handler=cmd_show)

    for name, help_text in (("request", "create a draft study from a request file"),
                            ("edit", "replace the request of a draft or a study with changes requested")):
        sub = studies.add_parser(name, help=help_text)
        sub.add_argument("--file", required=True, help="request YAML (see docs/examples/study-request.yaml)")
        _actor_option(sub)
        sub.set_defaults(handler=cmd_request_or_edit, command=name)

    actions = {
        "submit": ("submit a draft for review", None),
        "approve": ("approve the submitted request or the pending amendment", "comment"),
        "reject": ("reject the submitted request or the pending amendment", "comment!"),
        "request-changes": ("send the request back to its requester", "comment!"),
        "revoke": ("stop a study at once; it is then archived and purged", "reason!"),
        "activate": ("build and verify the extract, then make the study active", None),
    }
    for name, (help_text, text_option) in actions.items():
        sub = studies.add_parser(name, help=help_text)
        sub.add_argument("slug")
        _actor_option(sub)
        if text_option:
            option = text_option.rstrip("!")
            sub.add_argument(f"--{option}", required=text_option.endswith("!"), default="",
                             help=f"{option} (recorded in the audit log)")
        if name == "approve":
            sub.add_argument("--include-free-text", action="append", default=[], metavar="TABLE.COLUMN",
                             help="a requested free-text column this approval lets into the extract")
        sub.set_defaults(handler=cmd_action, command=name)

    extend = studies.add_parser("extend", help="propose a later end date (a steward approves it)")
    extend.add_argument("slug")
    extend.add_argument("--until", required=True, type=parse_date, help="new last day, YYYY-MM-DD")
    _actor_option(extend)
    extend.set_defaults(handler=cmd_action, command="extend")

    members = studies.add_parser("members", help="propose adding or removing members (a steward approves it)")
    members.add_argument("slug")
    members.add_argument("--add", action="append", default=[], metavar="NAME")
    members.add_argument("--remove", action="append", default=[], metavar="NAME")
    _actor_option(members)
    members.set_defaults(handler=cmd_action, command="members")

    retention = studies.add_parser("retention", help="override how long the study's archives are kept")
    retention.add_argument("slug")
    retention.add_argument("--days", type=int, required=True, help="days kept after the study ends")
    retention.add_argument("--reason", required=True)
    _actor_option(retention)
    retention.set_defaults(handler=cmd_action, command="retention")
    return studies


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", metavar="NAME",
                        help="offline only: who acts (an operator's assertion, audited with your OS user)")


# --- handlers ------------------------------------------------------------------------------------

def summary_lines(summary: dict) -> str:
    days = f" ({summary['days_left']} days left)" if summary.get("days_left") is not None else ""
    lines = [f"{summary['slug']}: {summary['title']}",
             f"  state      {summary['state']}",
             f"  requester  {summary['requester']}",
             f"  members    {', '.join(summary['members'])}",
             f"  period     {summary['starts']} to {summary['ends']}{days}",
             f"  version    {summary['version']} (sha256 {summary['request_hash'][:16]}...)"]
    if summary.get("approvals"):
        lines.append("  approvals  " + ", ".join(f"{a['steward']} ({a['at'][:10]})" for a in summary["approvals"]))
    if summary.get("amendment"):
        amendment = summary["amendment"]
        lines.append(f"  amendment  {amendment['kind']} proposed by {amendment['proposer']}: "
                     f"{json.dumps({k: amendment[k] for k in ('ends', 'add', 'remove')})}")
    if summary.get("retention_until"):
        lines.append(f"  retained   until {summary['retention_until']}")
    if summary.get("last_comment"):
        lines.append(f"  comment    {summary['last_comment']}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rows = backend_for(args, "list").list(args.state, args.person)

    def table() -> str:
        if not rows:
            return "no studies"
        lines = [f"{'SLUG':<30} {'STATE':<18} {'ENDS':<10} {'REQUESTER':<20} TITLE"]
        lines += [f"{r['slug']:<30} {r['state']:<18} {r['ends']:<10} {r['requester']:<20} {r['title']}" for r in rows]
        return "\n".join(lines)

    emit(args, rows, table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    summary = backend_for(args, "show").get(args.slug)
    emit(args, summary, lambda: summary_lines(summary))
    return EXIT_OK


def _read_request_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"request file {path} not found") from None
    except IsADirectoryError:
        raise CommandError(f"request file {path} is a folder; give the request YAML file") from None
    except UnicodeDecodeError:
        raise CommandError(f"request file {path} is not UTF-8 text; give the request YAML file "
                           "(see docs/examples/study-request.yaml)") from None
    return load_request_yaml(text)


def cmd_request_or_edit(args: argparse.Namespace) -> int:
    document = json.loads(json.dumps(_read_request_file(args.file), default=str))
    backend = backend_for(args, args.command)
    summary = backend.request(document) if args.command == "request" else backend.edit(document)
    if args.command == "request":
        message = (f"study {summary['slug']} created as a draft by {summary['requester']}; submit it with "
                   f"`bubble-manager studies submit {summary['slug']}`")
    else:
        message = f"study {summary['slug']} is now at version {summary['version']}"
    emit(args, summary, message)
    return EXIT_OK


def cmd_action(args: argparse.Namespace) -> int:
    command = args.command
    params = {
        "approve": lambda: {"comment": args.comment, "include_free_text": args.include_free_text},
        "reject": lambda: {"comment": args.comment},
        "request-changes": lambda: {"comment": args.comment},
        "revoke": lambda: {"reason": args.reason},
        "extend": lambda: {"until": str(args.until)},
        "members": lambda: {"add": args.add, "remove": args.remove},
        "retention": lambda: {"days": args.days, "reason": args.reason},
    }.get(command, dict)()
    backend = backend_for(args, command)
    before = backend.get(args.slug) if command == "approve" else None
    summary = backend.act(args.slug, command, params)
    emit(args, summary, _action_message(command, summary, before))
    return EXIT_OK


def _action_message(command: str, summary: dict, before: dict | None) -> str:
    slug = summary["slug"]
    if command == "extend":
        return (f"extension to {summary['amendment']['ends']} proposed for {slug}; a steward approves it with "
                f"`bubble-manager studies approve {slug}`")
    if command == "members":
        return f"member change proposed for {slug}; a steward approves it with `bubble-manager studies approve {slug}`"
    if command == "retention":
        return f"retention of {slug} set; archives kept until {summary['retention_until'] or 'archiving + the period'}"
    if command == "approve" and before and before.get("amendment"):
        kind = before["amendment"]["kind"]
        return (f"approve: {kind} amendment of {slug} " + ("approved and applied" if not summary.get("amendment")
                                                           else f"has {len(summary['approvals'])} approval(s), "
                                                                "more needed"))
    message = f"{command}: study {slug} is now {summary['state']}"
    if command == "approve":
        message += f" ({len(summary['approvals'])} approval(s) recorded)"
    return message
