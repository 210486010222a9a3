"""DEVELOPMENT ONLY: start the local OIDC provider (dev/oidc, npm `oidc-provider`) for demos and tests.

    python -m bubble_manager.auth.devprovider --hub-url http://localhost:8000 --state var/dev-oidc

starts it on a free port of 127.0.0.1, writes the client secret and a `provider.json` (issuer,
client id, users with their passwords and one-time codes) into the state folder, prints the
issuer and the demo users, and runs until interrupted. The hub reads the issuer, client id and
secret file from the environment variables it prints (see hub_config/oidc.py).

Passwords and codes are demo values kept in clear text: this provider exists so the demo and the
tests exercise the real OIDC login path. Never use it for a hub that holds real data.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
PROVIDER_DIR = REPOSITORY / "dev" / "oidc"
CLIENT_ID = "bubble-manager-hub"

# IdP group names differ from the hub's on purpose: the demo shows the claim-to-group mapping.
GROUP_MAP = {"eds-researchers": "researchers", "eds-stewards": "stewards", "eds-admins": "admins"}


def demo_users() -> list[dict[str, Any]]:
    """One user per role, one in no allowed group, one researcher without a second factor."""
    def user(login: str, name: str, groups: list[str], mfa: bool = True) -> dict[str, Any]:
        return {"login": login, "name": name, "email": login, "groups": groups, "mfa": mfa,
                "password": secrets.token_urlsafe(9), "otp": f"{secrets.randbelow(10**6):06d}"}

    return [
        user("alice@example.org", "Alice Martin (researcher)", ["eds-researchers"]),
        user("bob@example.org", "Bob Durand (researcher)", ["eds-researchers"]),
        user("eve@example.org", "Eve Petit (researcher, no study)", ["eds-researchers"]),
        user("sam@example.org", "Sam Leroy (data steward)", ["eds-stewards"]),
        user("ada@example.org", "Ada Moreau (platform admin)", ["eds-admins"]),
        user("nina@example.org", "Nina Roux (in no allowed group)", ["hospital-staff"]),
        user("otto@example.org", "Otto Blanc (researcher, no second factor)", ["eds-researchers"], mfa=False),
    ]


def provider_missing_reason() -> str | None:
    """Why the development provider cannot start here (None when it can), naming the install step."""
    if shutil.which("node") is None:
        return "node is missing: install Node.js 20 or later (mk/auth.mk's dev-oidc target needs it too)"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return f"oidc-provider is not installed in {PROVIDER_DIR}/node_modules: run `make dev-oidc` (mk/auth.mk)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DevProvider:
    """One running development provider; `stop()` ends it (also usable as a context manager)."""

    state_dir: Path
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=demo_users)
    access_token_ttl: int = 300
    port: int = field(default_factory=free_port)
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_secret_file(self) -> Path:
        return self.state_dir / "client-secret"

    def user(self, login: str) -> dict[str, Any]:
        return next(user for user in self.users if user["login"] == login)

    def start(self, timeout: float = 30) -> "DevProvider":
        reason = provider_missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        _write_private(self.client_secret_file, self.client_secret + "\n")
        config = {"host": "127.0.0.1", "port": self.port, "issuer": self.issuer, "admin_token": self.admin_token,
                  "access_token_ttl": self.access_token_ttl, "users": self.users,
                  "client": {"client_id": CLIENT_ID, "client_secret": self.client_secret,
                             "redirect_uris": self.redirect_uris,
                             "post_logout_redirect_uris": self.post_logout_redirect_uris}}
        config_path = self.state_dir / "provider-config.json"
        _write_private(config_path, json.dumps(config, indent=2))
        log = open(self.state_dir / "provider.log", "ab")
        self.process = subprocess.Popen(["node", str(PROVIDER_DIR / "provider.mjs"), "--config", str(config_path)],
                                        cwd=PROVIDER_DIR, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the development OIDC provider exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=2) as answer:
                    json.load(answer)
                _write_private(self.state_dir / "provider.json", json.dumps(self.summary(), indent=2))
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the development OIDC provider did not answer within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "DevProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        path = self.state_dir / "provider.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def summary(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "client_id": CLIENT_ID, "client_secret_file": str(self.client_secret_file),
                "group_map": GROUP_MAP, "users": self.users, "development_only": True}

    def hub_environment(self) -> dict[str, str]:
        """What hub_config/oidc.py reads to use this provider."""
        return {"BUBBLE_OIDC_ISSUER": self.issuer, "BUBBLE_OIDC_CLIENT_ID": CLIENT_ID,
                "BUBBLE_OIDC_CLIENT_SECRET_FILE": str(self.client_secret_file),
                "BUBBLE_OIDC_GROUP_MAP": json.dumps(GROUP_MAP)}

    # --- the development API: change who is in which group while the provider runs ---

    def _dev_api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.issuer}/dev/users{path}", data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.admin_token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def set_groups(self, login: str, groups: list[str]) -> None:
        self._dev_api("PUT", "/" + urllib.request.quote(login, safe=""), {"groups": groups})
        self.user(login)["groups"] = list(groups)

    def remove_user(self, login: str) -> None:
        self._dev_api("DELETE", "/" + urllib.request.quote(login, safe=""))


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DEVELOPMENT ONLY: a local OIDC provider with demo users.")
    parser.add_argument("--hub-url", default="http://localhost:8000", help="the hub's public URL (callback and "
                                                                          "post-logout redirects are registered under it)")
    parser.add_argument("--state", default="var/dev-oidc", help="folder for the client secret, the users and logs")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    hub = args.hub_url.rstrip("/")
    provider = DevProvider(Path(args.state), redirect_uris=[f"{hub}/hub/oauth_callback"],
                           post_logout_redirect_uris=[f"{hub}/hub/login"])
    if args.port:
        provider.port = args.port
    provider.start()
    print("DEVELOPMENT OIDC provider (demo only, never for real data)")
    print(f"issuer: {provider.issuer}")
    for name, value in provider.hub_environment().items():
        print(f"export {name}='{value}'")
    print("demo users (login / password / one-time code / IdP groups):")
    for user in provider.users:
        code = user["otp"] if user["mfa"] else "(no second factor)"
        print(f"  {user['login']:<20} {user['password']:<14} {code:<20} {','.join(user['groups'])}")
    sys.stdout.flush()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop and provider.process is not None and provider.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
