"""A real JupyterHub (with configurable-http-proxy) running the bubble-manager service, for tests.

Users and groups: carol (researcher, requests studies), alice and bob (researchers, members),
mallory (researcher, never a member), sam and tom (stewards), adam (admin), nobody (no group).
Tests get API tokens for them through a test-only admin service, or log in with the
DummyAuthenticator password in a browser.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bubble_manager.service.authz import CUSTOM_SCOPES, SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-for-tests"
GROUPS = {"researchers": ["carol", "alice", "bob", "mallory"], "stewards": ["sam", "tom"], "admins": ["adam"]}
USERS = sorted({u for members in GROUPS.values() for u in members} | {"nobody"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chp_path() -> str | None:
    local = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


class ServiceHub:
    def __init__(self, folder: Path, home: Path):
        self.folder = Path(folder)
        self.home = Path(home)
        self.port = free_port()
        self.hub_port = free_port()
        self.service_port = free_port()
        self.proxy_api_port = free_port()
        self.admin_token = os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/bubble-manager/"

    def write_config(self) -> Path:
        config = {
            "port": self.port, "hub_port": self.hub_port, "proxy_api_port": self.proxy_api_port, "service_port": self.service_port,
            "admin_token": self.admin_token, "home": str(self.home), "python": sys.executable,
            "chp": chp_path(), "groups": GROUPS, "users": USERS, "password": PASSWORD,
            "custom_scopes": CUSTOM_SCOPES, "scopes": {"use": SCOPE_USE, "review": SCOPE_REVIEW, "admin": SCOPE_ADMIN},
            "db": f"sqlite:///{self.folder / 'jupyterhub.sqlite'}",
            "fake_server": str(Path(__file__).with_name("fake_server.py")),
        }
        path = self.folder / "jupyterhub_config.py"
        path.write_text(CONFIG_TEMPLATE.replace("__SETTINGS__", json.dumps(config)))
        return path

    def start(self, timeout: float = 180) -> None:
        config = self.write_config()
        env = {**os.environ, "BUBBLE_MANAGER_HOME": str(self.home)}
        self.log = open(self.folder / "hub.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.folder,
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited early; its log:\n{(self.folder / 'hub.log').read_text()[-4000:]}")
            try:
                urllib.request.urlopen(self.service_url + "api/v1/openapi.json", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"the hub did not come up; its log:\n{(self.folder / 'hub.log').read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()

    def hub_api(self, method: str, path: str, body=None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/hub/api/{path}", data=data, method=method,
                                         headers={"Authorization": f"token {token or self.admin_token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return json.loads(text) if text else None

    def token_for(self, user: str) -> str:
        """A token with the user's own permissions, as the CLI would hold."""
        return self.hub_api("POST", f"users/{user}/tokens", {"note": "tests", "expires_in": 3600})["token"]


CONFIG_TEMPLATE = r'''
import json
s = json.loads(r"""__SETTINGS__""")
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = s["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s["hub_port"]
c.JupyterHub.db_url = s["db"]
c.JupyterHub.cookie_secret = bytes.fromhex("ab" * 32)
c.ConfigurableHTTPProxy.command = [s["chp"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['proxy_api_port']}"
c.ConfigurableHTTPProxy.auth_token = "proxy-token-for-tests"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = s["password"]
c.Authenticator.allowed_users = set(s["users"])
c.JupyterHub.load_groups = {name: {"users": users} for name, users in s["groups"].items()}
c.JupyterHub.custom_scopes = s["custom_scopes"]
service_access = "access:services!service=bubble-manager"
c.JupyterHub.load_roles = [
    {"name": "bubble-researcher", "groups": ["researchers"], "scopes": [s["scopes"]["use"], service_access]},
    {"name": "bubble-steward", "groups": ["stewards"], "scopes": [s["scopes"]["review"], service_access]},
    {"name": "bubble-admin", "groups": ["admins"], "scopes": [s["scopes"]["admin"], service_access]},
    {"name": "bubble-manager-service", "services": ["bubble-manager"],
     "scopes": ["list:users", "read:users", "read:servers", "delete:servers", "read:groups"]},
    {"name": "test-admin", "services": ["test-admin"],
     "scopes": ["admin:users", "tokens", "list:users", "read:users", "servers", "admin:groups"]},
]
# The service is under test here, not bubbles: servers are a tiny HTTP responder (tests/service/
# fake_server.py) so admin pages have running named servers to list and stop.
c.JupyterHub.allow_named_servers = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [s["python"], s["fake_server"]]
c.Spawner.args = []
c.Spawner.start_timeout = 30
c.Spawner.http_timeout = 30
c.JupyterHub.services = [
    {"name": "bubble-manager", "url": f"http://127.0.0.1:{s['service_port']}", "display": True, "oauth_no_confirm": True,
     "command": [s["python"], "-m", "bubble_manager.service"],
     "environment": {"BUBBLE_MANAGER_HOME": s["home"]},
     "oauth_client_allowed_scopes": list(s["custom_scopes"])},
    {"name": "test-admin", "api_token": s["admin_token"]},
]
'''


def request_document(slug: str, members=("alice", "bob"), days: int = 60) -> dict:
    """A valid study request over the small warehouse, starting today (service and airlock tests)."""
    today = dt.date.today()
    return {
        "title": f"Study {slug}", "slug": slug, "purpose": "Describe statin exposure in type 2 diabetes.",
        "legal_basis": "public-interest research, MR-004", "members": list(members),
        "starts": str(today), "ends": str(today + dt.timedelta(days=days)),
        "data": {"person": ["person_id", "birth_date"], "condition_occurrence": ["person_id", "condition_concept_id"]},
        "cohort": "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826",
    }
