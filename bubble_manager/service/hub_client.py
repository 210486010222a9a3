"""A small client of the JupyterHub REST API, as the service (over TCP or http+unix sockets)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jupyterhub.httpclient import fetch
from jupyterhub.utils import url_path_join

from ..studies import Study


class HubApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HubClient:
    def __init__(self, api_url: str, token: str):
        self.api_url = api_url
        self.token = token

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        url = url_path_join(self.api_url, path)
        headers = {"Authorization": f"token {self.token}", "Accept": "application/json"}
        kwargs: dict[str, Any] = {"method": method, "headers": headers, "raise_for_status": False}
        if body is not None:
            kwargs["body"] = json.dumps(body)
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = ""
        response = await fetch(url, **kwargs)  # aiohttp, with http+unix support
        text = await response.text()
        if response.status >= 400:
            raise HubApiError(response.status, f"hub API {method} {path}: HTTP {response.status} {text[:200]!r}")
        return json.loads(text) if text else None

    async def users(self) -> list[dict[str, Any]]:
        """Every user with their named servers (running or pending)."""
        users, offset = [], 0
        while True:
            page = await self.request("GET", f"users?include_stopped_servers=0&offset={offset}&limit=200")
            items = page["items"] if isinstance(page, dict) else page
            users += items
            if not isinstance(page, dict) or not page.get("_pagination", {}).get("next"):
                return users
            offset += len(items)

    async def servers(self) -> list[dict[str, Any]]:
        """Flat list of running named servers: user, name (the study slug), state and activity."""
        found = []
        for user in await self.users():
            for name, server in (user.get("servers") or {}).items():
                if not name:
                    continue
                found.append({"user": user["name"], "study": name, "ready": server.get("ready", False),
                              "pending": server.get("pending"), "started": server.get("started"),
                              "last_activity": server.get("last_activity"), "url": server.get("url")})
        return found

    async def group_members(self, group: str) -> list[str]:
        try:
            return list((await self.request("GET", f"groups/{quote(group, safe='')}"))["users"])
        except HubApiError as error:
            if error.status == 404:
                return []
            raise

    async def stop_server(self, user: str, name: str) -> None:
        await self.request("DELETE", f"users/{quote(user, safe='')}/servers/{quote(name, safe='')}")

    async def stop_study_servers(self, study: Study) -> list[str]:
        stopped = []
        for server in await self.servers():
            if server["study"] == study.slug:
                await self.stop_server(server["user"], study.slug)
                stopped.append(server["user"])
        return stopped
