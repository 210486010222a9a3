"""Helpers for airlock tests: an active study, an outbox as the bubble writes it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bubble_manager.airlock.quarantine import MANIFEST, MANIFEST_FORMAT
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.studies import Actor
from tests.service.servicehub import request_document  # noqa: F401 - airlock tests import it from here

CAROL = Actor("carol", frozenset({"researcher"}))        # requests the study, not a member
ALICE = Actor("alice", frozenset({"researcher"}))        # member, asks for outputs
BOB = Actor("bob", frozenset({"researcher"}))            # member
STELLA = Actor("stella", frozenset({"researcher", "steward"}))  # member who is also a steward
SAM = Actor("sam", frozenset({"steward"}))
TOM = Actor("tom", frozenset({"steward"}))
ADAM = Actor("adam", frozenset({"admin"}))


def active_study(context, slug: str, members=("alice", "bob", "stella")) -> Path:
    """An active study requested by carol, approved by sam; its folder exists (as after activation)."""
    operations = StudyOperations(context, via={"channel": "tests"})
    operations.request(CAROL, request_document(slug, members))
    operations.submit(CAROL, slug)
    operations.approve(SAM, slug, "fine")
    operations.activate(ADAM, slug)
    root = StudyPaths(context.home, slug).root
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_outbox(context, slug: str, member: str, name: str, files: dict[str, bytes | Path],
                 justification: str = "Tables for the paper", counts: dict | None = None, acro: bool = False) -> Path:
    """`work/outbox/<name>/` of `member`, as `python -m bubble_manager.inbubble.airlock submit` writes it."""
    folder = StudyPaths(context.home, slug).workspace(member) / "outbox" / name
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    (folder / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "justification": justification,
                                               "counts": counts or {}, "acro": acro}))
    return folder


def acro_files(folder: Path) -> dict[str, Path]:
    return {f"acro/{p.name}": p for p in folder.iterdir() if p.is_file() and os.path.getsize(p) < 1 << 20}
