"""Airlock operations shared by the service and the CLI: each one checks, acts and audits at once.

A change and its audit entries are written in one store transaction; a refusal is audited in a
transaction of its own and raised again (`AirlockRefused`, `QuarantineError`). Audit entries carry
ids, counts, hashes and decisions, never file names or contents (names are the researcher's words
and may say more than they should; the encrypted ledger and archive keep them).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..operations import Context, UnknownStudy
from ..runtime.spec import StudyPaths
from ..store import load_study
from ..studies import Actor, Study
from . import quarantine
from .checks import overall_verdict
from .delivery import DeliveryError, deliver_import
from .ledger import write_ledger
from .models import AirlockFileRow, AirlockRequestRow, AirlockReviewRow
from .review import (APPROVED, PENDING, AirlockRefused, Review, check_download, check_reviewer, check_submitter,
                     decide)
from .sandbox import ParserError, ParserInput, run_parser
from .settings import AirlockSettings

IMPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8"}


def _reviews_of(session, file_ids: list[int]) -> dict[int, list[AirlockReviewRow]]:  # noqa: ANN001
    found: dict[int, list[AirlockReviewRow]] = {i: [] for i in file_ids}
    if file_ids:
        for review in session.scalars(select(AirlockReviewRow).where(AirlockReviewRow.file_id.in_(file_ids))
                                      .order_by(AirlockReviewRow.at, AirlockReviewRow.id)):
            found[review.file_id].append(review)
    return found


def request_document(request: AirlockRequestRow, files: list[AirlockFileRow],
                     reviews: dict[int, list[AirlockReviewRow]]) -> dict[str, Any]:
    return {
        "id": request.id, "study": request.slug, "kind": request.kind, "requester": request.requester,
        "state": request.state, "justification": request.justification, "source": request.source,
        "verdict": request.verdict, "created_at": clock.isoformat(request.created_at),
        "decided_at": clock.isoformat(request.decided_at) if request.decided_at else None,
        "files": [{
            "id": f.id, "path": f.path, "size": f.size, "sha256": f.sha256, "category": f.category,
            "verdict": f.verdict, "state": f.state, "report": f.report,
            "decided_at": clock.isoformat(f.decided_at) if f.decided_at else None,
            "downloaded": f.downloaded_at is not None, "delivered_to": f.delivered_to,
            "image": image_type(f.path, f.category) is not None,
            "reviews": [{"reviewer": r.reviewer, "decision": r.decision, "comment": r.comment,
                         "at": clock.isoformat(r.at)} for r in reviews.get(f.id, [])],
        } for f in files],
    }


def image_type(path: str, category: str) -> str | None:
    """The image type a file may be shown as (raster images only, never SVG or anything else)."""
    return IMAGE_TYPES.get(PurePosixPath(path).suffix.lower()) if category == "figure" else None


def parser_order(paths: list[str]) -> list[str]:
    """ACRO's results.json first, so the tables it describes are checked with its verdicts."""
    return sorted(paths, key=lambda p: (PurePosixPath(p).name != "results.json", p))


