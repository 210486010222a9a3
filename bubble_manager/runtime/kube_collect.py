"""`python -m bubble_manager.runtime.kube_collect`: the snapshot collect Job's command, in the bubble image.

Before a study is archived on Kubernetes, its members' workspace claims and its shared claim are
mounted read-only in this Job under `BUBBLE_SNAPSHOT_DIR` (`workspaces/<member folder>/`,
`shared/`). It walks them without following any link, and streams a pax tar of their folders and
regular files to the service (`PUT`, chunked) with the one-time transfer token of its secret;
the service unpacks it into the study's folder on the hub, where the archive is made.

Links, pipes, sockets and devices are not sent (links are never followed: a link to /etc/passwd
stays a link and is left out); files this uid cannot read are left out too. Both are counted in
the Job's log and in the service's receipt, never named. Standard library only.
Environment: BUBBLE_TRANSFER_URL, BUBBLE_SNAPSHOT_DIR, BUBBLE_JOB_SECRETS (holding `transfer-token`).
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

TOKEN_FILE = "transfer-token"
TOPS = ("workspaces", "shared")
CHUNK = 1 << 20


class CollectError(RuntimeError):
    """The upload did not go through; the message says why."""


@dataclass
class CollectReport:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    skipped_links_or_special: int = 0
    skipped_unreadable: int = 0


def walk(root: Path, report: CollectReport) -> Iterator[tuple[str, os.stat_result, int | None]]:
    """(name in the tar, lstat, open descriptor or None for a folder), depth first, never following links."""
    for top in TOPS:
        folder = root / top
        if not folder.is_dir() or folder.is_symlink():
            continue
        yield from _walk_folder(folder, top, report)


def _walk_folder(folder: Path, name: str, report: CollectReport) -> Iterator[tuple[str, os.stat_result, int | None]]:
    info = os.lstat(folder)
    report.folders += 1
    yield name, info, None
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except PermissionError:
        report.skipped_unreadable += 1
        return
    for entry in entries:
        path, child = Path(entry.path), f"{name}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_folder(path, child, report)
        elif entry.is_file(follow_symlinks=False):
            try:
                descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except PermissionError:
                report.skipped_unreadable += 1
                continue
            except OSError:  # replaced by a link since the listing: not followed
                report.skipped_links_or_special += 1
                continue
            opened = os.fstat(descriptor)
            if not stat.S_ISREG(opened.st_mode):
                os.close(descriptor)
                report.skipped_links_or_special += 1
                continue
            yield child, opened, descriptor
        else:
            report.skipped_links_or_special += 1


class ChunkedBody:
    """A write-only file that sends what tarfile writes as HTTP/1.1 chunks."""

    def __init__(self, connection: http.client.HTTPConnection):
        self.connection = connection

    def write(self, data: bytes) -> int:
        if data:
            self.connection.send(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        return len(data)

    def finish(self) -> None:
        self.connection.send(b"0\r\n\r\n")


def write_tar(root: Path, body: ChunkedBody, report: CollectReport) -> None:
    with tarfile.open(fileobj=body, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as archive:
        for name, info, descriptor in walk(root, report):
            member = tarfile.TarInfo(name)
            member.mtime, member.mode = int(info.st_mtime), stat.S_IMODE(info.st_mode)
            if descriptor is None:
                member.type = tarfile.DIRTYPE
                archive.addfile(member)
                continue
            member.size = info.st_size
            with os.fdopen(descriptor, "rb") as source:
                archive.addfile(member, source)
            report.files += 1
            report.bytes += info.st_size


def upload(url: str, token: str, root: Path, timeout: float = 600.0) -> tuple[CollectReport, dict]:
    """Stream the tar of `root` to the service; the service's receipt, or CollectError."""
    parsed = urlparse(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise CollectError(f"BUBBLE_TRANSFER_URL {url!r} is not an http URL")
    report = CollectReport()
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        connection.putrequest("PUT", parsed.path or "/")
        for header, value in (("Authorization", f"Bearer {token}"), ("Content-Type", "application/x-tar"),
                              ("Transfer-Encoding", "chunked")):
            connection.putheader(header, value)
        connection.endheaders()
        body = ChunkedBody(connection)
        sent_error: OSError | None = None
        try:
            write_tar(root, body, report)
            body.finish()
        except (BrokenPipeError, ConnectionResetError) as error:  # refused early: read why below
            sent_error = error
        try:
            response = connection.getresponse()
            answer = response.read()
        except (http.client.HTTPException, OSError) as error:
            raise CollectError(f"the service did not answer the upload: {sent_error or error}") from None
    except OSError as error:
        raise CollectError(f"cannot upload to the service at {url}: {error}") from None
    finally:
        connection.close()
    try:
        receipt = json.loads(answer or b"{}")
    except ValueError:
        receipt = {}
    if response.status != 200:
        raise CollectError(f"the service refused the upload: HTTP {response.status} {receipt.get('error', '')}".rstrip())
    return report, receipt


def main(environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        missing = [name for name in ("BUBBLE_TRANSFER_URL", "BUBBLE_SNAPSHOT_DIR", "BUBBLE_JOB_SECRETS")
                   if not environ.get(name)]
        if missing:
            raise CollectError(f"{', '.join(missing)} not set: this command runs in the collect Job the hub creates")
        try:
            token = (Path(environ["BUBBLE_JOB_SECRETS"]) / TOKEN_FILE).read_text().strip()
        except OSError as error:
            raise CollectError(f"the Job secret lacks {TOKEN_FILE}: {error}") from None
        report, receipt = upload(environ["BUBBLE_TRANSFER_URL"], token, Path(environ["BUBBLE_SNAPSHOT_DIR"]))
    except CollectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": asdict(report), **receipt}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
