"""`BubbleOIDCAuthenticator`: sign in through the hospital's OpenID Connect provider.

    c.JupyterHub.authenticator_class = "bubble_manager.auth.authenticator.BubbleOIDCAuthenticator"
    c.BubbleOIDCAuthenticator.issuer = "https://idp.example-hospital.fr/realms/eds"
    c.BubbleOIDCAuthenticator.group_map = {"eds-researchers": "researchers", ...}

A layer on oauthenticator's `GenericOAuthenticator` (hub_config/oidc.py has the full set-up):

- endpoints come from the provider's discovery document (`issuer`), the client secret from a file;
- the hub groups a person holds come from a groups claim, mapped by `group_map`; a missing or
  malformed claim refuses the sign-in, it never grants a default role; `allowed_groups` are the
  three hub groups, so someone in none of them is refused; JupyterHub's own admin role is never
  granted (`admin_users` and `admin_groups` must stay empty: it opens every user's server);
- the ID token's signature, issuer, audience and expiry are checked, and its `amr` / `acr` must
  show a second factor, else the sign-in is refused with a page that says why;
- groups are re-read from the provider on the person's requests (`auth_refresh_age`) and, for
  those who do not come back, by the access-review sweeper (`review.py`) with the refresh token
  kept in the encrypted auth state;
- every sign-in, refusal, logout and access change is audited in bubble-manager's audit log.
"""

from __future__ import annotations

import html
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import jwt
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado import web
from traitlets import Bool, Dict, Float, Integer, Set, Unicode, default

from .. import clock
from ..config import load_settings
from ..operations import Context
from ..runtime.hub_tokens import PanelTokensMixin
from .mapping import (DEFAULT_SECOND_FACTOR_AMR, HUB_GROUPS, ClaimError, check_group_map, hub_groups, idp_groups,
                      second_factor, username_from)

STATE_KEY = "bubble_manager"   # our part of the encrypted auth state
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class AccessRefused(web.HTTPError):
    """A refused sign-in: the hub's error page shows `message` and a way to try again."""

    def __init__(self, code: str, message: str, retry_url: str = ""):
        super().__init__(403, "sign-in refused (%s)", code, reason="Sign-in refused")
        self.code = code
        self.jupyterhub_message = message
        retry = (f' <a href="{html.escape(retry_url)}">Sign out of the identity provider</a> and try again.'
                 if retry_url else "")
        self.jupyterhub_html_message = (f"{html.escape(message[:1].upper() + message[1:])}.{retry}"
                                        f"<br><small>Reference: {html.escape(code)}</small>")


class BubbleLogoutHandler(OAuthLogoutHandler):
    """Ends the hub session (cookie and the session's tokens), then the provider's session."""

    async def get(self) -> None:
        user = self.current_user
        self._id_token_hint = None
        if user is not None:
            state = await user.get_auth_state() or {}
            self._id_token_hint = state.get("id_token")
            self.authenticator.audit(user.name, "auth.logout", {"idp_logout": bool(self.authenticator.idp_logout_url())})
        await super().get()

    async def render_logout_page(self) -> None:
        target = self.authenticator.idp_logout_url(self._id_token_hint)
        if target:
            self.redirect(target)
            return
        await super().render_logout_page()


