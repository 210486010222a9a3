"""The airlock's rules (pure): who may submit, review, download; how reviews decide a file.

Like study approvals (`studies.py`), separation of duties: a reviewer is a steward who is neither
the study's requester, nor a member (present or proposed), nor the person who asked for the
output; `required_reviews` distinct stewards must approve a file before it is released, and one
rejection rejects it. Only the member who asked for an output may download it, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..studies import Actor, State, Study

SUBMIT_STATES = {State.active, State.expired}
IMPORT_STATES = {State.active}
REVIEW_STATES = {State.active, State.expired}
DOWNLOAD_STATES = {State.active, State.expired}
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
DECISIONS = ("approve", "reject")
FORBIDDEN_RULES = {"role", "self-review", "member-review", "not-member", "not-requester"}


class AirlockRefused(Exception):
    """An airlock action refused by a rule; `rule` is a short stable name (audited, shown as 403/409)."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(message)

    @property
    def status(self) -> int:
        return 403 if self.rule in FORBIDDEN_RULES else (404 if self.rule == "unknown" else 409)


@dataclass(frozen=True)
class Review:
    reviewer: str
    decision: str


def _state_allows(study: Study, states: set[State], what: str) -> None:
    if study.state not in states:
        raise AirlockRefused("study-state", f"study {study.slug} is {study.state.value.replace('_', ' ')}: "
                                            f"{what} is not possible now")


def check_submitter(study: Study, actor: Actor, *, importing: bool = False) -> None:
    """Outputs and imports are requested by a member of the study, for the study's bubble."""
    if not actor.has("researcher"):
        raise AirlockRefused("role", f"{actor.name} may not request outputs or imports: only researchers can")
    if actor.name not in study.members:
        raise AirlockRefused("not-member", f"only members of study {study.slug} can request "
                                           f"{'imports' if importing else 'outputs'} (they work in its bubble)")
    _state_allows(study, IMPORT_STATES if importing else SUBMIT_STATES, "an import" if importing else "an output request")


def check_reviewer(study: Study, actor: Actor, requester: str) -> None:
    if not actor.has("steward"):
        raise AirlockRefused("role", f"{actor.name} may not review airlock requests: only stewards can")
    if actor.name == requester or actor.name == study.requester:
        raise AirlockRefused("self-review", f"{actor.name} asked for this or requested study {study.slug}, and "
                                            "may not review it; another steward must")
    if study.involved(actor.name):
        raise AirlockRefused("member-review", f"{actor.name} is a member of study {study.slug} and may not review "
                                              "its outputs or imports; another steward must")
    _state_allows(study, REVIEW_STATES, "a review")


def decide(state: str, reviews: Iterable[Review], new: Review, required: int) -> str:
    """The file's state once `new` is added to `reviews` (raises if the review is not allowed)."""
    if new.decision not in DECISIONS:
        raise AirlockRefused("decision", f"decision must be one of {', '.join(DECISIONS)}, not {new.decision!r}")
    if state != PENDING:
        raise AirlockRefused("already-decided", f"this file was already {state}; its review is closed")
    earlier = list(reviews)
    if any(r.reviewer == new.reviewer for r in earlier):
        raise AirlockRefused("already-reviewed", f"{new.reviewer} has already reviewed this file; another steward "
                                                 "must give the next review")
    if new.decision == "reject":
        return REJECTED
    approvals = {r.reviewer for r in earlier if r.decision == "approve"} | {new.reviewer}
    return APPROVED if len(approvals) >= required else PENDING


def check_download(study: Study, actor: Actor, *, kind: str, requester: str, state: str, downloaded: bool) -> None:
    if kind != "output":
        raise AirlockRefused("not-an-output", "imports are delivered to the study's shared folder, not downloaded")
    if actor.name != requester:
        raise AirlockRefused("not-requester", f"only {requester}, who asked for this output, may download it")
    if actor.name not in study.members:
        raise AirlockRefused("not-member", f"{actor.name} is no longer a member of study {study.slug}")
    _state_allows(study, DOWNLOAD_STATES, "a download")
    if state != APPROVED:
        raise AirlockRefused("not-approved", f"this file is {state}: only approved files can be downloaded")
    if downloaded:
        raise AirlockRefused("already-downloaded", "this file was already downloaded: each approved file can be "
                                                   "downloaded once (ask for it again if it was lost)")