class AirlockOperations:
    """The airlock's commands, whoever calls them (panel, API, CLI)."""

    def __init__(self, context: Context, *, via: dict[str, Any] | None = None):
        self.context = context
        self.via = via or {}
        self.settings = AirlockSettings(config=context.settings.config)

    # --- reading ---------------------------------------------------------------------------

    def study(self, slug: str) -> Study:
        with self.context.store.transaction() as session:
            study = load_study(session, slug)
        if study is None:
            raise UnknownStudy(slug)
        return study

    def outbox(self, actor: Actor, slug: str) -> list[dict[str, Any]]:
        """The caller's own outbox folders in the study (none if they are not a member)."""
        study = self.study(slug)
        if actor.name not in study.members:
            return []
        entries = quarantine.list_outbox(StudyPaths(self.context.home, slug).workspace(actor.name),
                                         max_entries=self.settings.max_outbox_requests,
                                         max_manifest_bytes=self.settings.max_manifest_bytes)
        with self.context.store.transaction() as session:
            submitted: dict[str, list[int]] = {}
            for row in session.scalars(select(AirlockRequestRow).where(
                    AirlockRequestRow.slug == slug, AirlockRequestRow.kind == "output",
                    AirlockRequestRow.requester == actor.name).order_by(AirlockRequestRow.id)):
                submitted.setdefault(row.source, []).append(row.id)
        return [{**entry.as_dict(), "submitted_as": submitted.get(entry.name, [])} for entry in entries]

    def requests(self, slug: str, *, state: str | None = None) -> list[dict[str, Any]]:
        with self.context.store.transaction() as session:
            query = select(AirlockRequestRow).where(AirlockRequestRow.slug == slug)
            if state:
                query = query.where(AirlockRequestRow.state == state)
            return self._documents(session, list(session.scalars(query.order_by(AirlockRequestRow.id.desc()))))

    def request(self, request_id: int) -> dict[str, Any]:
        with self.context.store.transaction() as session:
            row = session.get(AirlockRequestRow, request_id)
            if row is None:
                raise AirlockRefused("unknown", f"no airlock request {request_id}")
            return self._documents(session, [row])[0]

    def queue(self, actor: Actor) -> list[dict[str, Any]]:
        """Requests waiting for review, with whether the caller may review them."""
        with self.context.store.transaction() as session:
            rows = list(session.scalars(select(AirlockRequestRow).where(AirlockRequestRow.state == "review")
                                        .order_by(AirlockRequestRow.created_at)))
            documents = self._documents(session, rows)
            studies = {slug: load_study(session, slug) for slug in {row.slug for row in rows}}
        for document in documents:
            study = studies[document["study"]]
            document["own"] = study.involved(actor.name) or document["requester"] == actor.name
        return documents

    def _documents(self, session, rows: list[AirlockRequestRow]) -> list[dict[str, Any]]:  # noqa: ANN001
        if not rows:
            return []
        files: dict[int, list[AirlockFileRow]] = {row.id: [] for row in rows}
        for file in session.scalars(select(AirlockFileRow).where(AirlockFileRow.request_id.in_(list(files)))
                                    .order_by(AirlockFileRow.path)):
            files[file.request_id].append(file)
        reviews = _reviews_of(session, [f.id for group in files.values() for f in group])
        return [request_document(row, files[row.id], reviews) for row in rows]

    # --- submitting ------------------------------------------------------------------------

    def submit_output(self, actor: Actor, slug: str, outbox_name: str) -> dict[str, Any]:
        """Copy the caller's `work/outbox/<outbox_name>/` into quarantine, check it, queue it for review."""
        study = self.study(slug)
        settings = self.settings
        try:
            check_submitter(study, actor)
            staged = quarantine.stage_outbox_request(
                self.context.home, slug, StudyPaths(self.context.home, slug).workspace(actor.name), outbox_name,
                max_file_bytes=settings.max_file_bytes, max_total_bytes=settings.max_request_bytes,
                max_files=settings.max_request_files, max_manifest_bytes=settings.max_manifest_bytes)
        except AirlockRefused as refusal:
            self._refused(actor, slug, "submit", refusal.rule)
            raise
        except quarantine.QuarantineError as error:
            self._refused(actor, slug, "submit", "outbox", problems=error.codes())
            raise
        counts = {path: tuple(columns) for path, columns in staged.manifest.get("counts", {}).items()}
        return self._record(actor, study, "output", outbox_name, staged, counts)

    def submit_import(self, actor: Actor, slug: str, name: str, data: bytes, justification: str) -> dict[str, Any]:
        """An uploaded file for the study's shared folder, quarantined until stewards approve it."""
        study = self.study(slug)
        try:
            check_submitter(study, actor, importing=True)
            self._check_import(name, data, justification)
        except AirlockRefused as refusal:
            self._refused(actor, slug, "import", refusal.rule)
            raise
        staged = quarantine.stage_upload(self.context.home, slug, name, data)
        staged.manifest = {"justification": justification.strip()}
        staged.manifest_sha256 = staged.files[0].sha256
        return self._record(actor, study, "import", name, staged, {})

    def _check_import(self, name: str, data: bytes, justification: str) -> None:
        settings = self.settings
        suffix = PurePosixPath(name).suffix.lower()
        if not IMPORT_NAME.match(name or ""):
            raise AirlockRefused("import-name", "the file name must be letters, digits, '.', '_' or '-' (at most 100 "
                                                "characters, not starting with '.'); rename the file")
        if suffix not in settings.import_extensions:
            raise AirlockRefused("import-type", f"{suffix or 'files without an extension'} cannot be imported; "
                                                f"allowed: {', '.join(settings.import_extensions)}")
        if not data:
            raise AirlockRefused("import-empty", "the uploaded file is empty")
        if len(data) > settings.import_max_bytes:
            raise AirlockRefused("import-size", f"the file has {len(data)} bytes, over the limit of "
                                                f"{settings.import_max_bytes} bytes for imports")
        if not justification.strip():
            raise AirlockRefused("justification", "say why this file is needed in the bubble (justification)")
        if len(justification) > 5000:
            raise AirlockRefused("justification", "the justification is longer than 5000 characters")
        if suffix not in (".parquet", ".xlsx"):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise AirlockRefused("import-type", f"a {suffix} file must be UTF-8 text") from None
            if "\x00" in text:
                raise AirlockRefused("import-type", f"a {suffix} file must be text (it holds NUL bytes)")

    def _record(self, actor: Actor, study: Study, kind: str, source: str, staged: quarantine.StagedRequest,
                counts: dict[str, tuple[str, ...]]) -> dict[str, Any]:
        slug = study.slug
        by_path = {f.path: f for f in staged.files}
        try:
            with self.context.store.transaction() as session:
                earlier = session.scalar(select(AirlockRequestRow.id).where(
                    AirlockRequestRow.slug == slug, AirlockRequestRow.kind == kind,
                    AirlockRequestRow.requester == actor.name, AirlockRequestRow.source == source,
                    AirlockRequestRow.source_sha256 == staged.manifest_sha256))
            if earlier is not None:
                raise AirlockRefused("already-submitted", f"this {'outbox folder' if kind == 'output' else 'file'} "
                                                          f"was already submitted, unchanged, as request {earlier}")
            reports = run_parser(self.settings, [
                ParserInput(path, staged.host_path(path), by_path[path].size, counts.get(path, ()))
                for path in parser_order(list(by_path))])
        except (AirlockRefused, ParserError) as error:
            staged.discard()
            self._refused(actor, slug, "submit" if kind == "output" else "import",
                          error.rule if isinstance(error, AirlockRefused) else "parser-failed")
            raise
        now = clock.utcnow()
        target: Path | None = None
        try:
            with self.context.store.transaction() as session:
                request = AirlockRequestRow(slug=slug, kind=kind, requester=actor.name, state="review",
                                            justification=staged.manifest.get("justification", ""), source=source,
                                            source_sha256=staged.manifest_sha256, created_at=now,
                                            verdict=overall_verdict(r["verdict"] for r in reports.values()))
                session.add(request)
                session.flush()
                for path, item in sorted(by_path.items()):
                    report = reports[path]
                    session.add(AirlockFileRow(request_id=request.id, path=path, size=item.size, sha256=item.sha256,
                                               category=report["category"][:20], verdict=report["verdict"],
                                               report=report, state=PENDING))
                flags: dict[str, int] = {}
                for report in reports.values():
                    for flag in report["flags"]:
                        flags[str(flag.get("check"))] = flags.get(str(flag.get("check")), 0) + 1
                verdicts = {v: sum(1 for r in reports.values() if r["verdict"] == v) for v in ("pass", "flagged", "manual")}
                self.context.audit.append(session, actor=actor.name, action="airlock.submitted", study=slug, detail={
                    "request": request.id, "kind": kind, "files": len(by_path),
                    "bytes": sum(f.size for f in staged.files), "verdict": request.verdict, "verdicts": verdicts,
                    "flags": flags, **self._via()})
                session.flush()
                target = quarantine.commit_staging(staged.folder, self.context.home, slug, request.id)
                request_id = request.id
        except IntegrityError:
            staged.discard()
            if target is not None:
                quarantine.discard_folder(target)
            raise AirlockRefused("already-submitted", "this request was just submitted by another session") from None
        except BaseException:
            staged.discard()
            if target is not None:
                quarantine.discard_folder(target)
            raise
        return self.request(request_id)

    # --- reviewing -------------------------------------------------------------------------

    def review(self, actor: Actor, slug: str, request_id: int, file_id: int, decision: str,
               comment: str) -> dict[str, Any]:
        """One steward's decision on one file; releases or rejects it when the rule is met. The answer
        is the request, with `decided_now` true when this decision closed its last pending file."""
        comment = (comment or "").strip()
        try:
            if not comment:
                raise AirlockRefused("comment", "a comment is required with every review decision")
            if len(comment) > 5000:
                raise AirlockRefused("comment", "the comment is longer than 5000 characters")
            gid = self._import_gid(slug, request_id)
            with self.context.store.transaction() as session:
                request, file, study = self._load(session, slug, request_id, file_id, for_update=True)
                check_reviewer(study, actor, request.requester)
                earlier = [Review(r.reviewer, r.decision) for r in _reviews_of(session, [file.id])[file.id]]
                required = self.settings.required_reviews
                new_state = decide(file.state, earlier, Review(actor.name, decision), required)
                now = clock.utcnow()
                session.add(AirlockReviewRow(file_id=file.id, reviewer=actor.name, decision=decision,
                                             comment=comment, at=now))
                approvals = len({r.reviewer for r in earlier if r.decision == "approve"}) + (decision == "approve")
                self.context.audit.append(session, actor=actor.name, action="airlock.reviewed", study=slug, detail={
                    "request": request.id, "file": file.id, "decision": decision, "approvals": approvals,
                    "required": required, **self._via()})
                if new_state != PENDING:
                    self._close_file(session, request, file, new_state, now, [r.reviewer for r in earlier]
                                     + [actor.name], gid)
                session.flush()
                decided = self._maybe_close_request(session, request, now)
        except (AirlockRefused, DeliveryError) as error:
            self._refused(actor, slug, "review", error.rule if isinstance(error, AirlockRefused) else "delivery",
                          request=request_id, file=file_id)
            raise
        if new_state != PENDING or decided:
            write_ledger(self.context, slug)
        return {**self.request(request_id), "decided_now": decided}

    def _import_gid(self, slug: str, request_id: int) -> int | None:
        """The study's group, for imports (allocated here if no bubble ever started; outside any transaction)."""
        with self.context.store.transaction() as session:
            request = session.get(AirlockRequestRow, request_id)
            kind, requester = (request.kind, request.requester) if request else (None, None)
        if kind != "import":
            return None
        from ..runtime import uids
        from ..runtime.settings import LocalBubbles

        gid = uids.study_ids(self.context.store, slug).get("")
        if gid is None:
            local = LocalBubbles(config=self.context.settings.config)
            gid = uids.allocate(self.context.store, self.context.audit, slug, requester, local.uid_min,
                                local.uid_max).gid
        return gid

    def _close_file(self, session, request: AirlockRequestRow, file: AirlockFileRow, state: str,  # noqa: ANN001
                    now, reviewers: list[str], gid: int | None) -> None:  # noqa: ANN001
        file.state = state
        file.decided_at = now
        action = "airlock.released" if state == APPROVED else "airlock.rejected"
        self.context.audit.append(session, actor="bubble-manager", action=action, study=request.slug, detail={
            "request": request.id, "file": file.id, "sha256": file.sha256, "size": file.size,
            "verdict": file.verdict, "reviewers": reviewers})
        if state == APPROVED and request.kind == "import":
            data = quarantine.read_quarantined(self.context.home, request.slug, request.id, file.path, file.sha256)
            name = f"{request.id}-{PurePosixPath(file.path).name}"
            file.delivered_to = deliver_import(self.context.home, request.slug, name, data, int(gid or 0))
            self.context.audit.append(session, actor="bubble-manager", action="airlock.import-delivered",
                                      study=request.slug, detail={"request": request.id, "file": file.id,
                                                                  "sha256": file.sha256, "size": file.size})

    def _maybe_close_request(self, session, request: AirlockRequestRow, now) -> bool:  # noqa: ANN001
        states = session.scalars(select(AirlockFileRow.state).where(AirlockFileRow.request_id == request.id)).all()
        if request.state == "review" and all(state != PENDING for state in states):
            request.state = "decided"
            request.decided_at = now
            return True
        return False

    def _load(self, session, slug: str, request_id: int, file_id: int, *, for_update: bool = False):  # noqa: ANN001
        query = select(AirlockRequestRow).where(AirlockRequestRow.id == request_id)
        request = session.scalars(query.with_for_update() if for_update else query).one_or_none()
        if request is None or request.slug != slug:
            raise AirlockRefused("unknown", f"study {slug} has no airlock request {request_id}")
        file = session.get(AirlockFileRow, file_id)
        if file is None or file.request_id != request.id:
            raise AirlockRefused("unknown", f"request {request_id} has no file {file_id}")
        study = load_study(session, slug)
        if study is None:
            raise UnknownStudy(slug)
        return request, file, study

    # --- files out -------------------------------------------------------------------------

    def download(self, actor: Actor, slug: str, request_id: int, file_id: int) -> tuple[bytes, dict[str, Any]]:
        """The approved file's bytes, for the member who asked for it, once (audited)."""
        try:
            with self.context.store.transaction() as session:
                request, file, study = self._load(session, slug, request_id, file_id, for_update=True)
                check_download(study, actor, kind=request.kind, requester=request.requester, state=file.state,
                               downloaded=file.downloaded_at is not None)
                data = quarantine.read_quarantined(self.context.home, slug, request.id, file.path, file.sha256)
                file.downloaded_at = clock.utcnow()
                self.context.audit.append(session, actor=actor.name, action="airlock.downloaded", study=slug, detail={
                    "request": request.id, "file": file.id, "sha256": file.sha256, "size": file.size, **self._via()})
                info = {"path": file.path, "sha256": file.sha256, "size": file.size}
        except AirlockRefused as refusal:
            self._refused(actor, slug, "download", refusal.rule, request=request_id, file=file_id)
            raise
        except quarantine.QuarantineError:
            self._refused(actor, slug, "download", "altered", request=request_id, file=file_id)
            raise
        write_ledger(self.context, slug)
        return data, info

    def view(self, actor: Actor, slug: str, request_id: int, file_id: int, *, as_image: bool = False
             ) -> tuple[bytes, dict[str, Any]]:
        """A file's bytes for a steward reviewing it: as an attachment, or as an image if it is one."""
        try:
            with self.context.store.transaction() as session:
                request, file, study = self._load(session, slug, request_id, file_id)
                check_reviewer(study, actor, request.requester)
                content_type = image_type(file.path, file.category) if as_image else None
                if as_image and content_type is None:
                    raise AirlockRefused("not-an-image", "only PNG, JPEG and GIF figures are shown as images; "
                                                         "download the file instead")
                data = quarantine.read_quarantined(self.context.home, slug, request.id, file.path, file.sha256)
                if content_type and not data.startswith(IMAGE_MAGIC[content_type]):
                    raise AirlockRefused("not-an-image", "the file's content is not the image its name says")
                self.context.audit.append(session, actor=actor.name, action="airlock.viewed", study=slug, detail={
                    "request": request.id, "file": file.id, "as": "image" if as_image else "attachment",
                    **self._via()})
                info = {"path": file.path, "sha256": file.sha256, "size": file.size, "content_type": content_type}
        except AirlockRefused as refusal:
            self._refused(actor, slug, "view", refusal.rule, request=request_id, file=file_id)
            raise
        return data, info

    # --- audit -----------------------------------------------------------------------------

    def _refused(self, actor: Actor, slug: str, attempted: str, rule: str, **detail: Any) -> None:
        self.context.audit.record(actor=actor.name, action="airlock.refused", study=slug,
                                  detail={"attempted": attempted, "rule": rule, **detail, **self._via()})

    def _via(self) -> dict[str, Any]:
        return {"via": self.via} if self.via else {}
