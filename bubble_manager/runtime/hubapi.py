"""What the hub grants, as data for `hub_config/jupyterhub_config.py` (which holds no logic).

Identity model (architecture file): the JupyterHub groups `researchers`, `stewards` and `admins`
are bound with `load_roles` to the custom scopes `custom:bubbles:use`, `custom:bubbles:review`
and `custom:bubbles:admin`, plus access to the bubble-manager service. Least privilege:

- the `user` role is redefined: a user may read their own model, start and stop their own
  servers (the spawner is the gate that only opens member studies), reach them, and manage their
  own tokens; a token never carries more than its owner holds, and the server token of a bubble
  holds only `users:activity!user` and `access:servers!server` (see `local.py`);
- JupyterHub's built-in `admin` role is held by no one (its scopes cannot be trimmed); the
  platform administrators' role `bubble-admin` can see users and servers and stop bubbles, but
  has neither `access:servers` (opening someone's JupyterLab) nor `tokens` (acting as someone).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..service.authz import CUSTOM_SCOPES, SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE  # noqa: F401 - hub_config reads CUSTOM_SCOPES here

SERVICE_NAME = "bubble-manager"
SERVICE_ACCESS = f"access:services!service={SERVICE_NAME}"
GROUPS = {"researchers": SCOPE_USE, "stewards": SCOPE_REVIEW, "admins": SCOPE_ADMIN}

USER_ROLE_SCOPES = [
    "read:users!user",          # their own user model (name, groups, servers)
    "users:activity!user",
    "servers!user",             # start/stop their own servers: the spawner refuses all but member studies
    "access:servers!user",      # reach their own bubbles
    "read:tokens!user",
    "tokens!user",              # their own tokens, never beyond their own scopes (e.g. for the CLI)
]  # not 'shares!user': a bubble is never shared with someone who is not a member

PLATFORM_ADMIN_SCOPES = [
    "admin-ui",
    "list:users", "read:users", "read:users:activity", "read:groups", "list:groups",
    "read:servers",
    "delete:servers",           # stop a bubble (incident response); never open it
    "read:hub", "read:roles", "read:metrics", "list:services", "read:services",
]


SERVICE_SCOPES = [
    "list:users", "read:users", "read:users:activity", "read:servers",
    "servers",                  # stop (expiry, revocation, idle culling, admin stop) and start again
                                # after an opt-out rebuild; the spawner still gates every start
    "read:groups",              # who the stewards are, for notifications
]  # never access:servers or tokens: the service reads no bubble and acts as no one


def hub_roles() -> list[dict[str, Any]]:
    """`c.JupyterHub.load_roles`: the redefined user role, the empty built-in admin role, the groups."""
    roles: list[dict[str, Any]] = [
        {"name": "user", "description": "A signed-in person: own servers and tokens only.",
         "scopes": list(USER_ROLE_SCOPES)},
        {"name": "admin", "users": [], "services": []},
        {"name": "bubble-researcher", "description": "Requests studies and works in their bubbles.",
         "scopes": [SCOPE_USE, SERVICE_ACCESS], "groups": ["researchers"]},
        {"name": "bubble-steward", "description": "Reviews study requests and output requests.",
         "scopes": [SCOPE_REVIEW, SERVICE_ACCESS], "groups": ["stewards"]},
        {"name": "bubble-admin", "description": "Operates the platform; cannot open bubbles nor act as a user.",
         "scopes": [SCOPE_ADMIN, SERVICE_ACCESS, *PLATFORM_ADMIN_SCOPES], "groups": ["admins"]},
        {"name": "bubble-manager-service", "description": "The panel and reconciler: see servers, stop them.",
         "scopes": list(SERVICE_SCOPES), "services": [SERVICE_NAME]},
    ]
    return roles


def hub_services(home: str | Path, config_file: str = "", python: str = "",
                 public_hub_url: str = "") -> list[dict[str, Any]]:
    """The hub-managed bubble-manager service, once its package is installed (the panel and API).

    With `subdomain_host` the panel lives on its own subdomain; `public_hub_url` tells it where the
    hub's own pages are (sign-in, spawn, static files) so its links and CSP point there.
    """
    if importlib.util.find_spec("bubble_manager.service.app") is None:
        return []
    environment = {"BUBBLE_MANAGER_HOME": str(home)}
    if public_hub_url:
        environment["BUBBLE_HUB_URL"] = public_hub_url
    if config_file:
        environment["BUBBLE_MANAGER_CONFIG"] = str(config_file)
    from jupyterhub.utils import random_port

    return [{"name": SERVICE_NAME, "url": f"http://127.0.0.1:{random_port()}", "display": True,
             "oauth_no_confirm": True,  # the platform's own panel: no "Authorize access" click
             "command": [python or sys.executable, "-m", "bubble_manager.service.app"],
             "environment": environment,
             "oauth_client_allowed_scopes": [SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN]}]


def panel_url(public_hub_url: str = "") -> str:
    """The panel's address. With `subdomain_host` (a public URL given) every service lives on its own
    subdomain, `<name>--service.<hub host>`: the path alone on the hub's host is a 404."""
    path = f"/services/{SERVICE_NAME}/"
    if not public_hub_url:
        return path
    parsed = urlparse(public_hub_url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{SERVICE_NAME}--service.{parsed.hostname}{port}{path}"


def landing_url(services: list[dict[str, Any]], public_hub_url: str = "") -> str:
    """Where '/' leads: the bubble-manager panel when the service runs, else the hub's home."""
    return panel_url(public_hub_url) if any(s.get("name") == SERVICE_NAME for s in services) else "/hub/home"
