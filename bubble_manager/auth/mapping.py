"""From identity-provider claims to hub groups, second-factor evidence and access-review outcomes.

Pure functions over plain data, so every rule is tested without a provider or a hub:

- `hub_groups(claims, claim, group_map)`: the hub groups (`researchers`, `stewards`, `admins`) a
  person holds, from the groups claim their provider sent. A missing or malformed claim is a
  `ClaimError` naming what was wrong; it never falls back to a default role.
- `username_from(claims, claim)`: the hub username, or a `ClaimError`.
- `second_factor(claims, amr_values, acr_values)`: whether the ID token shows a second factor.
- `review(previous, current)`: what changes when a person's groups are re-read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

HUB_GROUPS = ("researchers", "stewards", "admins")
ROLE_OF_GROUP = {"researchers": "researcher", "stewards": "steward", "admins": "admin"}
MAX_GROUPS = 1000
MAX_NAME = 256
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")

# RFC 8176 authentication method references that stand for a factor beyond a password.
DEFAULT_SECOND_FACTOR_AMR = frozenset({"mfa", "mca", "otp", "hwk", "sc", "sms", "tel", "fpt", "face", "iris",
                                       "retina", "vbm"})


class ClaimError(ValueError):
    """A claim the provider sent (or did not send) that cannot be trusted to decide access."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def claim_value(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`groups`, `realm_access.roles`); `KeyError` when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def idp_groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The provider's group names from `claim`: a list of non-empty strings (one string counts as one group)."""
    try:
        value = claim_value(claims, claim)
    except KeyError:
        raise ClaimError("groups-claim-missing",
                         f"the identity provider sent no '{claim}' claim, so your roles here are unknown; ask your "
                         "access manager to release group membership to this application (an administrator can "
                         f"also check c.BubbleOIDCAuthenticator.groups_claim = {claim!r})") from None
    if isinstance(value, str):
        value = [value]  # AD FS sends a lone string for a single group
    if not isinstance(value, (list, tuple)):
        raise ClaimError("groups-claim-malformed",
                         f"the identity provider's '{claim}' claim is a {type(value).__name__}, not a list of group "
                         "names; your roles cannot be read from it")
    if len(value) > MAX_GROUPS:
        raise ClaimError("groups-claim-malformed",
                         f"the identity provider's '{claim}' claim lists {len(value)} groups (more than {MAX_GROUPS})")
    names = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_NAME:
            raise ClaimError("groups-claim-malformed",
                             f"the identity provider's '{claim}' claim holds an entry that is not a group name "
                             f"({type(item).__name__}); your roles cannot be read from it")
        names.append(item.strip())
    return names


def hub_groups(claims: Mapping[str, Any], claim: str, group_map: Mapping[str, str]) -> list[str]:
    """The hub groups granted by the provider's groups claim, sorted; [] when none maps (never a default)."""
    return sorted({group_map[name] for name in idp_groups(claims, claim) if name in group_map})


def check_group_map(group_map: Mapping[str, str]) -> None:
    """Refuse a mapping that targets anything but the three hub groups (or maps nothing)."""
    if not group_map:
        raise ValueError("the group map is empty, so nobody could sign in: map your identity provider's groups to "
                         f"{', '.join(HUB_GROUPS)}, e.g. {{'eds-researchers': 'researchers'}}")
    wrong = sorted({target for target in group_map.values() if target not in HUB_GROUPS})
    if wrong:
        raise ValueError(f"the group map targets {', '.join(map(repr, wrong))}: only {', '.join(HUB_GROUPS)} carry "
                         "bubble-manager roles (JupyterHub's own admin role is never granted from a group)")


def username_from(claims: Mapping[str, Any], claim: str) -> str:
    try:
        value = claim_value(claims, claim)
    except KeyError:
        raise ClaimError("username-claim-missing",
                         f"the identity provider sent no '{claim}' claim to name your account here; ask your access "
                         "manager to release it to this application") from None
    if not isinstance(value, str) or not USERNAME.match(value.strip()):
        raise ClaimError("username-claim-malformed",
                         f"the identity provider's '{claim}' claim is not a usable account name (1-128 letters, "
                         "digits and . _ @ + -)")
    return value.strip()


@dataclass(frozen=True)
class SecondFactor:
    ok: bool
    amr: tuple[str, ...]
    acr: str | None
    reason: str = ""


def second_factor(claims: Mapping[str, Any], amr_values: Iterable[str], acr_values: Iterable[str]) -> SecondFactor:
    """Whether the ID token's `amr` names a second factor or its `acr` is an accepted level."""
    amr = claims.get("amr")
    acr = claims.get("acr")
    amr_list = tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else ()
    acr_value = acr if isinstance(acr, str) else None
    if set(amr_list) & set(amr_values):
        return SecondFactor(True, amr_list, acr_value)
    if acr_value is not None and acr_value in set(acr_values):
        return SecondFactor(True, amr_list, acr_value)
    shown = (f"methods {', '.join(amr_list)}" if amr_list else "no authentication methods") + \
            (f", level {acr_value}" if acr_value else "")
    return SecondFactor(False, amr_list, acr_value,
                        f"your sign-in did not use a second factor (the identity provider reported {shown}). Health-"
                        "data rules require multi-factor authentication here: sign out of the identity provider, "
                        "then sign in again with your second factor (one-time code, security key or smart card); "
                        "if you have none, ask your access manager to enrol you")


@dataclass(frozen=True)
class Review:
    """What a re-read of someone's groups means for their access."""

    kind: str                      # "confirmed", "gained", "reduced" or "revoked"
    groups: tuple[str, ...]        # the hub groups they hold from now on
    lost: tuple[str, ...] = ()
    gained: tuple[str, ...] = ()
    reason: str = ""

    @property
    def keeps_access(self) -> bool:
        return self.kind in ("confirmed", "gained")

    @property
    def stops_bubbles(self) -> bool:
        return "researchers" in self.lost


def review(previous: Iterable[str], current: Iterable[str] | None, reason: str = "") -> Review:
    """Compare the hub groups held with those the provider now grants (None: provider no longer vouches)."""
    before = {g for g in previous if g in HUB_GROUPS}
    if current is None:
        return Review("revoked", (), tuple(sorted(before)), (), reason or "the identity provider no longer "
                                                                           "knows this account")
    after = {g for g in current if g in HUB_GROUPS}
    lost, gained = tuple(sorted(before - after)), tuple(sorted(after - before))
    if not after:
        return Review("revoked", (), lost, (), reason or "no longer in any allowed group")
    if lost:
        return Review("reduced", tuple(sorted(after)), lost, gained, reason or "removed from " + ", ".join(lost))
    return Review("gained" if gained else "confirmed", tuple(sorted(after)), (), gained, reason)
