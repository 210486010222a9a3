"""Transfers for study Jobs: the extract-fill Job downloads its study's verified extract from here.

Not part of the user API and not reachable with any user credential: no hub OAuth, no hub token,
no cookie. The only credential is a one-time transfer token (`runtime/transfer_tokens.py`) that
the hub made for one Job, bound to one study, one purpose and one manifest version, valid for a few
minutes, sent as `Authorization: Bearer bmxfer_...`. Jobs call the service directly on its cluster
IP; a request that came through the proxy (it carries `X-Forwarded-For`) is refused, so the path
is closed from the internet even to a stolen token.

`GET <prefix>transfer/v1/extracts/<slug>` answers a pax tar stream of exactly two regular files,
`manifest.json` (the signed manifest the token was issued for) then `extract.duckdb`, with its
`Content-Length`. The service checks the extract first (signature, size, sha256, study, approved
request) and re-hashes it while sending; the Job checks everything again before using a byte.

`PUT <prefix>transfer/v1/workspaces/<slug>` takes the tar a study's collect Job streams from the
workspace and shared claims (read-only) before the study is archived; `runtime/workspace_transfer`
checks every member by hand and swaps the result into `studies/<slug>/workspaces` and `shared`,
where the archive's snapshot reads them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import tarfile
import tempfile
from typing import Any

from tornado import iostream, web
from traitlets import Bool, Integer
from traitlets.config import Configurable

from ..runtime import extract_gate
from ..runtime.spec import SpawnRefused, StudyPaths
from ..runtime import workspace_transfer
from ..runtime.transfer_tokens import (EXTRACT_DOWNLOAD, WORKSPACE_UPLOAD, TransferGrant, TransferRefused, complete,
                                       redeem)
from ..store import load_study
from .base import SECURITY_HEADERS

SLUG = r"(?P<slug>[a-z][a-z0-9-]{0,29})"
SCOPE_EXTRACT_DOWNLOAD = f"transfer-token:{EXTRACT_DOWNLOAD}"
SCOPE_WORKSPACE_UPLOAD = f"transfer-token:{WORKSPACE_UPLOAD}"
FILLABLE_STATES = ("approved", "active")
COLLECTABLE_STATES = ("active", "expired", "revoked")
MANIFEST_MEMBER, EXTRACT_MEMBER = "manifest.json", "extract.duckdb"
FORWARDED_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Forwarded")


class TransferSettings(Configurable):
    refuse_forwarded = Bool(True, help="Refuse transfer requests that came through a proxy (they carry "
                                       "X-Forwarded-For or similar): Jobs call the service directly on its cluster "
                                       "IP. Turn off only if a service mesh adds such headers to in-cluster calls."
                            ).tag(config=True)
    chunk_bytes = Integer(1 << 20, help="Bytes read and sent at a time when streaming an extract.").tag(config=True)
    max_upload_bytes = Integer(200 * 2**30, help="Largest workspace upload of a study's collect Job (the hub home "
                                                 "needs twice this free while it is unpacked).").tag(config=True)


# --- the tar framing (pure) ----------------------------------------------------------------------

def tar_header(name: str, size: int, mtime: int = 0) -> bytes:
    """The pax header block(s) of one read-only regular file."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o444, mtime, tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def tar_trailer(written: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record, as tar writes them."""
    end = written + 2 * tarfile.BLOCKSIZE
    return b"\0" * (2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE))


def stream_length(manifest_size: int, extract_size: int, mtime: int = 0) -> int:
    body = (len(tar_header(MANIFEST_MEMBER, manifest_size, mtime)) + manifest_size + len(tar_padding(manifest_size))
            + len(tar_header(EXTRACT_MEMBER, extract_size, mtime)) + extract_size + len(tar_padding(extract_size)))
    return body + len(tar_trailer(body))


# --- the handler ---------------------------------------------------------------------------------

class TransferError(web.HTTPError):
    def __init__(self, status: int, message: str, rule: str):
        super().__init__(status, log_message=message)
        self.message, self.rule = message, rule


