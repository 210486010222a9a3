"""Access review: re-read people's groups at the provider and take away what they no longer hold.

Two paths reach `AccessReviewer.review`:

- the person's own requests: JupyterHub calls `refresh_user` when their auth info is older than
  `Authenticator.auth_refresh_age` (and before a spawn);
- the sweeper, a tornado `PeriodicCallback` started in the hub with the authenticator, every
  `access_review_sweep_seconds`: it reviews everyone who still holds something (groups, tokens,
  running servers) and was not confirmed for `access_review_max_age` seconds, with the refresh
  token kept in their encrypted auth state. `sweep()` can also be awaited from elsewhere.

Outcomes (`mapping.review`): confirmed or gained, the new groups apply; reduced (a group lost),
the groups shrink, every token and browser session ends (they sign in again with what is left)
and, when `researchers` was lost, their bubbles stop; revoked (no allowed group left, unknown to
the provider, refresh refused, or the provider unreachable for longer than
`max_unconfirmed_seconds`), the same and the stored tokens are forgotten. Each change is audited.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from tornado.ioloop import PeriodicCallback

from .. import clock
from .hub_actions import HubActions
from .mapping import ClaimError, Review, review

if TYPE_CHECKING:
    from .authenticator import BubbleOIDCAuthenticator

STATE_KEY = "bubble_manager"


class AccessReviewer:
    """Reviews one hub's users against the provider; owned by the authenticator."""

    def __init__(self, authenticator: "BubbleOIDCAuthenticator"):
        self.authenticator = authenticator
        self.log = authenticator.log
        self._locks: dict[str, asyncio.Lock] = {}
        self._confirmed: dict[str, float] = {}      # name -> monotonic time of the last confirmation
        self._audited: dict[str, float] = {}        # name -> monotonic time of the last confirmation audit
        self._callback: PeriodicCallback | None = None
        self._sweeping = False

    @property
    def hub(self) -> HubActions:
        return HubActions(self.authenticator.parent)

    # --- the sweeper ---

    def start_if_running(self) -> None:
        """Start the periodic sweep when constructed inside the running hub (not in plain unit tests)."""
        seconds = self.authenticator.access_review_sweep_seconds
        if seconds <= 0:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._callback = PeriodicCallback(self._sweep_in_background, seconds * 1000, jitter=0.1)
        self._callback.start()
        self.log.info("access review: sweeping every %.0f s; memberships older than %d s are re-read",
                      seconds, self.authenticator.access_review_max_age)

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def _sweep_in_background(self) -> None:
        if self._sweeping:
            return
        self._sweeping = True
        try:
            await self.sweep()
        except Exception:
            self.log.exception("access review sweep failed; it runs again in %.0f s",
                               self.authenticator.access_review_sweep_seconds)
        finally:
            self._sweeping = False

    async def sweep(self) -> dict[str, str]:
        """Review everyone due for it; returns name -> outcome kind ("confirmed", "revoked", ...)."""
        outcomes: dict[str, str] = {}
        max_age = self.authenticator.access_review_max_age
        hub = self.hub
        for name in hub.user_names():
            user = hub.user(name)
            if user is None or not hub.has_access_artifacts(user):
                continue
            last = self._confirmed.get(name)
            if last is not None and time.monotonic() - last < max_age:
                continue
            if last is None and await self._confirmed_recently(user, max_age):
                continue
            outcome, _ = await self._locked_review(user, "sweep")
            outcomes[name] = outcome.kind if outcome else "kept"
        return outcomes

    async def _confirmed_recently(self, user: Any, max_age: int) -> bool:
        """After a hub restart: trust the confirmation time kept in the auth state."""
        record = ((await user.get_auth_state()) or {}).get(STATE_KEY) or {}
        confirmed_at = record.get("confirmed_at")
        if not confirmed_at:
            return False
        age = (clock.utcnow() - clock.parse_iso(confirmed_at)).total_seconds()
        if age < max_age:
            self._confirmed[user.name] = time.monotonic() - age
            return True
        return False

    # --- one person ---

    def confirmed(self, name: str, *, audited: bool = False) -> None:
        self._confirmed[name] = time.monotonic()
        if audited:
            self._audited[name] = time.monotonic()

    async def review(self, user: Any, via: str) -> bool | dict[str, Any]:
        """`refresh_user`'s answer: the refreshed auth model, True (kept as is) or False (sign in again)."""
        _, result = await self._locked_review(user, via)
        return result

    async def _locked_review(self, user: Any, via: str) -> tuple[Review | None, bool | dict[str, Any]]:
        lock = self._locks.setdefault(user.name, asyncio.Lock())
        async with lock:
            return await self._review(user, via)

    async def _review(self, user: Any, via: str) -> tuple[Review | None, bool | dict[str, Any]]:
        auth, hub = self.authenticator, self.hub
        previous = hub.groups_of(user)
        old_state = await user.get_auth_state() or {}
        old_record = old_state.get(STATE_KEY) or {}
        try:
            result = await auth.read_provider(user)
        except ClaimError as error:
            result, outcome = False, review(previous, None, error.code)
        except Exception as error:  # provider unreachable or failing (5xx): no answer either way
            return await self._provider_unreachable(user, previous, old_record, via, error)
        else:
            outcome = self._decide(user, previous, old_state, result)
        if outcome.keeps_access and isinstance(result, dict):
            record = result["auth_state"][STATE_KEY]
            record.update(amr=old_record.get("amr", []), acr=old_record.get("acr"),
                          confirmed_at=clock.isoformat(clock.utcnow()))
            result["groups"] = list(outcome.groups)
            if via == "sweep":  # no request handler will store it
                hub.set_groups(user, outcome.groups)
                await user.save_auth_state(result["auth_state"])
            self._audit_confirmation(user.name, outcome, via)
            self.confirmed(user.name)
            return outcome, result
        await self._take_away(user, outcome, via, result)
        return outcome, False

    def _decide(self, user: Any, previous: list[str], old_state: dict[str, Any],
                result: bool | dict[str, Any]) -> Review:
        if result is True or not result:
            return review(previous, None, "no-stored-tokens" if not old_state else "provider-refused-refresh")
        record = result["auth_state"].get(STATE_KEY) or {}
        if result.get("name") != user.name:
            return review(previous, None, "account-name-changed")
        if record.get("refusal"):
            return review(previous, None, record["refusal"]["code"])
        allowed = set(self.authenticator.allowed_groups)
        return review(previous, [group for group in result.get("groups") or () if group in allowed])

    async def _provider_unreachable(self, user: Any, previous: list[str], old_record: dict[str, Any], via: str,
                                    error: Exception) -> tuple[Review | None, bool]:
        confirmed_at = old_record.get("confirmed_at")
        age = (clock.utcnow() - clock.parse_iso(confirmed_at)).total_seconds() if confirmed_at else float("inf")
        limit = self.authenticator.max_unconfirmed_seconds
        if age <= limit:
            self.log.warning("access review of %s: the provider did not answer (%s); access kept, last confirmed "
                             "%.0f s ago (limit %d s)", user.name, error, age, limit)
            return None, True
        outcome = review(previous, None, "provider-unreachable")
        await self._take_away(user, outcome, via, False)
        return outcome, False

    def _audit_confirmation(self, name: str, outcome: Review, via: str) -> None:
        now = time.monotonic()
        if outcome.kind == "gained":
            self.authenticator.audit(name, "auth.roles_changed", {"groups": list(outcome.groups),
                                                                  "gained": list(outcome.gained), "via": via})
        elif now - self._audited.get(name, float("-inf")) >= self.authenticator.confirmation_audit_seconds:
            self.authenticator.audit(name, "auth.confirmed", {"groups": list(outcome.groups), "via": via})
        else:
            return
        self._audited[name] = now

    async def _take_away(self, user: Any, outcome: Review, via: str, result: bool | dict[str, Any]) -> None:
        hub = self.hub
        stopped: list[str] = []
        problems: list[str] = []
        if outcome.kind == "revoked" or outcome.stops_bubbles:
            try:
                stopped = await hub.stop_servers(user)
            except Exception as error:  # still revoke the rest; the next sweep retries the stop
                self.log.exception("access review: stopping %s's servers failed", user.name)
                problems.append(f"stopping servers failed: {type(error).__name__}")
        hub.set_groups(user, outcome.groups)
        revoked = hub.revoke_tokens(user)
        hub.end_sessions(user)
        if outcome.kind == "revoked":
            await user.save_auth_state(None)     # forget the refresh token: only a new sign-in brings access back
            self._confirmed.pop(user.name, None)
        elif isinstance(result, dict):
            await user.save_auth_state(result["auth_state"])
        action = "auth.access_revoked" if outcome.kind == "revoked" else "auth.access_reduced"
        detail = {"reason": outcome.reason, "lost": list(outcome.lost), "groups": list(outcome.groups),
                  "servers_stopped": stopped, "tokens_revoked": revoked, "via": via}
        if problems:
            detail["problems"] = problems
        self.authenticator.audit(user.name, action, detail)
        self.log.warning("access review: %s %s (%s)", user.name, outcome.kind, outcome.reason)
