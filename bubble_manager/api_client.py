"""Client of the service's REST API, used by the CLI when it is given a hub URL and a token.

Every call carries the JupyterHub token of the person running the command, so the service
knows who acts: approvals and refusals are recorded under an authenticated identity.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

API_PATH = "services/bubble-manager/api/v1"


class ApiClientError(RuntimeError):
    """The API refused or failed; the message is the service's own."""

    def __init__(self, status: int, message: str, field: str | None = None):
        self.status = status
        self.field = field
        super().__init__(message)


class ApiClient:
    def __init__(self, hub_url: str, token: str, timeout: float = 120):
        if not token:
            raise ValueError("no API token: create one on the hub's Token page and set JUPYTERHUB_API_TOKEN")
        self.base = f"{hub_url.rstrip('/')}/{API_PATH}"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, query: dict | None = None) -> Any:
        url = f"{self.base}{path}" + (f"?{urlencode(query, doseq=True)}" if query else "")
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT") else None)
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            payload = _json_or_none(error.read())
            message = payload.get("error") if isinstance(payload, dict) else f"HTTP {error.code} from {url}"
            field = payload.get("field") if isinstance(payload, dict) else None
            raise ApiClientError(error.code, message, field) from None
        except urllib.error.URLError as error:
            raise ApiClientError(0, f"cannot reach the hub at {self.base}: {error.reason}") from None
        return _json_or_none(text)

    # --- studies ---

    def list(self, states: list[str] | None = None) -> list[dict]:
        return self.call("GET", "/studies", query={"state": states} if states else None)["studies"]

    def get(self, slug: str) -> dict:
        return self.call("GET", f"/studies/{quote(slug)}")

    def request(self, document: dict) -> dict:
        return self.call("POST", "/studies", document)

    def edit(self, document: dict) -> dict:
        return self.call("PUT", f"/studies/{quote(document.get('slug', ''))}", document)

    def act(self, slug: str, action: str, body: dict | None = None) -> dict:
        return self.call("POST", f"/studies/{quote(slug)}/{action}", body or {})

    def me(self) -> dict:
        return self.call("GET", "/me")


def _json_or_none(text: bytes) -> Any:
    try:
        return json.loads(text) if text else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
