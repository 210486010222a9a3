# JupyterHub configuration, local profile: study bubbles in bwrap sandboxes on this host.
#
#   BUBBLE_MANAGER_HOME=/srv/bubble-manager BUBBLE_HUB_URL=http://hub.localhost:8000 \
#       jupyterhub -f hub_config/jupyterhub_config.py
#
# Configuration only; the decisions live in bubble_manager (see docs/local-bubbles.md). Read at
# this edge: BUBBLE_MANAGER_HOME (data folder), BUBBLE_MANAGER_CONFIG (bubble-manager's own
# config file: c.BubbleManager, c.LocalBubbles, ...; default HOME/bubble_manager_config.py) and
# BUBBLE_HUB_URL (the public URL; user servers live on subdomains of its host) and
# BUBBLE_HUB_BIND_URL (where the proxy listens, default http://127.0.0.1:8000).
# No authenticator is chosen here: production uses OIDC; `demo_config.py` adds a demo-only one.
import os
from pathlib import Path

from bubble_manager.config import load_settings
from bubble_manager.runtime import hubapi
from bubble_manager.runtime.layout import prepare_runtime
from bubble_manager.runtime.local import unix_url
from bubble_manager.runtime.settings import LocalBubbles

c = get_config()  # noqa: F821 - provided by JupyterHub

home = Path(os.environ.get("BUBBLE_MANAGER_HOME", "var")).resolve()
bubble_manager_config = os.environ.get("BUBBLE_MANAGER_CONFIG", "")
public_url = os.environ.get("BUBBLE_HUB_URL", "http://hub.localhost:8000")
bind_url = os.environ.get("BUBBLE_HUB_BIND_URL", "http://127.0.0.1:8000")
repository = Path(__file__).resolve().parent.parent  # noqa: F821 - set by the config loader

settings = load_settings(home, bubble_manager_config or None)
c.merge(settings.config)
local = LocalBubbles(config=settings.config)
prepare_runtime(local)                            # runtime_dir/hub/ must exist before the hub binds its socket

# --- where things listen: the public URL through the proxy, everything else over unix sockets
c.JupyterHub.bind_url = bind_url
c.JupyterHub.subdomain_host = public_url          # each user's servers on their own subdomain
c.JupyterHub.hub_bind_url = unix_url(local.hub_socket)
c.JupyterHub.hub_connect_url = unix_url(local.hub_socket)
c.JupyterHub.hub_socket_mode = 0o666              # bubbles (each its own uid) reach it read-only mounted
c.ConfigurableHTTPProxy.command = [str(repository / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.api_url = unix_url(local.proxy_api_socket)   # root-only folder, no port to collide
c.JupyterHub.db_url = f"sqlite:///{home / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(home / "keys" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(home / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(home / "jupyterhub-proxy.pid")

# --- bubbles: one named server per study, the spawner is the gate
c.JupyterHub.spawner_class = "bubble_manager.runtime.local.LocalBubbleSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0      # as many as the studies one belongs to
c.JupyterHub.cleanup_servers = False              # a hub restart leaves running bubbles alone
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90

# --- identity model: groups -> custom scopes, trimmed user and admin roles
c.JupyterHub.custom_scopes = hubapi.CUSTOM_SCOPES
c.JupyterHub.load_roles = hubapi.hub_roles()
c.Authenticator.admin_users = set()
c.JupyterHub.services = hubapi.hub_services(home, bubble_manager_config, public_hub_url=public_url)
c.JupyterHub.default_url = hubapi.landing_url(c.JupyterHub.services, public_url)  # the panel's own subdomain