class TransferHandler(web.RequestHandler):
    """Base of transfer handlers: one-time tokens only; `scopes` names, per method, the token purpose."""

    scopes: dict[str, tuple[str, ...]] = {}

    @property
    def context(self) -> Any:
        return self.settings["bm_context"]

    @property
    def transfer_settings(self) -> TransferSettings:
        return TransferSettings(config=self.context.settings.config)

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")

    def check_xsrf_cookie(self) -> None:
        """No cookie is ever read here, so there is no cross-site request to forge."""

    def get_current_user(self) -> None:
        return None

    def bearer_token(self) -> str | None:
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def refuse(self, status: int, rule: str, message: str, study: str | None = None, **detail: Any) -> None:
        self.context.audit.record(actor="anonymous", action="transfer.refused", study=study, detail={
            "path": self.request.path, "method": self.request.method, "client": self.request.remote_ip,
            "reason": rule, **detail})
        raise TransferError(status, message, rule)

    def prepare(self) -> None:
        if not self.scopes.get(self.request.method):
            self.refuse(405, "method", f"{self.request.method} is not allowed here")
        forwarded = [h for h in FORWARDED_HEADERS if h in self.request.headers]
        if forwarded and self.transfer_settings.refuse_forwarded:
            self.refuse(403, "via-proxy", "transfers are only served to Jobs calling the service directly, not "
                                          "through the proxy", forwarded=forwarded)

    async def grant(self, slug: str, purpose: str) -> TransferGrant:
        """Redeem the bearer's one-time token for (`slug`, `purpose`); 401/403 otherwise (audited)."""
        try:
            return await asyncio.to_thread(redeem, self.context, self.bearer_token(), study=slug, purpose=purpose,
                                           client=self.request.remote_ip or "")
        except TransferRefused as refused:
            status = 401 if refused.reason == "malformed" else 403
            if status == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="bubble-manager transfers"')
            raise TransferError(status, str(refused), refused.reason) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        payload: dict[str, Any] = {"status": status_code, "error": self._reason}
        if isinstance(error, TransferError):
            payload.update(error=error.message, rule=error.rule)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload))


class ExtractTransferHandler(TransferHandler):
    scopes = {"GET": (SCOPE_EXTRACT_DOWNLOAD,)}

    async def get(self, slug: str) -> None:
        grant = await self.grant(slug, EXTRACT_DOWNLOAD)
        actor = f"job:{grant.job}"
        paths = StudyPaths(self.context.home, slug)
        manifest, extract = await asyncio.to_thread(self._checked_files, grant, paths, actor)
        with extract:
            size = extract.seek(0, 2)
            extract.seek(0)
            recorded = json.loads(manifest)["manifest"]["extract"]
            self.set_header("Content-Type", "application/x-tar")
            self.set_header("Content-Length", str(stream_length(len(manifest), size)))
            self.set_header("X-Bubble-Manifest-Sha256", grant.manifest_sha256 or "")
            sent = await self._stream(manifest, extract, size, recorded["sha256"])
        if sent is None:
            self.context.audit.record(actor=actor, action="transfer.failed", study=slug, detail={
                "token": grant.token_id, "reason": "extract changed or the Job hung up while it was sent"})
            return
        await asyncio.to_thread(complete, self.context, grant.token_id, actor=actor, action="extract.transferred",
                                detail={"manifest_sha256": grant.manifest_sha256, "sha256": recorded["sha256"],
                                        "bytes": sent, "client": self.request.remote_ip})

    def _checked_files(self, grant: TransferGrant, paths: StudyPaths, actor: str) -> tuple[bytes, Any]:
        """The manifest bytes the token was issued for and the open extract, after `extract verify`."""
        with self.context.store.transaction() as session:
            study = load_study(session, grant.study)
        detail = {"token": grant.token_id, "job": grant.job}
        if study is None or study.state.value not in FILLABLE_STATES:
            self._refuse_as(actor, 409, "study-state", f"study {grant.study} is not approved or active: its extract "
                                                       "is not handed out", grant.study, detail)
        try:
            manifest = paths.manifest.read_bytes()
        except FileNotFoundError:
            manifest = b""
        if hashlib.sha256(manifest).hexdigest() != grant.manifest_sha256:
            self._refuse_as(actor, 409, "stale-manifest", f"the extract of {grant.study} changed since this Job was "
                                                          "made; the hub runs a new Job for the new extract",
                            grant.study, detail)
        try:
            extract_gate.verify_for_spawn(paths, self.context.verifier(), study)
        except SpawnRefused as refused:
            self._refuse_as(actor, 409, "extract-invalid", str(refused), grant.study, detail)
        return manifest, open(paths.extract, "rb")

    def _refuse_as(self, actor: str, status: int, rule: str, message: str, study: str, detail: dict) -> None:
        self.context.audit.record(actor=actor, action="transfer.refused", study=study,
                                  detail={**detail, "reason": rule})
        raise TransferError(status, message, rule)

    async def _stream(self, manifest: bytes, extract: Any, size: int, expected_sha256: str) -> int | None:
        """Send the tar stream; None (connection cut before the end) if the extract is not what was verified."""
        chunk = self.transfer_settings.chunk_bytes
        head = (tar_header(MANIFEST_MEMBER, len(manifest)) + manifest + tar_padding(len(manifest))
                + tar_header(EXTRACT_MEMBER, size))
        written = len(head)
        digest = hashlib.sha256()
        try:
            self.write(head)
            await self.flush()
            left = size
            while left:
                block = await asyncio.to_thread(extract.read, min(chunk, left))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
                written += len(block)
                self.write(block)
                await self.flush()
            if left or digest.hexdigest() != expected_sha256:
                self.request.connection.close()  # a short, unfinished tar: the Job refuses it
                return None
            tail = tar_padding(size)
            written += len(tail)
            self.write(tail + tar_trailer(written))
            await self.flush()
        except iostream.StreamClosedError:
            return None
        return size


