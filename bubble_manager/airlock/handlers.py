"""REST API of the airlock: `/api/v1/studies/<slug>/airlock[...]` and `/api/v1/airlock/queue`.

Requests and files are named in the body (POST) or the query (GET) by their ids, so every path
names only the study. Files leave only as attachments (`Content-Disposition: attachment`, a
sandboxing CSP, `nosniff`), raster images for stewards as images; nothing is ever rendered as HTML.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
from typing import Any, Callable
from urllib.parse import quote

from ..operations import UnknownStudy
from ..service.authz import SCOPE_REVIEW, SCOPE_USE
from ..service.base import ApiError, BaseHandler
from . import notify
from .delivery import DeliveryError
from .operations import AirlockOperations
from .quarantine import QuarantineError
from .review import AirlockRefused
from .sandbox import ParserError

SLUG = r"(?P<slug>[a-z][a-z0-9-]{0,29})"
FILE_CSP = "sandbox; default-src 'none'; img-src 'none'; frame-ancestors 'none'"


def airlock_error(error: Exception) -> ApiError:
    """Map airlock errors to HTTP answers naming the rule (refusals) or each file's problem (outbox)."""
    if isinstance(error, AirlockRefused):
        return ApiError(error.status, str(error), problems=[{"rule": error.rule}])
    if isinstance(error, QuarantineError):
        return ApiError(400, str(error), problems=error.problems)
    if isinstance(error, ParserError):
        return ApiError(422, str(error), problems=[{"rule": "parser-failed"}])
    if isinstance(error, DeliveryError):
        return ApiError(409, str(error), problems=[{"rule": "delivery"}])
    if isinstance(error, UnknownStudy):
        return ApiError(404, str(error))
    raise error


def send_file(handler: BaseHandler, data: bytes, path: str, content_type: str | None = None) -> None:
    """Bytes of an output as an attachment (or, for a checked raster image, an image), never as a page."""
    name = path.rsplit("/", 1)[-1]
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "file"
    handler.set_header("Content-Type", content_type or "application/octet-stream")
    disposition = "inline" if content_type else "attachment"
    handler.set_header("Content-Disposition", f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}")
    handler.set_header("Content-Security-Policy", FILE_CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Cross-Origin-Resource-Policy", "same-origin")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(data)


def whole_number(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise ApiError(400, f"{name} must be the id (a whole number) of the {name}", field=name)
    return value


async def off_loop(call: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking airlock operation (copying, parsing in the sandbox, hashing) in a worker thread,
    so the service keeps answering others meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(call, *args, **kwargs))


class AirlockHandler(BaseHandler):
    @property
    def airlock(self) -> AirlockOperations:
        return AirlockOperations(self.context, via={"channel": "api" if self.is_api else "panel"})

    def ids_from_query(self) -> tuple[int, int]:
        return (whole_number(self.get_argument("request", ""), "request"),
                whole_number(self.get_argument("file", ""), "file"))


class RequestsHandler(AirlockHandler):
    scopes = {"GET": (SCOPE_USE, SCOPE_REVIEW)}

    def get(self, slug: str) -> None:
        self.visible_study(slug)
        state = self.get_argument("state", "") or None
        if state not in (None, "review", "decided"):
            raise ApiError(400, "state must be 'review' or 'decided'", field="state")
        self.send_json({"requests": self.airlock.requests(slug, state=state)})


class OutboxHandler(AirlockHandler):
    scopes = {"GET": (SCOPE_USE,)}

    def get(self, slug: str) -> None:
        self.visible_study(slug)
        self.send_json({"outbox": self.airlock.outbox(self.actor, slug)})


class SubmitHandler(AirlockHandler):
    scopes = {"POST": (SCOPE_USE,)}

    async def post(self, slug: str) -> None:
        study = self.visible_study(slug)
        body = self.json_body()
        name = self.text_field(body, "outbox", max_length=200)
        try:
            document = await off_loop(self.airlock.submit_output, self.actor, slug, name)
        except Exception as error:
            raise airlock_error(error) from None
        self.send_json(document, status=201)
        notify.submitted(self.settings, study, document)


class ImportHandler(AirlockHandler):
    scopes = {"POST": (SCOPE_USE,)}

    async def post(self, slug: str) -> None:
        study = self.visible_study(slug)
        body = self.json_body()
        name = self.text_field(body, "name", max_length=200)
        justification = self.text_field(body, "justification")
        content = body.get("content_base64", "")
        if not isinstance(content, str):
            raise ApiError(400, "content_base64 must be the file's bytes in base64", field="content_base64")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "content_base64 is not valid base64", field="content_base64") from None
        try:
            document = await off_loop(self.airlock.submit_import, self.actor, slug, name, data, justification)
        except Exception as error:
            raise airlock_error(error) from None
        self.send_json(document, status=201)
        notify.submitted(self.settings, study, document)


class ReviewHandler(AirlockHandler):
    scopes = {"POST": (SCOPE_REVIEW,)}

    async def post(self, slug: str) -> None:
        self.visible_study(slug)
        body = self.json_body()
        request_id = whole_number(body.get("request"), "request")
        file_id = whole_number(body.get("file"), "file")
        decision = self.text_field(body, "decision", required=True, max_length=20)
        comment = self.text_field(body, "comment", required=True)
        try:
            document = await off_loop(self.airlock.review, self.actor, slug, request_id, file_id, decision, comment)
        except Exception as error:
            raise airlock_error(error) from None
        self.send_json(document)
        if document["decided_now"]:
            notify.decided(self.settings, document)


class FileHandler(AirlockHandler):
    """A file under review, for stewards: `as=image` for figures, an attachment otherwise."""

    scopes = {"GET": (SCOPE_REVIEW,)}

    async def get(self, slug: str) -> None:
        self.visible_study(slug)
        request_id, file_id = self.ids_from_query()
        as_image = self.get_argument("as", "attachment") == "image"
        try:
            data, info = await off_loop(self.airlock.view, self.actor, slug, request_id, file_id, as_image=as_image)
        except Exception as error:
            raise airlock_error(error) from None
        send_file(self, data, info["path"], info["content_type"])


class DownloadHandler(AirlockHandler):
    """An approved output, for the member who asked for it, once."""

    scopes = {"GET": (SCOPE_USE,)}

    async def get(self, slug: str) -> None:
        self.visible_study(slug)
        request_id, file_id = self.ids_from_query()
        try:
            data, info = await off_loop(self.airlock.download, self.actor, slug, request_id, file_id)
        except Exception as error:
            raise airlock_error(error) from None
        send_file(self, data, info["path"])


class QueueHandler(AirlockHandler):
    scopes = {"GET": (SCOPE_REVIEW,)}

    def get(self) -> None:
        self.send_json({"requests": self.airlock.queue(self.actor)})


default_handlers = [
    (rf"/api/v1/studies/{SLUG}/airlock", RequestsHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/outbox", OutboxHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/submit", SubmitHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/imports", ImportHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/review", ReviewHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/file", FileHandler),
    (rf"/api/v1/studies/{SLUG}/airlock/download", DownloadHandler),
    (r"/api/v1/airlock/queue", QueueHandler),
]
