"""Panel pages of the airlock: a study's outputs and imports, the stewards' queue, a request's review.

Members confirm the requests their bubble wrote into `work/outbox/` (an authenticated, audited
click: the bubble itself cannot reach the service), upload imports, and download what was
released to them. Stewards read each file's report, look at the file (an attachment, or an image
for figures) and approve or reject it with a comment. Outputs are never rendered into a page.
"""

from __future__ import annotations

from urllib.parse import quote

from ..service.authz import SCOPE_REVIEW, SCOPE_USE
from ..service.base import ApiError
from ..service.pages import PageHandler
from . import notify
from .handlers import SLUG, airlock_error, off_loop, send_file
from .operations import AirlockOperations
from .review import AirlockRefused

REQUEST = r"(?P<request_id>[0-9]{1,12})"
FILE = r"(?P<file_id>[0-9]{1,12})"


class AirlockPage(PageHandler):
    @property
    def airlock(self) -> AirlockOperations:
        return AirlockOperations(self.context, via={"channel": "panel"})

    def back(self, path: str, error: Exception | None = None) -> None:
        if error is None:
            self.go(path)
            return
        message = airlock_error(error).message
        self.go(f"{path}{'&' if '?' in path else '?'}error={quote(message[:500])}")

    def request_of(self, request_id: str) -> dict:
        """The request if the caller may see its study (stewards, or the study's people); 404 otherwise."""
        try:
            document = self.airlock.request(int(request_id))
        except AirlockRefused:
            raise ApiError(404, f"no airlock request {request_id}") from None
        self.visible_study(document["study"])
        return document


class StudyAirlockPage(AirlockPage):
    scopes = {"GET": (SCOPE_USE, SCOPE_REVIEW)}

    def get(self, slug: str) -> None:
        study = self.visible_study(slug)
        actor = self.actor
        self.render_page("airlock_study.html", study=study, outbox=self.airlock.outbox(actor, slug),
                         requests=self.airlock.requests(slug), member=actor.name in study.members,
                         import_extensions=self.airlock.settings.import_extensions,
                         import_max_bytes=self.airlock.settings.import_max_bytes,
                         error=self.get_argument("error", ""))


class SubmitPage(AirlockPage):
    scopes = {"POST": (SCOPE_USE,)}

    async def post(self, slug: str) -> None:
        study = self.visible_study(slug)
        try:
            document = await off_loop(self.airlock.submit_output, self.actor, slug, self.get_argument("outbox", ""))
        except Exception as error:
            self.back(f"studies/{slug}/airlock", error)
            return
        self.go(f"airlock/requests/{document['id']}")
        notify.submitted(self.settings, study, document)


class ImportPage(AirlockPage):
    scopes = {"POST": (SCOPE_USE,)}

    async def post(self, slug: str) -> None:
        study = self.visible_study(slug)
        uploads = self.request.files.get("file") or []
        if len(uploads) != 1:
            self.back(f"studies/{slug}/airlock", AirlockRefused("import-empty", "choose one file to upload"))
            return
        upload = uploads[0]
        try:
            document = await off_loop(self.airlock.submit_import, self.actor, slug, upload["filename"],
                                      upload["body"], self.get_argument("justification", ""))
        except Exception as error:
            self.back(f"studies/{slug}/airlock", error)
            return
        self.go(f"airlock/requests/{document['id']}")
        notify.submitted(self.settings, study, document)


class QueuePage(AirlockPage):
    scopes = {"GET": (SCOPE_REVIEW,)}

    def get(self) -> None:
        self.render_page("airlock_queue.html", requests=self.airlock.queue(self.actor))


class RequestPage(AirlockPage):
    scopes = {"GET": (SCOPE_USE, SCOPE_REVIEW)}

    def get(self, request_id: str) -> None:
        document = self.request_of(request_id)
        study = self.visible_study(document["study"])
        actor = self.actor
        may_review = (actor.has("steward") and not study.involved(actor.name)
                      and actor.name != document["requester"])
        self.render_page("airlock_request.html", request=document, study=study, may_review=may_review,
                         is_requester=actor.name == document["requester"],
                         required=self.airlock.settings.required_reviews, error=self.get_argument("error", ""))


class ReviewPage(AirlockPage):
    scopes = {"POST": (SCOPE_REVIEW,)}

    async def post(self, request_id: str, file_id: str) -> None:
        document = self.request_of(request_id)
        try:
            reviewed = await off_loop(self.airlock.review, self.actor, document["study"], int(request_id),
                                      int(file_id), self.get_argument("decision", ""), self.get_argument("comment", ""))
        except Exception as error:
            self.back(f"airlock/requests/{request_id}", error)
            return
        self.go(f"airlock/requests/{request_id}")
        if reviewed["decided_now"]:
            notify.decided(self.settings, reviewed)


class FilePage(AirlockPage):
    """Stewards' view of a file: `raw` as an attachment, `image` as an image (raster figures only)."""

    scopes = {"GET": (SCOPE_REVIEW,)}

    async def get(self, request_id: str, file_id: str, how: str) -> None:
        document = self.request_of(request_id)
        try:
            data, info = await off_loop(self.airlock.view, self.actor, document["study"], int(request_id),
                                        int(file_id), as_image=how == "image")
        except Exception as error:
            raise airlock_error(error) from None
        send_file(self, data, info["path"], info["content_type"])


class DownloadPage(AirlockPage):
    scopes = {"GET": (SCOPE_USE,)}

    async def get(self, request_id: str, file_id: str) -> None:
        document = self.request_of(request_id)
        try:
            data, info = await off_loop(self.airlock.download, self.actor, document["study"], int(request_id),
                                        int(file_id))
        except Exception as error:
            raise airlock_error(error) from None
        send_file(self, data, info["path"])


default_handlers = [
    (rf"/studies/{SLUG}/airlock", StudyAirlockPage),
    (rf"/studies/{SLUG}/airlock/submit", SubmitPage),
    (rf"/studies/{SLUG}/airlock/import", ImportPage),
    (r"/airlock/review", QueuePage),
    (rf"/airlock/requests/{REQUEST}", RequestPage),
    (rf"/airlock/requests/{REQUEST}/files/{FILE}/review", ReviewPage),
    (rf"/airlock/requests/{REQUEST}/files/{FILE}/(?P<how>raw|image)", FilePage),
    (rf"/airlock/requests/{REQUEST}/files/{FILE}/download", DownloadPage),
]