@web.stream_request_body
class WorkspaceUploadHandler(TransferHandler):
    scopes = {"PUT": (SCOPE_WORKSPACE_UPLOAD,)}
    _upload: Any = None
    _upload_path: str | None = None

    async def prepare(self) -> None:
        super().prepare()
        slug = self.path_kwargs["slug"]
        self._grant = await self.grant(slug, WORKSPACE_UPLOAD)
        with self.context.store.transaction() as session:
            study = load_study(session, slug)
        if study is None or study.state.value not in COLLECTABLE_STATES:
            self.context.audit.record(actor=f"job:{self._grant.job}", action="transfer.refused", study=slug, detail={
                "token": self._grant.token_id, "reason": "study-state"})
            raise TransferError(409, f"study {slug} is not active, expired or revoked: no workspaces are taken in",
                                "study-state")
        self._study = study
        paths = StudyPaths(self.context.home, slug)
        paths.root.mkdir(parents=True, exist_ok=True)
        self.request.connection.set_max_body_size(self.transfer_settings.max_upload_bytes)
        descriptor, self._upload_path = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=paths.root)
        self._upload = os.fdopen(descriptor, "wb")

    def data_received(self, chunk: bytes) -> None:
        self._upload.write(chunk)

    async def put(self, slug: str) -> None:
        actor = f"job:{self._grant.job}"
        self._upload.close()
        paths = StudyPaths(self.context.home, slug)
        try:
            members = await asyncio.to_thread(workspace_transfer.members_ever, self.context, self._study)
            report = await asyncio.to_thread(workspace_transfer.receive, self._upload_path, paths, members,
                                             staging_name=f".incoming-{secrets.token_hex(6)}")
        except workspace_transfer.UploadRefused as refused:
            self.context.audit.record(actor=actor, action="transfer.refused", study=slug, detail={
                "token": self._grant.token_id, "reason": refused.reason})
            raise TransferError(400, str(refused), refused.reason) from None
        finally:
            self._discard_upload()
        await asyncio.to_thread(complete, self.context, self._grant.token_id, actor=actor,
                                action="snapshot.workspaces-received", detail=report.as_dict())
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"received": report.as_dict()}))

    def _discard_upload(self) -> None:
        if self._upload is not None:
            self._upload.close()
        if self._upload_path:
            try:
                os.unlink(self._upload_path)
            except FileNotFoundError:
                pass
            self._upload_path = None

    def on_connection_close(self) -> None:
        self._discard_upload()  # the Job hung up or sent too much: nothing half-received stays

    def on_finish(self) -> None:
        self._discard_upload()


default_handlers = [
    (rf"/transfer/v1/extracts/{SLUG}", ExtractTransferHandler),
    (rf"/transfer/v1/workspaces/{SLUG}", WorkspaceUploadHandler),
]
