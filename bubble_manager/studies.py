"""Studies and their lifecycle: a pure state machine, no I/O.

    draft -> submitted -> (changes_requested -> submitted) -> approved | rejected
          -> active -> expired -> archived -> purged
    revoked from any live state, then archived and purged like an expired study.

`apply(study, actor, action, now=..., policy=...)` returns a `Transition` (the new study and the
audit events to record) or raises `TransitionError` naming the rule that refused the action.
Separation of duties: an approver is never the requester nor a member, and `required_approvals`
distinct stewards must approve the exact version (sha256) of the request or amendment.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from . import clock
from .catalog import Catalog
from .study_request import StudyRequest, canonical_json, catalog_problems, free_text_columns, MEMBER_PATTERN


class State(str, enum.Enum):
    draft = "draft"
    submitted = "submitted"
    changes_requested = "changes_requested"
    approved = "approved"
    rejected = "rejected"
    active = "active"
    expired = "expired"
    revoked = "revoked"
    archived = "archived"
    purged = "purged"


REVOCABLE = {State.submitted, State.changes_requested, State.approved, State.active}
AMENDABLE = {State.approved, State.active}
EDITABLE = {State.draft, State.changes_requested}
ROLES = ("researcher", "steward", "admin")


@dataclass(frozen=True)
class Policy:
    """Site rules for studies (configured through `bubble_manager.config.BubbleManager`)."""

    required_approvals: int = 1
    max_study_days: int = 1095
    retention_days: int = 3650
    max_retention_days: int = 7305

    def __post_init__(self) -> None:
        if not 1 <= self.required_approvals <= 5:
            raise ValueError("required_approvals must be between 1 and 5")
        if self.max_study_days < 1 or self.retention_days < 0 or self.max_retention_days < self.retention_days:
            raise ValueError("study length and retention periods must be positive, retention within its maximum")


@dataclass(frozen=True)
class Actor:
    """Who acts: a hub user with their roles, or the system itself (the reconciler)."""

    name: str
    roles: frozenset[str] = frozenset()
    system: bool = False

    def has(self, role: str) -> bool:
        return self.system or role in self.roles


SYSTEM = Actor("bubble-manager", frozenset(), system=True)


@dataclass(frozen=True)
class Approval:
    steward: str
    target_hash: str
    at: dt.datetime
    comment: str = ""
    include_free_text: tuple[str, ...] = ()


@dataclass(frozen=True)
class Amendment:
    """A change to an approved study (extension or members), approved like the request itself."""

    kind: str  # "extend" or "members"
    proposer: str
    proposed_at: dt.datetime
    ends: dt.date | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def body(self) -> dict[str, Any]:
        return {"kind": self.kind, "ends": self.ends.isoformat() if self.ends else None,
                "add": list(self.add), "remove": list(self.remove)}

    @property
    def amendment_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.body).encode()).hexdigest()


@dataclass(frozen=True)
class Study:
    slug: str
    state: State
    requester: str
    request: StudyRequest
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    members: tuple[str, ...]
    ends: dt.date
    approvals: tuple[Approval, ...] = ()
    amendment: Amendment | None = None
    free_text_approved: tuple[str, ...] = ()
    retention_days: int | None = None
    retention_until: dt.date | None = None
    closed_on: dt.date | None = None
    last_comment: str = ""

    @property
    def title(self) -> str:
        return self.request.title

    @property
    def starts(self) -> dt.date:
        return self.request.starts

    @property
    def request_hash(self) -> str:
        return self.request.request_hash

    @property
    def starts_at(self) -> dt.datetime:
        return clock.start_of_day(self.starts)

    @property
    def expires_at(self) -> dt.datetime:
        """The study stops at the end of its last day, UTC."""
        return clock.end_of_day(self.ends)

    def days_left(self, now: dt.datetime) -> int:
        return max(0, (self.expires_at - now).days)

    def current_target_hash(self) -> str:
        """What approvals must be bound to now: the pending amendment, or the request."""
        return self.amendment.amendment_hash if self.amendment else self.request_hash

    def approvers(self) -> list[str]:
        target = self.current_target_hash()
        return [a.steward for a in self.approvals if a.target_hash == target]

    def involved(self, name: str) -> bool:
        """The requester and members (present or proposed) may never approve."""
        proposed = self.amendment.add if self.amendment else ()
        return name == self.requester or name in self.members or name in proposed


@dataclass(frozen=True)
class AuditEvent:
    action: str
    study: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    study: Study
    events: tuple[AuditEvent, ...]


class TransitionError(Exception):
    """An action refused by a lifecycle rule. `rule` is a short stable name for the rule."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(message)


