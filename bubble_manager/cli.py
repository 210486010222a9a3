"""`bubble-manager`: one entry point, subcommands, `--help` on each.

The study commands here are offline administration: `--actor NAME` is the operator's assertion
of who acts, recorded in the audit log together with the operating-system user who ran the
command and marked as asserted by the CLI. The panel's REST API is the authenticated path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__, clock
from .catalog import CatalogError
from .cli_common import (EXIT_ERROR, EXIT_FAILED, EXIT_OK, CommandError, add_actor_option, cli_actor, emit,
                         home_of, open_context, operations_of, parse_date)
from .operations import UnknownStudy
from .signing import SigningKeyError, init_signing_key
from .store import StoreError
from .studies import Study, TransitionError, study_summary
from .study_request import RequestError, load_request_yaml

# Each subsystem adds its commands through `register(groups)`; groups are the subparser sets
# "root", "keys", "studies" and "audit".
SUBSYSTEM_COMMANDS = (
    "bubble_manager.archive.commands",
    "bubble_manager.extract.commands",
    "bubble_manager.runtime.commands",
    "bubble_manager.lifecycle_commands",
    "bubble_manager.airlock.commands",
)
COMMAND_ROLES = {
    "request": {"researcher"}, "edit": {"researcher"}, "submit": {"researcher"}, "extend": {"researcher"},
    "members": {"researcher"}, "approve": {"steward"}, "reject": {"steward"}, "request-changes": {"steward"},
    "retention": {"steward"}, "revoke": {"steward", "admin"}, "activate": {"admin"},
}


# --- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bubble-manager", description="Sealed analysis bubbles for health data "
                                     "warehouses, on JupyterHub.")
    parser.add_argument("--version", action="version", version=f"bubble-manager {__version__}")
    parser.add_argument("--home", help="data folder (default: $BUBBLE_MANAGER_HOME or ./var)")
    parser.add_argument("--config", help="Python config file (default: HOME/bubble_manager_config.py if present)")
    parser.add_argument("--db", help="database URL (default: SQLite file under HOME)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo-warehouse", help="build a synthetic OMOP-like warehouse and its catalog")
    demo.add_argument("--persons", type=int, default=10_000, help="number of persons (default 10000)")
    demo.add_argument("--out", required=True, help="DuckDB file to write; the catalog goes beside it")
    demo.add_argument("--seed", type=int, default=0, help="random seed: same seed, same warehouse")
    demo.add_argument("--force", action="store_true", help="replace an existing file")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(handler=cmd_demo_warehouse)

    keys = commands.add_parser("keys", help="hub signing key, custodians, study keys").add_subparsers(
        dest="keys_command", metavar="ACTION", required=True)
    keys.add_parser("init", help="create the hub's Ed25519 signing key (once)").set_defaults(handler=cmd_keys_init)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", metavar="ACTION",
                                                                          required=True)
    db.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=cmd_db_upgrade)

    groups = {"root": commands, "keys": keys, "studies": _add_study_commands(commands),
              "audit": _add_audit_commands(commands)}
    for module_name in SUBSYSTEM_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(groups)
    return parser


def _add_study_commands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    studies = commands.add_parser("studies", help="study requests and their lifecycle").add_subparsers(
        dest="studies_command", metavar="ACTION", required=True)

    listing = studies.add_parser("list", help="list studies")
    listing.add_argument("--state", action="append", help="only this state (repeatable)")
    listing.add_argument("--person", help="only studies this person requested or belongs to")
    listing.set_defaults(handler=cmd_studies_list)

    show = studies.add_parser("show", help="show one study")
    show.add_argument("slug")
    show.set_defaults(handler=cmd_studies_show)

    for name, help_text in (("request", "create a draft study from a request file"),
                            ("edit", "replace the request of a draft or a study with changes requested")):
        sub = studies.add_parser(name, help=help_text)
        sub.add_argument("--file", required=True, help="request YAML (see examples/study-request.yaml)")
        add_actor_option(sub)
        sub.set_defaults(handler=cmd_studies_request if name == "request" else cmd_studies_edit)

    simple = {
        "submit": ("submit a draft for review", None),
        "approve": ("approve the submitted request or the pending amendment", "comment"),
        "reject": ("reject the submitted request or the pending amendment", "comment!"),
        "request-changes": ("send the request back to its requester", "comment!"),
        "revoke": ("stop a study at once; it is then archived and purged", "reason!"),
        "activate": ("move an approved study to active", None),
    }
    for name, (help_text, text_option) in simple.items():
        sub = studies.add_parser(name, help=help_text)
        sub.add_argument("slug")
        add_actor_option(sub)
        if text_option:
            option = text_option.rstrip("!")
            sub.add_argument(f"--{option}", required=text_option.endswith("!"), default="",
                             help=f"{option} (recorded in the audit log)")
        if name == "approve":
            sub.add_argument("--include-free-text", action="append", default=[], metavar="TABLE.COLUMN",
                             help="a requested free-text column this approval lets into the extract")
        sub.set_defaults(handler=cmd_studies_transition, transition=name)

    extend = studies.add_parser("extend", help="propose a later end date (a steward approves it)")
    extend.add_argument("slug")
    extend.add_argument("--until", required=True, type=parse_date, help="new last day, YYYY-MM-DD")
    add_actor_option(extend)
    extend.set_defaults(handler=cmd_studies_extend)

    members = studies.add_parser("members", help="propose adding or removing members (a steward approves it)")
    members.add_argument("slug")
    members.add_argument("--add", action="append", default=[], metavar="NAME")
    members.add_argument("--remove", action="append", default=[], metavar="NAME")
    add_actor_option(members)
    members.set_defaults(handler=cmd_studies_members)

    retention = studies.add_parser("retention", help="override how long the study's archives are kept")
    retention.add_argument("slug")
    retention.add_argument("--days", type=int, required=True, help="days kept after the study ends")
    retention.add_argument("--reason", required=True)
    add_actor_option(retention)
    retention.set_defaults(handler=cmd_studies_retention)
    return studies


def _add_audit_commands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    audit = commands.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="audit_command", metavar="ACTION", required=True)
    verify = audit.add_parser("verify", help="recompute the chain and check it against the signed checkpoints; "
                                             "exit 1 naming the first broken entry")
    verify.add_argument("--checkpoints", help="checkpoint file (JSON lines) instead of the configured sink")
    verify.set_defaults(handler=cmd_audit_verify)
    export = audit.add_parser("export", help="write the entries out")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--study", help="only this study's entries")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_audit_export)
    audit.add_parser("checkpoint", help="sign and record the current chain head now").set_defaults(
        handler=cmd_audit_checkpoint)
    return audit


# --- plumbing ------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or EXIT_OK
    except (CommandError, TransitionError, RequestError, UnknownStudy, CatalogError, SigningKeyError, StoreError,
            FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, RequestError):
            for field, message in error.problems:
                print(f"  {field}: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _study_lines(study: Study) -> str:
    summary = study_summary(study, clock.utcnow())
    lines = [f"{study.slug}: {study.title}",
             f"  state      {summary['state']}",
             f"  requester  {study.requester}",
             f"  members    {', '.join(study.members)}",
             f"  period     {study.starts} to {study.ends}"
             + (f" ({summary['days_left']} days left)" if summary["days_left"] is not None else ""),
             f"  version    {study.version} (sha256 {study.request_hash[:16]}...)"]
    if study.approvals:
        lines.append("  approvals  " + ", ".join(f"{a.steward} ({a.at:%Y-%m-%d})" for a in study.approvals))
    if study.amendment:
        lines.append(f"  amendment  {study.amendment.kind} proposed by {study.amendment.proposer}: "
                     f"{json.dumps(study.amendment.body)}")
    if study.retention_until:
        lines.append(f"  retained   until {study.retention_until}")
    if study.last_comment:
        lines.append(f"  comment    {study.last_comment}")
    return "\n".join(lines)


# --- handlers ------------------------------------------------------------------------------------

def cmd_demo_warehouse(args: argparse.Namespace) -> int:
    from .extract.demo_warehouse import build_demo_warehouse

    if args.persons < 1:
        raise CommandError("--persons must be at least 1")
    summary = build_demo_warehouse(Path(args.out), persons=args.persons, seed=args.seed,
                                   progress=not args.no_progress and not args.json, overwrite=args.force)
    data = {"warehouse": str(summary.path), "catalog": str(summary.catalog_path), "rows": summary.rows,
            "seconds": round(summary.seconds, 2)}
    emit(args, data, lambda: f"warehouse {summary.path} ({sum(summary.rows.values()):,} rows in "
                              f"{summary.seconds:.1f} s)\ncatalog   {summary.catalog_path}")
    return EXIT_OK


def cmd_keys_init(args: argparse.Namespace) -> int:
    path = init_signing_key(home_of(args))
    emit(args, {"private_key": str(path)}, f"hub signing key created: {path} (keep it root-only; back it up)")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    context.close()
    emit(args, {"db": "upgraded"}, "database schema is up to date")
    return EXIT_OK


def cmd_studies_list(args: argparse.Namespace) -> int:
    context = open_context(args)
    found = operations_of(args, context).list(states=args.state, person=args.person)
    now = clock.utcnow()
    rows = [study_summary(s, now) for s in found]

    def table() -> str:
        if not rows:
            return "no studies"
        lines = [f"{'SLUG':<30} {'STATE':<18} {'ENDS':<10} {'REQUESTER':<20} TITLE"]
        lines += [f"{r['slug']:<30} {r['state']:<18} {r['ends']:<10} {r['requester']:<20} {r['title']}" for r in rows]
        return "\n".join(lines)

    emit(args, rows, table)
    return EXIT_OK


def cmd_studies_show(args: argparse.Namespace) -> int:
    study = operations_of(args, open_context(args)).get(args.slug)
    emit(args, study_summary(study, clock.utcnow()), lambda: _study_lines(study))
    return EXIT_OK


def _read_request_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"request file {path} not found") from None
    return load_request_yaml(text)


def cmd_studies_request(args: argparse.Namespace) -> int:
    document = _read_request_file(args.file)
    study = operations_of(args, open_context(args)).request(cli_actor(args, COMMAND_ROLES["request"]), document)
    emit(args, study_summary(study, clock.utcnow()),
          f"study {study.slug} created as a draft by {study.requester}; submit it with "
          f"`bubble-manager studies submit {study.slug} --actor {study.requester}`")
    return EXIT_OK


def cmd_studies_edit(args: argparse.Namespace) -> int:
    document = _read_request_file(args.file)
    study = operations_of(args, open_context(args)).edit(cli_actor(args, COMMAND_ROLES["edit"]), document)
    emit(args, study_summary(study, clock.utcnow()), f"study {study.slug} is now at version {study.version}")
    return EXIT_OK


def cmd_studies_transition(args: argparse.Namespace) -> int:
    operations = operations_of(args, open_context(args))
    actor = cli_actor(args, COMMAND_ROLES[args.transition])
    slug = args.slug
    handlers = {
        "submit": lambda: operations.submit(actor, slug),
        "approve": lambda: operations.approve(actor, slug, args.comment, tuple(args.include_free_text)),
        "reject": lambda: operations.reject(actor, slug, args.comment),
        "request-changes": lambda: operations.request_changes(actor, slug, args.comment),
        "revoke": lambda: operations.revoke(actor, slug, args.reason),
        "activate": lambda: operations.activate(actor, slug),
    }
    before = operations.get(slug) if args.transition == "approve" else None
    study = handlers[args.transition]()
    message = f"{args.transition}: study {study.slug} is now {study.state.value}"
    if before is not None and before.amendment is not None:
        message = (f"approve: {before.amendment.kind} amendment of {study.slug} "
                   + ("approved and applied" if study.amendment is None
                      else f"has {len(study.approvals)} approval(s), more needed"))
    elif args.transition == "approve":
        message += f" ({len(study.approvals)} approval(s) recorded)"
    emit(args, study_summary(study, clock.utcnow()), message)
    return EXIT_OK


def cmd_studies_extend(args: argparse.Namespace) -> int:
    study = operations_of(args, open_context(args)).extend(cli_actor(args, COMMAND_ROLES["extend"]), args.slug, args.until)
    emit(args, study_summary(study, clock.utcnow()),
          f"extension to {args.until} proposed for {study.slug}; a steward approves it with "
          f"`bubble-manager studies approve {study.slug} --actor STEWARD`")
    return EXIT_OK


def cmd_studies_members(args: argparse.Namespace) -> int:
    study = operations_of(args, open_context(args)).change_members(cli_actor(args, COMMAND_ROLES["members"]), args.slug,
                                                             tuple(args.add), tuple(args.remove))
    emit(args, study_summary(study, clock.utcnow()),
          f"member change proposed for {study.slug}; a steward approves it with "
          f"`bubble-manager studies approve {study.slug} --actor STEWARD`")
    return EXIT_OK


def cmd_studies_retention(args: argparse.Namespace) -> int:
    study = operations_of(args, open_context(args)).set_retention(cli_actor(args, COMMAND_ROLES["retention"]), args.slug,
                                                            args.days, args.reason)
    emit(args, study_summary(study, clock.utcnow()), f"retention of {study.slug} set to {args.days} days")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    checkpoints = None
    if args.checkpoints:
        from .audit import FileCheckpointSink

        checkpoints = FileCheckpointSink(Path(args.checkpoints)).read()
    report = context.audit.verify(context.verifier(), checkpoints)

    def text() -> str:
        head = (f"audit chain intact: {report.entries} entries, {report.checkpoints} signed checkpoints"
                if report.ok else f"audit chain BROKEN at entry {report.first_broken_seq}")
        return "\n".join([head] + [f"  problem: {p}" for p in report.problems] + [f"  note: {n}" for n in report.notes])

    emit(args, report.as_dict(), text)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_audit_export(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    filters = {"study": args.study} if args.study else {}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            count = context.audit.export_jsonl(out, **filters)
        print(f"{count} entries written to {args.out}", file=sys.stderr)
    else:
        context.audit.export_jsonl(sys.stdout, **filters)
    return EXIT_OK


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    context = open_context(args)
    record = context.audit.checkpoint()
    emit(args, record, f"checkpoint written at seq {record['seq']}" if record else "no new entries to checkpoint")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