class BubbleOIDCAuthenticator(PanelTokensMixin, GenericOAuthenticator):
    """OIDC sign-in with groups mapped to bubble-manager roles, a required second factor and access review."""

    logout_handler = BubbleLogoutHandler

    issuer = Unicode(help="The provider's issuer URL; its /.well-known/openid-configuration fills authorize_url, "
                          "token_url, userdata_url, jwks_url and end_session_url unless they are set.").tag(config=True)
    client_secret_file = Unicode(help="File holding the client secret (one line, root-only); preferred to "
                                      "client_secret in a config file.").tag(config=True)
    jwks_url = Unicode(help="The provider's signing keys (JWKS), to check ID token signatures (from discovery)."
                       ).tag(config=True)
    end_session_url = Unicode(help="The provider's end_session_endpoint (RP-initiated logout, from discovery)."
                              ).tag(config=True)
    idp_logout = Bool(True, help="On logout, also end the provider's session (redirect to end_session_url).").tag(
        config=True)
    post_logout_redirect_url = Unicode(help="Where the provider sends the browser back after its logout (register "
                                            "it with the provider), e.g. https://hub.example/hub/login.").tag(config=True)
    groups_claim = Unicode("groups", help="Claim (dotted path, e.g. realm_access.roles) listing the person's "
                                          "groups at the provider.").tag(config=True)
    group_map = Dict(Unicode(), help="Provider group name -> hub group (researchers, stewards or admins). Groups "
                                     "not listed are ignored; a person with none of them is refused.").tag(config=True)
    mfa_required = Bool(True, help="Refuse sign-ins whose ID token shows no second factor (amr/acr).").tag(config=True)
    mfa_amr_values = Set(Unicode(), default_value=set(DEFAULT_SECOND_FACTOR_AMR),
                         help="`amr` values (RFC 8176) that show a second factor; one is enough.").tag(config=True)
    mfa_acr_values = Set(Unicode(), help="`acr` values that show multi-factor authentication (e.g. a level of "
                                         "assurance such as Keycloak's 'gold' or 'eidas2').").tag(config=True)
    verify_id_token_signature = Bool(True, help="Check the ID token's signature against the provider's JWKS (the "
                                                "token also comes straight from the token endpoint over TLS)."
                                     ).tag(config=True)
    bubble_manager_home = Unicode(help="bubble-manager's data folder ($BUBBLE_MANAGER_HOME), for the audit log."
                                  ).tag(config=True)
    bubble_manager_config = Unicode(help="bubble-manager's config file (default HOME/bubble_manager_config.py)."
                                    ).tag(config=True)
    access_review_max_age = Integer(3600, help="Seconds after which a person's groups are re-read from the "
                                               "provider by the sweeper, when they have not come back.").tag(config=True)
    access_review_sweep_seconds = Float(300.0, help="How often the access-review sweeper runs in the hub (0: never;"
                                                    " then call `AccessReviewer.sweep` from elsewhere).").tag(config=True)
    max_unconfirmed_seconds = Integer(4 * 3600, help="How long access is kept while the provider cannot be "
                                                     "reached; past it, access is revoked until the next sign-in."
                                      ).tag(config=True)
    confirmation_audit_seconds = Integer(3600, help="A confirmed, unchanged membership is audited at most this "
                                                    "often per person (changes are always audited).").tag(config=True)

    @default("login_service")
    def _login_service(self) -> str:
        return "your hospital account"

    @default("manage_groups")
    def _manage_groups(self) -> bool:
        return True

    @default("enable_auth_state")
    def _auth_state(self) -> bool:
        return True

    @default("allowed_groups")
    def _allowed_groups(self) -> set[str]:
        return set(HUB_GROUPS)

    @default("username_claim")
    def _username_claim(self) -> str:
        return "preferred_username"

    @default("scope")
    def _scope(self) -> list[str]:
        return ["openid", "profile", "email", "groups", "offline_access"]

    @default("auth_refresh_strict")
    def _strict(self) -> bool:
        return True  # an API request whose owner lost access is refused, not served with stale rights

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._check_configuration()
        if self.client_secret_file:
            with open(self.client_secret_file, encoding="utf-8") as secret:
                self.client_secret = secret.read().strip()
        if self.issuer:
            self._discover()
        self._jwks: dict[str, Any] | None = None
        self._context: Context | None = None
        from .review import AccessReviewer

        self.reviewer = AccessReviewer(self)
        self.reviewer.start_if_running()

    # --- configuration ---

    def _check_configuration(self) -> None:
        check_group_map(self.group_map)
        if self.admin_users or self.admin_groups:
            raise ValueError("BubbleOIDCAuthenticator: admin_users and admin_groups must stay empty: JupyterHub's "
                             "admin role can open every user's server and act as them. Map the provider's admin "
                             "group to 'admins' in group_map (the bubble-admin role) instead")
        if self.allow_all or self.allowed_users:
            raise ValueError("BubbleOIDCAuthenticator admits people by group only: unset allow_all and "
                             "allowed_users and map their group in group_map")
        if not self.enable_auth_state:
            raise ValueError("BubbleOIDCAuthenticator needs enable_auth_state = True (the access review re-reads "
                             "groups with the stored refresh token); set JUPYTERHUB_CRYPT_KEY")
        if not self.manage_groups:
            raise ValueError("BubbleOIDCAuthenticator needs manage_groups = True: roles come from the provider")
        if not set(self.allowed_groups) <= set(HUB_GROUPS):
            raise ValueError(f"allowed_groups may only name {', '.join(HUB_GROUPS)}")

    def _discover(self) -> None:
        """Fill the endpoints from the discovery document, at hub start-up (before any request)."""
        wanted = {"authorize_url": "authorization_endpoint", "token_url": "token_endpoint",
                  "userdata_url": "userinfo_endpoint", "jwks_url": "jwks_uri", "end_session_url": "end_session_endpoint"}
        if all(getattr(self, trait) for trait in wanted):
            return
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - the configured issuer
                document = json.load(answer)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise ValueError(f"cannot read the OIDC discovery document {url}: {error}; check "
                             "c.BubbleOIDCAuthenticator.issuer, or set authorize_url, token_url, userdata_url and "
                             "jwks_url yourself") from None
        if document.get("issuer", "").rstrip("/") != self.issuer.rstrip("/"):
            raise ValueError(f"the discovery document at {url} names issuer {document.get('issuer')!r}, not "
                             f"{self.issuer!r}: fix c.BubbleOIDCAuthenticator.issuer")
        for trait, key in wanted.items():
            if not getattr(self, trait) and document.get(key):
                setattr(self, trait, document[key])

    # --- audit ---

    @property
    def context(self) -> Context:
        if self._context is None:
            if not self.bubble_manager_home:
                raise ValueError("c.BubbleOIDCAuthenticator.bubble_manager_home is not set: the audit log lives there")
            settings = load_settings(self.bubble_manager_home, self.bubble_manager_config or None)
            self._context = Context.open(settings, migrate=False)
        return self._context

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        self.context.audit.record(actor=actor or "unknown", action=action,
                                  detail={"idp": self.issuer or self.token_url, **detail})

    def refuse(self, name: str | None, code: str, message: str, **detail: Any) -> AccessRefused:
        """Audit a refused sign-in and build the error the hub shows."""
        try:
            self.audit(name or "unknown", "auth.refused", {"reason": code, **detail})
        except Exception:  # the refusal stands even if the audit log cannot be written; say so loudly
            self.log.exception("could not audit the refused sign-in of %s (%s)", name, code)
        self.log.warning("sign-in of %s refused: %s", name or "an unnamed account", code)
        return AccessRefused(code, message, self.idp_logout_url())

    # --- claims ---

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        if callable(self.username_claim):
            return super().user_info_to_username(user_info)
        return username_from(user_info, self.username_claim)

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """Map the groups claim once; a bad claim is kept as a refusal (never a default role)."""
        auth_state = auth_model["auth_state"]
        claims = auth_state.get(self.user_auth_state_key) or {}
        record: dict[str, Any] = {"idp_groups": [], "groups": [], "refusal": None}
        try:
            record["idp_groups"] = idp_groups(claims, self.groups_claim)[:100]
            record["groups"] = hub_groups(claims, self.groups_claim, self.group_map)
        except ClaimError as error:
            record["refusal"] = {"code": error.code, "message": str(error)}
        auth_state[STATE_KEY] = record
        return auth_model

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set((auth_state.get(STATE_KEY) or {}).get("groups") or [])

    async def id_token_claims(self, id_token: str | None) -> dict[str, Any]:
        """The ID token's claims, after checking signature (JWKS), issuer, audience and expiry."""
        if not id_token:
            raise ClaimError("id-token-missing", "the identity provider returned no ID token, so the way you signed "
                                                 "in cannot be checked (the 'openid' scope must be requested)")
        try:
            header = jwt.get_unverified_header(id_token)
            options = {"require": ["exp", "iat", "iss", "aud"]}
            if self.verify_id_token_signature:
                if header.get("alg") not in SIGNING_ALGORITHMS:
                    raise jwt.InvalidTokenError(f"unexpected signing algorithm {header.get('alg')!r}")
                key = await self._signing_key(header.get("kid"))
                return jwt.decode(id_token, key=key, algorithms=[header["alg"]], audience=self.client_id,
                                  issuer=self.issuer or None, options=options, leeway=60)
            return jwt.decode(id_token, audience=self.client_id, issuer=self.issuer or None, leeway=60,
                              options={**options, "verify_signature": False})
        except (jwt.InvalidTokenError, jwt.PyJWKError, KeyError, ValueError) as error:
            raise ClaimError("id-token-invalid", f"the identity provider's ID token could not be verified "
                                                 f"({type(error).__name__}: {error})") from None

    async def _signing_key(self, kid: str | None) -> Any:
        if not self.jwks_url:
            raise jwt.InvalidTokenError("no jwks_url to check the signature with (set issuer or jwks_url)")
        for attempt in range(2):
            if self._jwks is None or attempt:
                self._jwks = await self.httpfetch(self.jwks_url, "fetching the provider's signing keys",
                                                  validate_cert=self.validate_server_cert)
            keys = [k for k in jwt.PyJWKSet.from_dict(self._jwks).keys if k.public_key_use in (None, "sig")]
            chosen = [k for k in keys if k.key_id == kid] if kid else keys[:1] if len(keys) == 1 else []
            if chosen:
                return chosen[0].key
        raise jwt.InvalidTokenError(f"no signing key {kid!r} among the provider's keys")

    # --- sign-in ---

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        try:
            model = await super().authenticate(handler, data, **kwargs)
        except ClaimError as error:
            raise self.refuse(None, error.code, str(error)) from None
        name, auth_state = model["name"], model["auth_state"]
        try:
            claims = await self.id_token_claims(auth_state.get("id_token"))
        except ClaimError as error:
            raise self.refuse(name, error.code, str(error)) from None
        factor = second_factor(claims, self.mfa_amr_values, self.mfa_acr_values)
        auth_state[STATE_KEY].update(amr=list(factor.amr), acr=factor.acr,
                                     confirmed_at=clock.isoformat(clock.utcnow()))
        if self.mfa_required and not factor.ok:
            raise self.refuse(name, "no-second-factor", factor.reason, amr=list(factor.amr), acr=factor.acr)
        return model

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None = None) -> bool:
        if auth_model is None or not isinstance(auth_model.get("auth_state"), dict):
            return False  # only people vouched for by the provider, at sign-in, are let in
        record = auth_model["auth_state"].get(STATE_KEY) or {}
        refusal = record.get("refusal")
        if refusal:
            raise self.refuse(username, refusal["code"], refusal["message"])
        if not set(auth_model.get("groups") or ()) & set(self.allowed_groups):
            raise self.refuse(username, "not-in-allowed-group",
                              f"your account {username} is in none of the groups allowed here (research, data "
                              "stewardship or platform administration); ask your access manager to add you to the "
                              "right group at the identity provider, then sign in again",
                              idp_groups=record.get("idp_groups", [])[:50])
        return True

    async def run_post_auth_hook(self, handler: Any, authentication: dict[str, Any]) -> dict[str, Any]:
        authentication = await super().run_post_auth_hook(handler, authentication)
        record = authentication["auth_state"][STATE_KEY]
        self.audit(authentication["name"], "auth.login",
                   {"groups": record["groups"], "amr": record.get("amr", []), "acr": record.get("acr")})
        self.reviewer.confirmed(authentication["name"], audited=True)
        return authentication

    # --- access review on requests ---

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> bool | dict[str, Any]:
        """Re-read the person's groups from the provider; a loss of access takes effect now."""
        return await self.reviewer.review(user, via="request" if handler is not None else "sweep")

    async def read_provider(self, user: Any) -> bool | dict[str, Any]:
        """oauthenticator's refresh: userinfo with the stored access token, else the refresh token."""
        return await super().refresh_user(user, None)

    # --- logout ---

    def idp_logout_url(self, id_token_hint: str | None = None) -> str:
        if not (self.idp_logout and self.end_session_url):
            return ""
        params = {"client_id": self.client_id}
        if self.post_logout_redirect_url:
            params["post_logout_redirect_uri"] = self.post_logout_redirect_url
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return f"{self.end_session_url}?{urlencode(params)}"

    def logout_url(self, base_url: str) -> str:
        return url_path_join(base_url, "logout")