# --- actions -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Create:
    request: StudyRequest


@dataclass(frozen=True)
class Edit:
    request: StudyRequest


@dataclass(frozen=True)
class Submit:
    catalog: Catalog
    # (cohort SQL, catalog) -> [(field, message)]: the extract subsystem's parse-time cohort check
    cohort_checker: Any = None


@dataclass(frozen=True)
class Approve:
    comment: str = ""
    include_free_text: tuple[str, ...] = ()
    catalog: Catalog | None = None


@dataclass(frozen=True)
class Reject:
    comment: str


@dataclass(frozen=True)
class RequestChanges:
    comment: str


@dataclass(frozen=True)
class Activate:
    pass


@dataclass(frozen=True)
class Expire:
    pass


@dataclass(frozen=True)
class Revoke:
    reason: str


@dataclass(frozen=True)
class Archive:
    pass


@dataclass(frozen=True)
class Purge:
    pass


@dataclass(frozen=True)
class ProposeExtension:
    ends: dt.date


@dataclass(frozen=True)
class ProposeMembers:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetRetention:
    days: int
    reason: str


Action = (Create | Edit | Submit | Approve | Reject | RequestChanges | Activate | Expire | Revoke
          | Archive | Purge | ProposeExtension | ProposeMembers | SetRetention)


def action_name(action: Action) -> str:
    return {
        Create: "request", Edit: "edit", Submit: "submit", Approve: "approve", Reject: "reject",
        RequestChanges: "request-changes", Activate: "activate", Expire: "expire", Revoke: "revoke",
        Archive: "archive", Purge: "purge", ProposeExtension: "extend", ProposeMembers: "members",
        SetRetention: "set-retention",
    }[type(action)]


# --- the transition function -------------------------------------------------------------------

