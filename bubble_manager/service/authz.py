"""Who may do what in the service: custom scopes to roles, and which studies a person may see.

The hub binds its groups to custom scopes with `load_roles` (see hub_config/): researchers get
`custom:bubbles:use`, stewards `custom:bubbles:review`, admins `custom:bubbles:admin`. The
service's OAuth client lists these scopes in `oauth_client_allowed_scopes`, so the tokens it
receives carry them. A scope the token lacks is a 403, audited.
"""

from __future__ import annotations

from typing import Iterable

from ..studies import Actor, Study

SCOPE_USE = "custom:bubbles:use"
SCOPE_REVIEW = "custom:bubbles:review"
SCOPE_ADMIN = "custom:bubbles:admin"
ROLE_OF_SCOPE = {SCOPE_USE: "researcher", SCOPE_REVIEW: "steward", SCOPE_ADMIN: "admin"}
SCOPE_OF_ROLE = {role: scope for scope, role in ROLE_OF_SCOPE.items()}
CUSTOM_SCOPES = {
    SCOPE_USE: {"description": "Request studies and open the bubbles of studies you belong to."},
    SCOPE_REVIEW: {"description": "Review study requests, amendments and output requests."},
    SCOPE_ADMIN: {"description": "Operate bubbles, archives and the audit log (no access to data)."},
}


def actor_from_user_model(model: dict) -> Actor:
    """The Actor a hub user model stands for, with the roles its token's scopes grant."""
    scopes = set(model.get("scopes") or ())
    roles = frozenset(role for scope, role in ROLE_OF_SCOPE.items() if scope in scopes)
    return Actor(name=model["name"], roles=roles)


def can_see(actor: Actor, study: Study) -> bool:
    """Stewards and admins see every study; researchers those they requested or belong to."""
    if actor.has("steward") or actor.has("admin"):
        return True
    return actor.has("researcher") and (actor.name == study.requester or actor.name in study.members)


def visible(actor: Actor, studies: Iterable[Study]) -> list[Study]:
    return [study for study in studies if can_see(actor, study)]


def has_any(actor: Actor, scopes: Iterable[str]) -> bool:
    return any(actor.has(ROLE_OF_SCOPE[scope]) for scope in scopes)
