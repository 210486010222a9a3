"""`bubble-manager airlock ...`: the airlock from the operator's side.

    bubble-manager airlock list [--study SLUG] [--state review|decided]
    bubble-manager airlock show REQUEST
    bubble-manager airlock review REQUEST --file FILE --approve|--reject --comment TEXT --actor NAME
    bubble-manager airlock ledger --study SLUG [--rebuild]
    bubble-manager airlock check FILE... [--counts FILE:COLUMN,...]

`review` is offline administration like the study commands: `--actor` is asserted, recorded with
the OS user; the panel is the authenticated path. `check` runs the automatic disclosure checks
on local files, in the same sandbox as the hub does (no store needed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..cli_common import EXIT_FAILED, EXIT_OK, CommandError, add_actor_option, cli_actor, emit, open_context, os_user


def register(groups: dict) -> None:
    airlock = groups["root"].add_parser("airlock", help="output and import requests: list, review, ledger, "
                                                        "checks").add_subparsers(dest="airlock_command",
                                                                                 metavar="ACTION", required=True)
    listing = airlock.add_parser("list", help="requests, newest first")
    listing.add_argument("--study", help="one study's requests (default: every request waiting for review)")
    listing.add_argument("--state", choices=["review", "decided"], help="only requests in this state")
    listing.set_defaults(handler=cmd_list)
    show = airlock.add_parser("show", help="one request with each file's checks and reviews")
    show.add_argument("request", type=int, metavar="REQUEST")
    show.set_defaults(handler=cmd_show)
    review = airlock.add_parser("review", help="approve or reject one file (a steward's decision, audited)")
    review.add_argument("request", type=int, metavar="REQUEST")
    review.add_argument("--file", type=int, required=True, metavar="FILE", help="the file's id (see `show`)")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_const", const="approve", dest="decision")
    decision.add_argument("--reject", action="store_const", const="reject", dest="decision")
    review.add_argument("--comment", required=True, help="why (required; kept in the ledger)")
    add_actor_option(review)
    review.set_defaults(handler=cmd_review)
    ledger = airlock.add_parser("ledger", help="a study's disclosure ledger, its signature checked")
    ledger.add_argument("--study", required=True)
    ledger.add_argument("--rebuild", action="store_true", help="rewrite it from the store first")
    ledger.set_defaults(handler=cmd_ledger)
    check = airlock.add_parser("check", help="run the automatic disclosure checks on local files (sandboxed)")
    check.add_argument("files", nargs="+", metavar="FILE", help="files; an ACRO results.json covers its folder")
    check.add_argument("--counts", action="append", default=[], metavar="FILE:COLUMN[,COLUMN]",
                       help="columns of a table that count persons (checked for small cells)")
    check.set_defaults(handler=cmd_check)


def _operations(args: argparse.Namespace):  # noqa: ANN202 - AirlockOperations
    from .operations import AirlockOperations

    context = open_context(args)
    return AirlockOperations(context, via={"channel": "cli", "asserted_actor": True, "os_user": os_user()})


def _refusal(error: Exception) -> CommandError:
    from .handlers import airlock_error

    try:
        api_error = airlock_error(error)
    except Exception:
        raise error
    problems = "".join(f"\n  {p.get('path', '')}: {p.get('reason', p.get('rule', ''))}" for p in api_error.problems
                       if "path" in p)
    return CommandError(api_error.message + problems)


def describe(document: dict) -> str:
    lines = [f"#{document['id']} {document['kind']} for {document['study']} by {document['requester']}: "
             f"{document['state']}, checks {document['verdict']}",
             f"  justification: {document['justification']}"]
    for file in document["files"]:
        flags = ", ".join(f"{f['check']} x{f['count']}" for f in file["report"].get("flags", []))
        reviews = "; ".join(f"{r['reviewer']} {r['decision']}" for r in file["reviews"])
        lines.append(f"  [{file['id']}] {file['path']} ({file['size']} bytes) {file['verdict']}"
                     f"{': ' + flags if flags else ''} -> {file['state']}{' (' + reviews + ')' if reviews else ''}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from ..studies import SYSTEM

    airlock = _operations(args)
    if args.study:
        requests = airlock.requests(args.study, state=args.state)
    else:
        requests = [r for r in airlock.queue(SYSTEM) if args.state in (None, r["state"])]
    emit(args, {"requests": requests}, lambda: "\n".join(
        f"#{r['id']} {r['study']} {r['kind']} by {r['requester']}: {r['state']}, {len(r['files'])} files, "
        f"checks {r['verdict']}" for r in requests) or "no request")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    try:
        document = _operations(args).request(args.request)
    except Exception as error:
        raise _refusal(error) from None
    emit(args, document, lambda: describe(document))
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    airlock = _operations(args)
    try:
        slug = airlock.request(args.request)["study"]
        document = airlock.review(cli_actor(args, {"steward"}), slug, args.request, args.file, args.decision,
                                  args.comment)
    except Exception as error:
        raise _refusal(error) from None
    emit(args, document, lambda: describe(document))
    return EXIT_OK


def cmd_ledger(args: argparse.Namespace) -> int:
    from ..archive.manifest import SignedDocumentError
    from .ledger import ledger_path, verify_ledger, write_ledger

    airlock = _operations(args)
    context = airlock.context
    if args.rebuild and write_ledger(context, args.study) is None:
        raise CommandError(f"study {args.study} has no folder: there is no ledger to write")
    path = ledger_path(context.home, args.study)
    if not path.exists():
        raise CommandError(f"study {args.study} has no disclosure ledger yet (no file was decided)")
    try:
        document = verify_ledger(path, context.verifier())
    except SignedDocumentError as error:
        emit(args, {"ok": False, "error": str(error)}, f"LEDGER INVALID: {error}")
        return EXIT_FAILED
    emit(args, document, lambda: f"disclosure ledger of {args.study}: signature valid, {document['released']} "
                                 f"released of {len(document['entries'])} decided\n" + "\n".join(
        f"  request {e['request']} {e['path']} sha256 {e['sha256']} {e['decision']} by "
        f"{', '.join(r['reviewer'] for r in e['reviewers'])}"
        f"{' downloaded ' + e['downloaded_at'] if e['downloaded_at'] else ''}" for e in document["entries"]))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from ..cli_common import settings_of
    from .operations import parser_order
    from .sandbox import ParserError, ParserInput, run_parser
    from .settings import AirlockSettings

    paths = [Path(f) for f in args.files]
    for path in paths:
        if path.is_symlink() or not path.is_file():
            raise CommandError(f"{path} is not a regular file")
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    names = {str(p.resolve().relative_to(root)): p for p in paths}
    counts: dict[str, tuple[str, ...]] = {}
    for item in args.counts:
        name, _, columns = item.partition(":")
        matches = [n for n in names if Path(n).name == Path(name).name]
        if not matches or not columns:
            raise CommandError(f"--counts {item!r}: write FILE:COLUMN[,COLUMN] for one of the files given")
        counts[matches[0]] = tuple(c.strip() for c in columns.split(",") if c.strip())
    settings = AirlockSettings(config=settings_of(args).config)
    try:
        reports = run_parser(settings, [ParserInput(n, names[n], names[n].stat().st_size, counts.get(n, ()))
                                        for n in parser_order(list(names))])
    except ParserError as error:
        raise CommandError(str(error)) from None
    emit(args, reports, lambda: "\n".join(
        f"{name}: {report['verdict']} ({report['category']})" + "".join(
            f"\n  {flag['check']} x{flag['count']}: {flag['message']}" for flag in report["flags"])
        + "".join(f"\n  note: {note}" for note in report["notes"]) for name, report in reports.items()))
    return EXIT_FAILED if any(r["verdict"] == "flagged" for r in reports.values()) else EXIT_OK