def apply(study: Study | None, actor: Actor, action: Action, *, now: dt.datetime, policy: Policy) -> Transition:
    """Apply `action` by `actor` at `now`; return the new study and its audit events."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware UTC")
    if isinstance(action, Create):
        if study is not None:
            raise TransitionError("slug-taken", f"a study with slug {study.slug!r} already exists; choose another slug")
        return _create(actor, action, now, policy)
    if study is None:
        raise TransitionError("unknown-study", "no such study")
    if study.state is State.purged:
        raise TransitionError("purged", f"study {study.slug} is purged; nothing can be done with it any more")
    handler = _HANDLERS[type(action)]
    return handler(study, actor, action, now, policy)


def _create(actor: Actor, action: Create, now: dt.datetime, policy: Policy) -> Transition:
    _require_role(actor, "researcher", "request a study")
    request = action.request
    _check_dates(request.starts, request.ends, now, policy)
    study = Study(
        slug=request.slug, state=State.draft, requester=actor.name, request=request, version=1,
        created_at=now, updated_at=now, members=request.members, ends=request.ends,
    )
    return _done(study, "study.requested", version=1, request_hash=request.request_hash,
                 members=list(request.members), starts=str(request.starts), ends=str(request.ends))


def _edit(study: Study, actor: Actor, action: Edit, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, EDITABLE, "edit the request")
    _require_requester(study, actor, "edit the request")
    if action.request.slug != study.slug:
        raise TransitionError("slug-fixed", f"the slug of a study cannot change (study {study.slug}, document {action.request.slug})")
    _check_dates(action.request.starts, action.request.ends, now, policy)
    new = replace(study, request=action.request, version=study.version + 1, members=action.request.members,
                  ends=action.request.ends, approvals=(), updated_at=now)
    return _done(new, "study.edited", version=new.version, request_hash=action.request.request_hash)


def _submit(study: Study, actor: Actor, action: Submit, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, EDITABLE, "submit")
    _require_requester(study, actor, "submit the request")
    _check_dates(study.starts, study.ends, now, policy)
    problems = catalog_problems(study.request, action.catalog)
    if problems:
        listed = "; ".join(f"{where}: {message}" for where, message in problems)
        raise TransitionError("catalog", f"the request asks for data the catalog refuses: {listed}")
    cohort = action.cohort_checker(study.request.cohort, action.catalog) if action.cohort_checker else []
    if cohort:
        listed = "; ".join(message for _, message in cohort)
        raise TransitionError("cohort", f"the cohort query is refused: {listed}")
    new = replace(study, state=State.submitted, approvals=(), updated_at=now)
    return _done(new, "study.submitted", version=study.version, request_hash=study.request_hash)


def _approve(study: Study, actor: Actor, action: Approve, now: dt.datetime, policy: Policy) -> Transition:
    amending = study.state in AMENDABLE and study.amendment is not None
    if not amending:
        _require_state(study, {State.submitted}, "approve",
                       hint="only a submitted request or a pending amendment can be approved")
    _require_reviewer(study, actor, "approve")
    if not amending:
        _check_dates(study.starts, study.ends, now, policy)
    target = study.current_target_hash()
    if actor.name in study.approvers():
        raise TransitionError("already-approved", f"{actor.name} has already approved this version of {study.slug}; "
                              "another steward must give the next approval")
    include = tuple(dict.fromkeys(action.include_free_text))
    if include:
        if action.catalog is None:
            raise TransitionError("catalog", "naming free-text columns needs the catalog")
        requested = set(free_text_columns(study.request, action.catalog))
        unknown = [c for c in include if c not in requested]
        if unknown:
            raise TransitionError("free-text", f"{', '.join(unknown)}: not a free-text column of this request")
    approval = Approval(steward=actor.name, target_hash=target, at=now, comment=action.comment,
                        include_free_text=include)
    approvals = tuple(a for a in study.approvals if a.target_hash == target) + (approval,)
    new = replace(study, approvals=approvals, updated_at=now, last_comment=action.comment or study.last_comment)
    events = [AuditEvent("study.approval", study.slug, {"target_hash": target, "approvals": len(approvals),
                                                         "required": policy.required_approvals,
                                                         "kind": "amendment" if amending else "request"})]
    if len(approvals) >= policy.required_approvals:
        if amending:
            new = _apply_amendment(new, now, policy)
            events.append(AuditEvent("study.amended", study.slug, {**study.amendment.body, "amendment_hash": target,
                                                                   "approvers": [a.steward for a in approvals]}))
        else:
            agreed = set.intersection(*(set(a.include_free_text) for a in approvals))
            free_text = tuple(c for c in include if c in agreed)
            new = replace(new, state=State.approved, free_text_approved=free_text)
            events.append(AuditEvent("study.approved", study.slug, {"request_hash": target,
                                                                    "approvers": [a.steward for a in approvals],
                                                                    "free_text": list(free_text)}))
    return Transition(new, tuple(events))


def _apply_amendment(study: Study, now: dt.datetime, policy: Policy) -> Study:
    amendment = study.amendment
    assert amendment is not None
    if amendment.kind == "extend":
        _check_dates(study.starts, amendment.ends, now, policy)
        return replace(study, ends=amendment.ends, amendment=None, approvals=())
    members = [m for m in study.members if m not in amendment.remove] + list(amendment.add)
    return replace(study, members=tuple(members), amendment=None, approvals=())


def _reject(study: Study, actor: Actor, action: Reject, now: dt.datetime, policy: Policy) -> Transition:
    _require_comment(action.comment, "reject")
    if study.state in AMENDABLE and study.amendment is not None:
        _require_reviewer(study, actor, "reject the amendment")
        new = replace(study, amendment=None, approvals=(), updated_at=now, last_comment=action.comment)
        return _done(new, "study.amendment_rejected", **study.amendment.body, comment=action.comment)
    _require_state(study, {State.submitted}, "reject")
    _require_reviewer(study, actor, "reject")
    new = replace(study, state=State.rejected, approvals=(), updated_at=now, last_comment=action.comment)
    return _done(new, "study.rejected", comment=action.comment)


def _request_changes(study: Study, actor: Actor, action: RequestChanges, now: dt.datetime, policy: Policy) -> Transition:
    _require_comment(action.comment, "request changes")
    _require_state(study, {State.submitted}, "request changes")
    _require_reviewer(study, actor, "request changes")
    new = replace(study, state=State.changes_requested, approvals=(), updated_at=now, last_comment=action.comment)
    return _done(new, "study.changes_requested", comment=action.comment)


def _activate(study: Study, actor: Actor, action: Activate, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, {State.approved}, "activate")
    _require_any_role(actor, ("admin",), "activate a study")
    if now < study.starts_at:
        raise TransitionError("not-started", f"study {study.slug} starts on {study.starts}; it can be activated from that day")
    if now >= study.expires_at:
        raise TransitionError("expired", f"study {study.slug} ended on {study.ends}; it can no longer be activated")
    return _done(replace(study, state=State.active, updated_at=now), "study.activated")


def _expire(study: Study, actor: Actor, action: Expire, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, {State.approved, State.active}, "expire")
    _require_any_role(actor, ("admin",), "expire a study")
    if now < study.expires_at:
        raise TransitionError("not-ended", f"study {study.slug} runs until the end of {study.ends}; revoke it to stop earlier")
    new = replace(study, state=State.expired, amendment=None, closed_on=now.date(), updated_at=now)
    return _done(new, "study.expired", ends=str(study.ends))


def _revoke(study: Study, actor: Actor, action: Revoke, now: dt.datetime, policy: Policy) -> Transition:
    _require_comment(action.reason, "revoke")
    _require_state(study, REVOCABLE, "revoke")
    _require_any_role(actor, ("steward", "admin"), "revoke a study")
    new = replace(study, state=State.revoked, amendment=None, closed_on=now.date(), updated_at=now,
                  last_comment=action.reason)
    return _done(new, "study.revoked", reason=action.reason, previous_state=study.state.value)


def _archive(study: Study, actor: Actor, action: Archive, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, {State.expired, State.revoked}, "archive")
    _require_any_role(actor, ("admin",), "archive a study")
    closed = study.closed_on or now.date()
    days = study.retention_days if study.retention_days is not None else policy.retention_days
    until = closed + dt.timedelta(days=days)
    new = replace(study, state=State.archived, retention_until=until, updated_at=now)
    return _done(new, "study.archived", retention_until=str(until))


def _purge(study: Study, actor: Actor, action: Purge, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, {State.archived}, "purge")
    _require_any_role(actor, ("admin",), "purge a study")
    assert study.retention_until is not None
    if now < clock.end_of_day(study.retention_until):
        raise TransitionError("retention", f"study {study.slug} must be kept until {study.retention_until} "
                              "(its retention period); a steward can shorten it with set-retention")
    return _done(replace(study, state=State.purged, updated_at=now), "study.purged")


def _propose_extension(study: Study, actor: Actor, action: ProposeExtension, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, AMENDABLE, "request an extension")
    _require_participant_or_steward(study, actor, "request an extension")
    _require_no_pending(study)
    if action.ends <= study.ends:
        raise TransitionError("extension-shorter", f"an extension must end after the current end date {study.ends}; "
                              "to stop earlier, revoke the study")
    _check_dates(study.starts, action.ends, now, policy)
    amendment = Amendment(kind="extend", proposer=actor.name, proposed_at=now, ends=action.ends)
    new = replace(study, amendment=amendment, approvals=(), updated_at=now)
    return _done(new, "study.amendment_proposed", **amendment.body, amendment_hash=amendment.amendment_hash)


def _propose_members(study: Study, actor: Actor, action: ProposeMembers, now: dt.datetime, policy: Policy) -> Transition:
    _require_state(study, AMENDABLE, "change members", hint="before approval, edit the request instead")
    _require_participant_or_steward(study, actor, "change members")
    _require_no_pending(study)
    add, remove = tuple(dict.fromkeys(action.add)), tuple(dict.fromkeys(action.remove))
    if not add and not remove:
        raise TransitionError("members-empty", "name at least one member to add or remove")
    for name in add:
        if not MEMBER_PATTERN.match(name):
            raise TransitionError("members-invalid", f"{name!r} is not a valid user name")
        if name in study.members:
            raise TransitionError("members-present", f"{name} is already a member of {study.slug}")
    for name in remove:
        if name not in study.members:
            raise TransitionError("members-absent", f"{name} is not a member of {study.slug}")
    if not [m for m in study.members if m not in remove] + list(add):
        raise TransitionError("members-none", "a study keeps at least one member")
    amendment = Amendment(kind="members", proposer=actor.name, proposed_at=now, add=add, remove=remove)
    new = replace(study, amendment=amendment, approvals=(), updated_at=now)
    return _done(new, "study.amendment_proposed", **amendment.body, amendment_hash=amendment.amendment_hash)


def _set_retention(study: Study, actor: Actor, action: SetRetention, now: dt.datetime, policy: Policy) -> Transition:
    _require_comment(action.reason, "change the retention period")
    _require_any_role(actor, ("steward",), "change the retention period")
    if study.state in {State.draft, State.rejected}:
        raise TransitionError("state", f"study {study.slug} is {study.state.value}; nothing is retained for it")
    if not 0 <= action.days <= policy.max_retention_days:
        raise TransitionError("retention-range", f"retention must be between 0 and {policy.max_retention_days} days")
    until = study.retention_until
    if study.state is State.archived:
        until = (study.closed_on or now.date()) + dt.timedelta(days=action.days)
    new = replace(study, retention_days=action.days, retention_until=until, updated_at=now)
    return _done(new, "study.retention_set", days=action.days, reason=action.reason,
                 retention_until=str(until) if until else None)


_HANDLERS = {
    Edit: _edit, Submit: _submit, Approve: _approve, Reject: _reject, RequestChanges: _request_changes,
    Activate: _activate, Expire: _expire, Revoke: _revoke, Archive: _archive, Purge: _purge,
    ProposeExtension: _propose_extension, ProposeMembers: _propose_members, SetRetention: _set_retention,
}


# --- rules -------------------------------------------------------------------------------------

def _done(study: Study, action: str, **detail: Any) -> Transition:
    return Transition(study, (AuditEvent(action, study.slug, detail),))


def _require_state(study: Study, allowed: set[State], what: str, hint: str = "") -> None:
    if study.state not in allowed:
        states = ", ".join(sorted(s.value for s in allowed))
        raise TransitionError("state", f"cannot {what} study {study.slug}: it is {study.state.value} "
                              f"(allowed from: {states}){'; ' + hint if hint else ''}")


def _require_role(actor: Actor, role: str, what: str) -> None:
    if not actor.has(role):
        raise TransitionError("role", f"{actor.name} may not {what}: the {role} role is needed")


def _require_any_role(actor: Actor, roles: tuple[str, ...], what: str) -> None:
    if not any(actor.has(role) for role in roles):
        raise TransitionError("role", f"{actor.name} may not {what}: one of the roles {', '.join(roles)} is needed")


def _require_requester(study: Study, actor: Actor, what: str) -> None:
    if actor.name != study.requester:
        raise TransitionError("requester-only", f"only the requester ({study.requester}) may {what}")


def _require_reviewer(study: Study, actor: Actor, what: str) -> None:
    _require_role(actor, "steward", what)
    if actor.system:
        raise TransitionError("role", "the system never reviews a study; a steward must")
    if actor.name == study.requester:
        raise TransitionError("self-review", f"{actor.name} requested study {study.slug} and may not {what} it")
    if study.involved(actor.name):
        raise TransitionError("member-review", f"{actor.name} is a member of study {study.slug} and may not {what} it")


def _require_participant_or_steward(study: Study, actor: Actor, what: str) -> None:
    if actor.name == study.requester or actor.name in study.members or actor.has("steward"):
        return
    raise TransitionError("role", f"{actor.name} may not {what}: only the requester, a member or a steward can")


def _require_no_pending(study: Study) -> None:
    if study.amendment is not None:
        raise TransitionError("amendment-pending", f"study {study.slug} already has a pending {study.amendment.kind} "
                              "amendment; a steward must approve or reject it first")


def _require_comment(text: str, what: str) -> None:
    if not text or not text.strip():
        raise TransitionError("comment-required", f"a comment is required to {what}")


def _check_dates(starts: dt.date, ends: dt.date | None, now: dt.datetime, policy: Policy) -> None:
    if ends is None:
        raise TransitionError("dates", "an end date is required")
    if ends <= starts:
        raise TransitionError("dates", f"the end date {ends} must be after the start date {starts}")
    if clock.end_of_day(ends) <= now:
        raise TransitionError("dates", f"the end date {ends} has already passed; choose a later end date")
    length = (ends - starts).days + 1
    if length > policy.max_study_days:
        raise TransitionError("dates", f"the study would last {length} days; the site allows at most "
                              f"{policy.max_study_days} (ask for an extension later instead)")


def study_summary(study: Study, now: dt.datetime) -> dict[str, Any]:
    """A plain, JSON-ready view of a study for the CLI and the API."""
    return {
        "slug": study.slug, "title": study.title, "state": study.state.value, "requester": study.requester,
        "members": list(study.members), "starts": str(study.starts), "ends": str(study.ends),
        "days_left": study.days_left(now) if study.state in (State.approved, State.active) else None,
        "version": study.version, "request_hash": study.request_hash,
        "approvals": [{"steward": a.steward, "at": clock.isoformat(a.at), "comment": a.comment,
                       "target_hash": a.target_hash} for a in study.approvals],
        "amendment": ({**study.amendment.body, "proposer": study.amendment.proposer,
                       "amendment_hash": study.amendment.amendment_hash} if study.amendment else None),
        "free_text_approved": list(study.free_text_approved),
        "retention_until": str(study.retention_until) if study.retention_until else None,
        "last_comment": study.last_comment,
        "created_at": clock.isoformat(study.created_at), "updated_at": clock.isoformat(study.updated_at),
    }

