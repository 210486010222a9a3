"""`bubble-manager reconcile [--once] [--dry-run]`: the lifecycle reconciler from the command line.

The service runs the reconciler on its own schedule; this command is for operators (a first look
with --dry-run, a tick on demand) and for sites that prefer a cron job. The lock in the store
keeps it from acting while the service (or another cron job) does. Stopping bubbles needs the hub
API: `--hub-api-url` (default $JUPYTERHUB_API_URL) and a token in $JUPYTERHUB_API_TOKEN with
list:users, read:servers, delete:servers, servers and read:groups.
"""

from __future__ import annotations

import argparse
import os
import time

from .cli_common import EXIT_FAILED, EXIT_OK, CommandError, emit, open_context


def register(groups: dict) -> None:
    parser = groups["root"].add_parser(
        "reconcile", help="bring studies to what their dates and states say: activate, warn, stop, snapshot, "
                          "archive, purge, apply opt-outs, stop idle bubbles")
    parser.add_argument("--once", action="store_true", help="run one tick and exit (default: every "
                                                            "c.Reconciler.interval_seconds until interrupted)")
    parser.add_argument("--dry-run", action="store_true", help="only list what is due; change nothing")
    parser.add_argument("--hub-api-url", default=None,
                        help="the hub's REST API (default: $JUPYTERHUB_API_URL; unset: no hub, so bubbles "
                             "cannot be stopped and closures wait)")
    parser.set_defaults(handler=cmd_reconcile)


def _hub(args: argparse.Namespace, timeout: float):  # noqa: ANN202 - a SyncHub or None
    url = args.hub_api_url or os.environ.get("JUPYTERHUB_API_URL")
    if not url:
        return None
    from .lifecycle_hub import SyncHub

    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        raise CommandError("a hub API URL was given but $JUPYTERHUB_API_TOKEN is empty: set it to a token with "
                           "list:users, read:servers, delete:servers, servers and read:groups")
    return SyncHub.connect(url, token, timeout=timeout)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from .lifecycle import Reconciler, reconcile

    context = open_context(args)
    try:
        settings = Reconciler(config=context.settings.config)
        hub = _hub(args, settings.hub_timeout_seconds)
        try:
            while True:
                report = reconcile(context, hub=hub, settings=settings, dry_run=args.dry_run or settings.dry_run)
                emit(args, report.as_dict(), lambda: describe(report))
                if args.once or args.dry_run:
                    return EXIT_FAILED if report.failed else EXIT_OK
                time.sleep(settings.interval_seconds)
        finally:
            if hub is not None:
                hub.close()
    finally:
        context.close()


def describe(report) -> str:  # noqa: ANN001 - lifecycle.TickReport
    lines = []
    if report.dry_run:
        lines.append("dry run: nothing changed")
        lines += [f"  due: {a['action']:<16} {a.get('study') or '-'}" for a in report.planned] or ["  nothing is due"]
        return "\n".join(lines)
    if not report.acquired:
        return "\n".join(report.notes)
    for item in report.interrupted:
        lines.append(f"  resumed after an interrupted {item['step']} of {item['study'] or '-'}")
    for step in report.steps:
        extra = f"  ({step['detail']['error']})" if step["outcome"] == "failed" else ""
        lines.append(f"  {step['outcome']:<6} {step['step']:<18} {step['study'] or '-'}{extra}")
    lines += [f"  note: {n}" for n in report.notes]
    head = (f"tick done in {report.seconds:.2f} s: {len(report.steps)} steps, {len(report.failed)} failed"
            if report.steps else f"tick done in {report.seconds:.2f} s: nothing was due")
    return "\n".join([head, *lines])
