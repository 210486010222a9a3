"""`bubble-manager access report [--stale-hours N]`: who holds which role, when last confirmed."""

from __future__ import annotations

import argparse
import datetime as dt

from ..cli_common import EXIT_FAILED, EXIT_OK, CommandError, emit, open_context


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    access = groups["root"].add_parser("access", help="people's roles from the identity provider (access review)"
                                       ).add_subparsers(dest="access_command", metavar="ACTION", required=True)
    report = access.add_parser("report", help="who holds which role and when the identity provider last confirmed "
                                              "it (from the audit log); exit 1 when someone active is stale")
    report.add_argument("--stale-hours", type=float, default=24.0,
                        help="flag people not confirmed for this many hours (default 24)")
    report.set_defaults(handler=cmd_access_report)


def cmd_access_report(args: argparse.Namespace) -> int:
    from .report import access_report, format_report

    if args.stale_hours <= 0:
        raise CommandError("--stale-hours must be a positive number of hours")
    context = open_context(args, require_signer=False)
    try:
        report = access_report(context, stale_after=dt.timedelta(hours=args.stale_hours))
    finally:
        context.close()
    emit(args, report, lambda: format_report(report))
    return EXIT_FAILED if report["stale"] else EXIT_OK
