"""`bubble-manager sandbox ...`: the local sandbox from the host administrator's side.

    bubble-manager sandbox exec --study SLUG --user NAME --reason TEXT -- COMMAND...
    bubble-manager sandbox show --study SLUG --user NAME

`exec` runs COMMAND inside exactly the sandbox that user's bubble of that study gets (same spec,
same gate, same mounts, same uid and limits), attached to the terminal, for diagnosis and for the
isolation tests. Root only; always audited with the reason (the command itself is recorded by its
program name and a hash, as a command line may quote anything).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys

from ..cli_common import EXIT_OK, CommandError, emit, open_context, os_user
from . import bubbles, layout
from .settings import LocalBubbles
from .spec import SpawnRefused


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    sandbox = groups["root"].add_parser("sandbox", help="run commands in a study member's local sandbox (root)"
                                        ).add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    run = sandbox.add_parser("exec", help="run a command inside exactly the sandbox of a member's bubble (audited)",
                             description="Runs COMMAND in the bubble sandbox of --user for --study: same mounts, uid, "
                                         "namespaces and limits. Root only; audited with --reason.")
    _add_target(run)
    run.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...", help="the command and its arguments")
    run.set_defaults(handler=cmd_sandbox_exec)
    show = sandbox.add_parser("show", help="print the bwrap command line of a member's bubble (no secrets)")
    _add_target(show)
    show.set_defaults(handler=cmd_sandbox_show)


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, metavar="SLUG", help="the study (its bubble's server name)")
    parser.add_argument("--user", required=True, metavar="NAME", help="the hub user whose sandbox is used")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise CommandError("sandbox commands need root: they switch to the bubble's uid; run them with sudo")


def _command(args: argparse.Namespace) -> list[str]:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CommandError("no command given: write it after --, e.g. `... --reason TEXT -- python -V`")
    return argv


def cmd_sandbox_exec(args: argparse.Namespace) -> int:
    _require_root()
    reason = args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why the sandbox is entered (it is audited)")
    argv = _command(args)
    context = open_context(args)
    local = LocalBubbles(config=context.settings.config)
    detail = {"member": args.user, "reason": reason, "os_user": os_user(), "program": os.path.basename(argv[0]),
              "command_sha256": hashlib.sha256("\0".join(argv).encode()).hexdigest()}
    try:
        prepared = bubbles.prepare_bubble(context, local, args.user, args.study, command=tuple(argv),
                                          run_suffix=bubbles.exec_run_suffix())
    except SpawnRefused as refusal:
        context.audit.record(actor=os_user(), action="sandbox.refused", study=args.study if refusal.reason not in (
            "unknown-study", "default-server") else None, detail={**detail, "rule": refusal.reason})
        raise CommandError(f"refused ({refusal.reason}): {refusal}") from None
    except (bubbles.BubbleUnavailable, layout.LayoutError) as error:
        raise CommandError(str(error)) from None
    context.audit.record(actor=os_user(), action="sandbox.exec", study=prepared.spec.study,
                         detail={**detail, "uid": prepared.ids.uid})
    from .launcher import run_foreground

    try:
        code = run_foreground(prepared.plan)
    finally:
        layout.remove_run_dir(prepared.run, keep_log=False)
    return 128 - code if code < 0 else code


def cmd_sandbox_show(args: argparse.Namespace) -> int:
    _require_root()
    context = open_context(args)
    local = LocalBubbles(config=context.settings.config)
    try:
        prepared = bubbles.prepare_bubble(context, local, args.user, args.study, run_suffix=bubbles.exec_run_suffix())
    except SpawnRefused as refusal:
        raise CommandError(f"refused ({refusal.reason}): {refusal}") from None
    except (bubbles.BubbleUnavailable, layout.LayoutError) as error:
        raise CommandError(str(error)) from None
    layout.remove_run_dir(prepared.run, keep_log=False)
    plan = prepared.plan
    data = {"uid": plan["uid"], "gid": plan["gid"], "argv": plan["argv"], "cgroup": plan["cgroup"],
            "expires_at": plan["expires_at"], "environment": sorted(plan["env"])}
    emit(args, data, lambda: f"uid {plan['uid']} gid {plan['gid']}, stops at {plan['expires_at']}\n"
                             f"limits: {plan['cgroup']}\n" + shlex.join(plan["argv"]))
    sys.stdout.flush()
    return EXIT_OK
