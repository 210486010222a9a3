# DEMO ONLY: the local profile plus a shared-password login for test users (the hub fixture of
# the test suite uses it; `make demo` signs in through the development OIDC provider instead).
# Anyone who knows the password can sign in as any demo user: never use this for real data.
# Production signs users in with OIDC (groups from the IdP).
#
#   BUBBLE_DEMO_USERS=var/demo-users.json jupyterhub -f hub_config/demo_config.py
#
# The demo users file: {"password": "...", "groups": {"researchers": [...], "stewards": [...],
# "admins": [...]}} (written by the demo script, mode 0600).
import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub
load_subconfig(str(Path(__file__).resolve().parent / "jupyterhub_config.py"))  # noqa: F821

demo = json.loads(Path(os.environ["BUBBLE_DEMO_USERS"]).read_text())
# shared-password login; API tokens limited to the panel's scopes like production's (hub_tokens.py)
c.JupyterHub.authenticator_class = "bubble_manager.runtime.hub_tokens.PanelScopedSharedPasswordAuthenticator"
c.SharedPasswordAuthenticator.user_password = demo["password"]
c.Authenticator.allowed_users = {name for members in demo["groups"].values() for name in members}
c.JupyterHub.load_groups = {group: {"users": sorted(members)} for group, members in demo["groups"].items()}
