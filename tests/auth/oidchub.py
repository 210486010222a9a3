"""A real hub signing people in through the real development OIDC provider, for end-to-end tests.

Built on the local runtime's `HubFixture` (home, studies with extracts, `LocalBubbleSpawner`,
the production hub config): its config here loads hub_config/jupyterhub_config.py and
hub_config/oidc.py, with short review timings, and starts `dev/oidc` (node) first so the hub can
read the provider's discovery document.
"""

from __future__ import annotations

import html
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bubble_manager.auth.devprovider import DevProvider
from tests.hubfixture import REPOSITORY, HubFixture, free_port

REVIEW_SETTINGS = {
    "auth_refresh_age": 2,              # c.Authenticator: re-read groups on requests after 2 s
    "access_review_max_age": 3,         # the sweeper re-reads absent people's groups after 3 s
    "access_review_sweep_seconds": 1.0,
    "confirmation_audit_seconds": 0,
    "max_unconfirmed_seconds": 20,      # access kept that long when the provider cannot be reached
}


@dataclass
class OIDCHub(HubFixture):
    provider: DevProvider | None = None
    crypt_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def create_with_provider(cls, *, with_service: bool = False) -> "OIDCHub":
        hub = cls.create(with_service=with_service)
        hub.provider = DevProvider(hub.root / "oidc", redirect_uris=[f"{hub.url}/hub/oauth_callback"],
                                   post_logout_redirect_uris=[f"{hub.url}/hub/login"])
        try:
            hub.provider.start()
        except Exception:
            hub.close()
            raise
        hub._write_oidc_config(with_service)
        return hub

    def _write_oidc_config(self, with_service: bool) -> None:
        lines = [
            f"load_subconfig({str(REPOSITORY / 'hub_config' / 'jupyterhub_config.py')!r})",
            f"load_subconfig({str(REPOSITORY / 'hub_config' / 'oidc.py')!r})",
            f"c.ConfigurableHTTPProxy.api_url = {f'http://127.0.0.1:{free_port()}'!r}",
            *([] if with_service else [
                "c.JupyterHub.services = []", "c.JupyterHub.default_url = '/hub/home'",
                "c.JupyterHub.load_roles = [role for role in c.JupyterHub.load_roles "
                "if 'bubble-manager' not in role.get('services', [])]"]),
            f"c.JupyterHub.services.append({{'name': 'test-admin', 'api_token': {self.admin_token!r}}})",
            "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'], 'scopes': "
            "['admin:users', 'admin:servers', 'tokens', 'read:hub', 'proxy', 'list:users']})",
            f"c.Authenticator.auth_refresh_age = {REVIEW_SETTINGS['auth_refresh_age']}",
            *(f"c.BubbleOIDCAuthenticator.{name} = {value!r}" for name, value in REVIEW_SETTINGS.items()
              if name != "auth_refresh_age"),
            "c.JupyterHub.log_level = 'DEBUG'",
        ]
        (self.root / "jupyterhub_config.py").write_text("\n".join(lines) + "\n")

    def environment(self) -> dict[str, str]:
        env = super().environment()
        assert self.provider is not None
        env.update(self.provider.hub_environment(), JUPYTERHUB_CRYPT_KEY=self.crypt_key)
        return env

    def close(self) -> list[str]:
        try:
            return super().close()
        finally:
            if self.provider is not None:
                self.provider.stop()

    # --- signing in through the provider, as a browser does ---

    def oidc_login(self, login: str, *, password: str | None = None, otp: str | None = None,
                   session: requests.Session | None = None) -> tuple[requests.Session, requests.Response]:
        """Start at the hub's login, fill the provider's forms; the last response (hub page or refusal)."""
        assert self.provider is not None
        user = self.provider.user(login) if any(u["login"] == login for u in self.provider.users) else {}
        session = session or requests.Session()
        page = session.get(f"{self.url}/hub/oauth_login?next=%2Fhub%2Fhome", timeout=30)
        if "/interaction/" not in page.url:
            return session, page           # the provider's session is still open: no forms
        page = self._submit(session, page, {"login": login, "password": password or user.get("password", "")})
        if 'id="otp-form"' in page.text:
            page = self._submit(session, page, {"otp": otp or user.get("otp", "")})
        return session, page

    @staticmethod
    def _submit(session: requests.Session, page: requests.Response, fields: dict[str, str]) -> requests.Response:
        form = re.search(r'<form[^>]*\baction="([^"]+)"[^>]*>(.*?)</form>', page.text, re.S)
        if not form:
            raise AssertionError(f"no form on {page.url}: {page.status_code} {page.text[:500]}")
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
        return session.post(urllib.parse.urljoin(page.url, html.unescape(form.group(1))), data={**hidden, **fields},
                            timeout=60)

    @property
    def panel_url(self) -> str:
        """The bubble-manager service (panel), on its own subdomain like every service (subdomain_host)."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://bubble-manager--service.{parts.netloc}/services/bubble-manager/"

    def user_model(self, name: str) -> dict:
        response = self.api("GET", f"/users/{requests.utils.quote(name)}")
        response.raise_for_status()
        return response.json()

    def whoami(self, token: str) -> requests.Response:
        return requests.get(f"{self.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)

    def signed_in_as(self, session: requests.Session) -> str | None:
        """Who the hub thinks the session's browser is (None when it is sent to the login page)."""
        page = session.get(f"{self.url}/hub/home", timeout=30, allow_redirects=False)
        if page.status_code != 200:
            return None
        match = re.search(r'<span id="login_widget">.*?<span[^>]*>\s*([^<\s]+)\s*</span>', page.text, re.S)
        return match.group(1) if match else "(signed in)"


def audit_actions(hub: HubFixture, actor: str) -> list[tuple[str, dict]]:
    assert hub.context is not None
    return [(entry.action, entry.detail) for entry in hub.context.audit.entries(action="auth.*", actor=actor)]


__all__ = ["OIDCHub", "audit_actions", "Path"]
