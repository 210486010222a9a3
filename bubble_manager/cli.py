"""`bubble-manager`: one entry point, subcommands, `--help` on each.

The study commands here are offline administration: `--actor NAME` is the operator's assertion
of who acts, recorded in the audit log together with the operating-system user who ran the
command and marked as asserted by the CLI. The panel's REST API is the authenticated path.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from sqlalchemy.exc import DBAPIError

from . import __version__
from .audit import CheckpointSinkError
from .catalog import CatalogError
from .cli_common import (EXIT_ERROR, EXIT_FAILED, EXIT_OK, CommandError, emit,
                         home_of, open_context)
from .operations import UnknownStudy
from .study_commands import add_study_commands
from .signing import SigningKeyError, init_signing_key
from .store import StoreError
from .studies import TransitionError
from .study_request import RequestError

# Each subsystem adds its commands through `register(groups)`; groups are the subparser sets
# "root", "keys", "studies" and "audit".
SUBSYSTEM_COMMANDS = (
    "bubble_manager.archive.commands",
    "bubble_manager.extract.commands",
    "bubble_manager.runtime.commands",
    "bubble_manager.lifecycle_commands",
    "bubble_manager.airlock.commands",
    "bubble_manager.auth.commands",
)


# --- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bubble-manager", description="Sealed analysis bubbles for health data "
                                     "warehouses, on JupyterHub.")
    parser.add_argument("--version", action="version", version=f"bubble-manager {__version__}")
    parser.add_argument("--home", help="data folder (default: $BUBBLE_MANAGER_HOME or ./var)")
    parser.add_argument("--config", help="Python config file (default: $BUBBLE_MANAGER_CONFIG, else "
                        "HOME/bubble_manager_config.py if present)")
    parser.add_argument("--db", help="database URL (default: SQLite file under HOME)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--hub-url", help="act through the hub's bubble-manager API as the owner of "
                                          "$JUPYTERHUB_API_TOKEN (default: $BUBBLE_MANAGER_HUB_URL; unset: offline)")
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

    groups = {"root": commands, "keys": keys, "studies": add_study_commands(commands),
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
    except OSError as error:  # a path given on the command line is a folder, unreadable, on a full disk...
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR
    except DBAPIError as error:  # the database went away or refused a statement after opening
        reason = str(error.orig or error).strip().splitlines()[0]
        print(f"error: the database failed: {reason}; nothing more was done (retry once it is back)", file=sys.stderr)
        return EXIT_ERROR


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


def cmd_audit_verify(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    checkpoints = None
    if args.checkpoints:
        from .audit import FileCheckpointSink

        if not Path(args.checkpoints).is_file():
            raise CommandError(f"checkpoint file {args.checkpoints} not found")
        checkpoints = FileCheckpointSink(Path(args.checkpoints)).read()
    try:
        report = context.audit.verify(context.verifier(), checkpoints)
    except CheckpointSinkError as error:
        raise CommandError(str(error)) from None

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
