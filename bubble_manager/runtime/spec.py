"""What a bubble may see and use: one pure `BubbleSpec` for both the local and Kubernetes adapters.

`build_spec` is also the gate: it refuses (with `SpawnRefused`, whose message the user sees in
the hub) when the study is not active, has expired, or the user is not a member. The study comes
from the server name alone; whatever the client sent as user options is never read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..studies import State, Study
from ..study_request import SLUG_PATTERN

EXTRACT_TARGET = PurePosixPath("/data/extract.duckdb")
HOME_TARGET = PurePosixPath("/home/jovyan")
WORKSPACE_TARGET = HOME_TARGET / "work"
SHARED_TARGET = HOME_TARGET / "shared"
LABEL_PREFIX = "bubble-manager.io"


class SpawnRefused(Exception):
    """The bubble may not start; the message is shown to the user, `reason` is a stable code."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Mount:
    source: Path
    target: PurePosixPath
    read_only: bool


@dataclass(frozen=True)
class Resources:
    cpu: float
    memory_bytes: int
    pids: int = 512


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's live data lives under `$BUBBLE_MANAGER_HOME` (see the architecture file)."""

    home: Path
    slug: str

    @property
    def root(self) -> Path:
        return self.home / "studies" / self.slug

    @property
    def extract(self) -> Path:
        return self.root / "extract.duckdb"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def vault(self) -> Path:
        return self.root / "vault.age"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    def workspace(self, member: str) -> Path:
        return self.workspaces / member_dir_name(member)

    @property
    def shared(self) -> Path:
        return self.root / "shared"


@dataclass(frozen=True)
class BubbleSpec:
    study: str
    member: str
    uid: int | None
    expires_at: dt.datetime
    mounts: tuple[Mount, ...]
    environment: dict[str, str]
    resources: Resources
    labels: dict[str, str]
    annotations: dict[str, str]
    command: tuple[str, ...]
    manifest_sha256: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def mount_for(self, target: PurePosixPath) -> Mount:
        return next(m for m in self.mounts if m.target == target)

    def seconds_left(self, now: dt.datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


def member_dir_name(member: str) -> str:
    """A folder name for a hub user name (often an e-mail): readable, safe, collision-free."""
    readable = re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")[:40] or "user"
    digest = hashlib.sha256(member.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}"


def check_gate(study: Study | None, member: str, server_name: str, now: dt.datetime) -> Study:
    """Refuse any spawn the rules do not allow; return the study when it may start."""
    if not server_name:
        raise SpawnRefused("default-server", "bubbles are opened per study: choose a study in the bubble-manager "
                                             "panel (the default server is disabled)")
    if not SLUG_PATTERN.match(server_name) or study is None:
        raise SpawnRefused("unknown-study", f"there is no study named {server_name!r}; open your studies from the "
                                            "bubble-manager panel")
    if member not in study.members and member == study.requester:
        raise SpawnRefused("not-member", f"you are not a member of study {study.slug}, only its requester; propose "
                                         "yourself as a member (a steward approves it) to open its bubble")
    if member not in study.members:
        raise SpawnRefused("not-member", f"you are not a member of study {study.slug}; ask its requester "
                                         f"({study.requester}) to propose you as a member")
    if study.state is State.revoked:
        raise SpawnRefused("revoked", f"study {study.slug} was revoked; its bubble can no longer be opened")
    if study.state is not State.active and not (study.state is State.approved and now < study.starts_at):
        if study.state in (State.expired, State.archived, State.purged) or now >= study.expires_at:
            raise SpawnRefused("expired", f"study {study.slug} ended on {study.ends}; its bubble is closed")
        raise SpawnRefused("not-active", f"study {study.slug} is {study.state.value.replace('_', ' ')}, not active; "
                                         "a bubble opens once the study is approved and active")
    if study.state is State.approved:
        raise SpawnRefused("not-active", f"study {study.slug} starts on {study.starts}; its bubble opens that day")
    if now >= study.expires_at:
        raise SpawnRefused("expired", f"study {study.slug} ended on {study.ends}; its bubble is closed")
    return study


def build_spec(study: Study | None, member: str, server_name: str, *, home: Path, now: dt.datetime,
               uid: int | None, manifest_sha256: str, command: tuple[str, ...],
               environment: dict[str, str] | None = None, pids: int = 512) -> BubbleSpec:
    """The bubble of `member` for the study named by `server_name`, or SpawnRefused."""
    study = check_gate(study, member, server_name, now)
    paths = StudyPaths(home, study.slug)
    mounts = (
        Mount(paths.extract, EXTRACT_TARGET, read_only=True),
        Mount(paths.workspace(member), WORKSPACE_TARGET, read_only=False),
        Mount(paths.shared, SHARED_TARGET, read_only=False),
    )
    env = {
        "HOME": str(HOME_TARGET),
        "BUBBLE_STUDY": study.slug,
        "BUBBLE_STUDY_TITLE": study.title,
        "BUBBLE_STUDY_ENDS": study.ends.isoformat(),
        "BUBBLE_EXPIRES_AT": study.expires_at.isoformat(),
        "BUBBLE_EXTRACT": str(EXTRACT_TARGET),
        "BUBBLE_MANIFEST_SHA256": manifest_sha256,
        **(environment or {}),
    }
    labels = {
        f"{LABEL_PREFIX}/study": study.slug,
        f"{LABEL_PREFIX}/member": member_dir_name(member),
        "app.kubernetes.io/component": "bubble",
        "app.kubernetes.io/part-of": "bubble-manager",
    }
    annotations = {
        f"{LABEL_PREFIX}/manifest-sha256": manifest_sha256,
        f"{LABEL_PREFIX}/expires-at": study.expires_at.isoformat(),
        f"{LABEL_PREFIX}/member-name": member,
    }
    resources = Resources(cpu=study.request.resources.cpu, memory_bytes=study.request.resources.memory_bytes,
                          pids=pids)
    return BubbleSpec(study=study.slug, member=member, uid=uid, expires_at=study.expires_at, mounts=mounts,
                      environment=env, resources=resources, labels=labels, annotations=annotations,
                      command=tuple(command), manifest_sha256=manifest_sha256)
