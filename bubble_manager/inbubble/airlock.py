"""Ask for outputs to leave the bubble: a request written into `work/outbox/`, confirmed in the panel.

    python -m bubble_manager.inbubble.airlock submit --acro acro_outputs --justification "Table 2"
    python -m bubble_manager.inbubble.airlock submit fig1.png t3.csv --counts t3.csv:patients \\
        --justification "Figure 1 and table 3 of the paper"
    python -m bubble_manager.inbubble.airlock list

or, in a notebook, ``request_output(acro="acro_outputs", justification="Table 2")``.

The bubble has no network and its hub token cannot call the bubble-manager service, so this only
copies the files into `work/outbox/<name>/` with a `request.json` (the justification, the columns
that count persons); the member then submits it in the bubble-manager panel, which copies it
out into the hub's quarantine, runs the disclosure checks and queues it for a data steward.
ACRO's results folder is the natural unit of a request: its `results.json` says which checks
each table passed. Standard library only (this runs in the bubble environment).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

MANIFEST = "request.json"
MANIFEST_FORMAT = "bubble-manager-output-request/1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACRO_FOLDER = "acro"
ACRO_METADATA = ("results.json", "config.json")


class OutboxError(ValueError):
    """The request cannot be written; the message says what to change."""


def outbox_dir(home: Path | None = None) -> Path:
    return Path(home or os.environ.get("HOME", "/home/jovyan")) / "work" / "outbox"


def panel_hint() -> str:
    study = os.environ.get("BUBBLE_STUDY", "")
    where = f"/services/bubble-manager/studies/{study}/airlock" if study else "the study's page"
    return (f"Now submit it in the bubble-manager panel ({where}: Outputs and imports). "
            "Nothing leaves before a data steward approves it.")


def _regular_file(path: Path) -> Path:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise OutboxError(f"{path} is a symbolic link: name the file itself (links are refused by the hub)")
    if not stat.S_ISREG(info.st_mode):
        raise OutboxError(f"{path} is not a regular file")
    return path


def acro_files(folder: Path, *, include_do_not_release: bool = False) -> list[Path]:
    """ACRO's results.json, config.json and every output file results.json names."""
    results = folder / "results.json"
    if not results.is_file():
        raise OutboxError(f"{folder} has no results.json: finish the ACRO session with "
                          f"acro.finalise({str(folder)!r}, 'json') first")
    try:
        document = json.loads(results.read_text(encoding="utf-8"))
        outputs = document["results"]
    except (ValueError, KeyError, TypeError):
        raise OutboxError(f"{results} is not an ACRO results file") from None
    chosen = [folder / name for name in ACRO_METADATA if (folder / name).is_file()]
    for uid, output in outputs.items():
        if not include_do_not_release and "DONT_RELEASE" in str(uid):
            continue
        for entry in output.get("files", []) if isinstance(output, dict) else []:
            name = Path(str(entry.get("name", ""))).name if isinstance(entry, dict) else ""
            if name and (folder / name).exists():
                chosen.append(folder / name)
    return [_regular_file(p) for p in dict.fromkeys(chosen)]


def _parse_counts(items: Iterable[str]) -> dict[str, list[str]]:
    counts: dict[str, list[str]] = {}
    for item in items:
        file_name, _, columns = item.partition(":")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not file_name or not names:
            raise OutboxError(f"--counts {item!r}: write FILE:COLUMN[,COLUMN...], e.g. table3.csv:patients")
        counts.setdefault(Path(file_name).name, []).extend(names)
    return counts


def request_output(*files: str | os.PathLike, acro: str | os.PathLike | None = None, justification: str,
                   name: str | None = None, counts: dict[str, list[str]] | None = None,
                   include_do_not_release: bool = False, outbox: Path | None = None) -> Path:
    """Write an output request into `work/outbox/<name>/`; return its folder.

    `files` are copied in by name; `acro` is an ACRO results folder (its outputs go under `acro/`);
    `counts` maps a file name to the columns that count persons (checked for small cells)."""
    if not isinstance(justification, str) or not justification.strip():
        raise OutboxError("say why these outputs must leave the bubble (justification)")
    if not files and acro is None:
        raise OutboxError("name the files to request, or an ACRO results folder with acro=...")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = name or (f"{Path(acro).name}-{stamp}" if acro is not None else f"request-{stamp}")
    if not NAME.match(name):
        raise OutboxError(f"{name!r} is not a valid request name: letters, digits, '.', '_', '-' (64 at most)")
    plan: dict[str, Path] = {}
    for source in (Path(f) for f in files):
        if source.name in plan:
            raise OutboxError(f"two files are named {source.name}: rename one")
        plan[source.name] = _regular_file(source)
    if acro is not None:
        for source in acro_files(Path(acro), include_do_not_release=include_do_not_release):
            plan[f"{ACRO_FOLDER}/{source.name}"] = source
    if MANIFEST in plan:
        raise OutboxError(f"a file may not be named {MANIFEST}")
    unknown = sorted(set(counts or {}) - set(plan))
    if unknown:
        raise OutboxError(f"--counts names {', '.join(unknown)}, which is not among the requested files")
    outbox = Path(outbox) if outbox is not None else outbox_dir()
    outbox.mkdir(parents=True, exist_ok=True)
    target = outbox / name
    if os.path.lexists(target):
        raise OutboxError(f"work/outbox/{name} already exists: choose another name (--name) or remove it")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=outbox))
    try:
        for relative, source in plan.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / relative, follow_symlinks=False)
        manifest = {"format": MANIFEST_FORMAT, "justification": justification.strip(), "counts": counts or {},
                    "acro": acro is not None, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                    "files": sorted(plan)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o700)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def list_requests(outbox: Path | None = None) -> list[dict[str, Any]]:
    found = []
    outbox = Path(outbox) if outbox is not None else outbox_dir()
    for folder in sorted(outbox.iterdir()) if outbox.is_dir() else []:
        if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        found.append({"name": folder.name, "justification": manifest.get("justification", ""),
                      "files": manifest.get("files", []), "created_at": manifest.get("created_at", "")})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bubble_manager.inbubble.airlock",
                                     description="Ask for outputs to leave the bubble (through the airlock).")
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="write an output request into work/outbox/")
    submit.add_argument("files", nargs="*", help="files to request (figures, tables, text)")
    submit.add_argument("--acro", metavar="FOLDER", help="an ACRO results folder (acro.finalise(FOLDER, 'json'))")
    submit.add_argument("--justification", required=True, help="why these outputs must leave (for the steward)")
    submit.add_argument("--name", help="the request's folder name in work/outbox/ (default: dated)")
    submit.add_argument("--counts", action="append", default=[], metavar="FILE:COLUMN[,COLUMN]",
                        help="columns of a hand-made table that count persons (checked for small cells)")
    submit.add_argument("--include-do-not-release", action="store_true",
                        help="also include ACRO's DONT_RELEASE session summaries (for the steward's eyes)")
    commands.add_parser("list", help="the requests in work/outbox/")
    args = parser.parse_args(argv)
    try:
        if args.command == "submit":
            folder = request_output(*args.files, acro=args.acro, justification=args.justification, name=args.name,
                                    counts=_parse_counts(args.counts),
                                    include_do_not_release=args.include_do_not_release)
            print(f"written: {folder}\n{panel_hint()}")
        else:
            for entry in list_requests():
                print(f"{entry['name']}: {len(entry['files'])} files - {entry['justification']}")
    except (OutboxError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
