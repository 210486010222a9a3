"""E-mails about airlock requests, through the service's notifier (SMTP when configured).

Stewards who may review (not involved in the study) hear of a new request; the member who asked
hears when every file of it is decided. Sent in the background; a failure is logged, never fatal.
Messages name the request and the study, never a file's content.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..studies import Study


def in_background(settings: dict, job) -> None:  # noqa: ANN001 - a coroutine function
    if settings.get("bm_notifier") is None:
        return
    asyncio.ensure_future(job())


def submitted(settings: dict, study: Study, document: dict[str, Any]) -> None:
    """Tell the stewards who may review it that a request waits."""

    async def send() -> None:
        hub = settings.get("bm_hub_api")
        if hub is None:
            return
        stewards = await hub.group_members(settings["bm_service"].steward_group)
        people = [s for s in stewards if not study.involved(s) and s != document["requester"]]
        notifier = settings["bm_notifier"]
        subject = f"{document['kind'].capitalize()} request #{document['id']} to review for study {study.slug}"
        body = (f"{subject}\n\nAsked by: {document['requester']}\nFiles: {len(document['files'])}\n"
                f"Automatic checks: {document['verdict']}\n\nOpen the bubble-manager panel (Outputs) to review it.\n")
        await asyncio.get_running_loop().run_in_executor(None, lambda: notifier.send(
            [a for a in (notifier.address_of(p) for p in dict.fromkeys(people)) if a], subject, body))

    in_background(settings, send)


def decided(settings: dict, document: dict[str, Any]) -> None:
    """Tell the member who asked that every file of their request is decided."""

    async def send() -> None:
        notifier = settings["bm_notifier"]
        address = notifier.address_of(document["requester"])
        if not address:
            return
        approved = sum(1 for f in document["files"] if f["state"] == "approved")
        subject = f"Your {document['kind']} request #{document['id']} for study {document['study']} is decided"
        what = "downloaded once from the request's page" if document["kind"] == "output" else \
            "delivered to the study's shared folder (shared/imports/)"
        body = (f"{subject}\n\n{approved} of {len(document['files'])} files approved; approved files can be "
                f"{what}.\n\nOpen the bubble-manager panel for the stewards' comments.\n")
        await asyncio.get_running_loop().run_in_executor(None, lambda: notifier.send([address], subject, body))

    in_background(settings, send)
