"""What every `bubble-manager` subcommand module shares: options, context, output, errors.

Subsystems (archives, extracts, runtime, ...) add their commands in a `commands.py` of their own
with a `register(groups)` function; `cli.py` calls each one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
from pathlib import Path
from typing import Any, Callable

from .config import BubbleManager, load_settings
from .operations import Context, StudyOperations
from .studies import Actor

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class CommandError(Exception):
    """A user-facing error: printed as `error: ...`, exit status 2."""


def add_actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", required=True, metavar="NAME",
                        help="who acts (an operator's assertion, audited with your OS user)")


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from None


def home_of(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("BUBBLE_MANAGER_HOME") or "var")


def settings_of(args: argparse.Namespace) -> BubbleManager:
    """Settings as the hub and the service read them: `--config`, else $BUBBLE_MANAGER_CONFIG, else
    HOME/bubble_manager_config.py (so a command run beside the service opens the service's store)."""
    return load_settings(home_of(args), args.config or os.environ.get("BUBBLE_MANAGER_CONFIG") or None, db_url=args.db)


def open_context(args: argparse.Namespace, *, require_signer: bool = True) -> Context:
    """The context of a CLI command: every audit entry it writes names the OS user who ran it."""
    context = Context.open(settings_of(args), require_signer=require_signer)
    context.audit.channel = {"channel": "cli", "asserted_actor": bool(getattr(args, "actor", None)),
                             "os_user": os_user()}
    return context


def operations_of(args: argparse.Namespace, context: Context) -> StudyOperations:
    via = {"channel": "cli", "asserted_actor": True, "os_user": os_user()}
    return StudyOperations(context, via=via)


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def cli_actor(args: argparse.Namespace, roles: set[str]) -> Actor:
    """The asserted actor of an offline command, with the roles the command asserts."""
    return Actor(args.actor, frozenset(roles))


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text() if callable(text) else text)
