# JupyterHub configuration: sign-in through the hospital's OpenID Connect provider.
# Load it after jupyterhub_config.py:   load_subconfig("hub_config/oidc.py")
#
# Configuration only; the rules live in bubble_manager/auth (see docs/authentication.md). Read at
# this edge:
#   BUBBLE_OIDC_ISSUER              the provider's issuer URL (its discovery document gives the endpoints)
#   BUBBLE_OIDC_CLIENT_ID           this hub's client id at the provider
#   BUBBLE_OIDC_CLIENT_SECRET_FILE  file holding the client secret (root-only), or
#   BUBBLE_OIDC_CLIENT_SECRET       the client secret itself (e.g. from the orchestrator's secret store)
#   BUBBLE_OIDC_GROUP_MAP           JSON: provider group -> researchers | stewards | admins
#   BUBBLE_OIDC_GROUPS_CLAIM        claim listing the groups (default "groups"; dotted paths allowed)
#   BUBBLE_OIDC_USERNAME_CLAIM      claim naming the account (default "preferred_username")
#   BUBBLE_OIDC_MFA_ACR             comma-separated acr values that count as multi-factor (optional)
#   JUPYTERHUB_CRYPT_KEY            encrypts the stored tokens (auth state); required
#   BUBBLE_HUB_URL, BUBBLE_MANAGER_HOME, BUBBLE_MANAGER_CONFIG   as in jupyterhub_config.py
# Anything else: set c.BubbleOIDCAuthenticator.<trait> after loading this file.
import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub

missing = [name for name in ("BUBBLE_OIDC_ISSUER", "BUBBLE_OIDC_CLIENT_ID", "BUBBLE_OIDC_GROUP_MAP",
                             "JUPYTERHUB_CRYPT_KEY") if not os.environ.get(name)]
if missing:
    raise SystemExit(f"hub_config/oidc.py: set {', '.join(missing)} (see docs/authentication.md; for a demo, "
                     "`python -m bubble_manager.auth.devprovider` prints them)")
if not (os.environ.get("BUBBLE_OIDC_CLIENT_SECRET_FILE") or os.environ.get("BUBBLE_OIDC_CLIENT_SECRET")):
    raise SystemExit("hub_config/oidc.py: set BUBBLE_OIDC_CLIENT_SECRET_FILE (a root-only file holding the client "
                     "secret the provider gave this hub) or BUBBLE_OIDC_CLIENT_SECRET (see docs/authentication.md)")
public_url = os.environ.get("BUBBLE_HUB_URL", "http://localhost:8000").rstrip("/")

c.JupyterHub.authenticator_class = "bubble_manager.auth.authenticator.BubbleOIDCAuthenticator"
oidc = c.BubbleOIDCAuthenticator
oidc.issuer = os.environ["BUBBLE_OIDC_ISSUER"]
oidc.client_id = os.environ["BUBBLE_OIDC_CLIENT_ID"]
if os.environ.get("BUBBLE_OIDC_CLIENT_SECRET_FILE"):
    oidc.client_secret_file = os.environ["BUBBLE_OIDC_CLIENT_SECRET_FILE"]
else:
    oidc.client_secret = os.environ["BUBBLE_OIDC_CLIENT_SECRET"]
oidc.group_map = json.loads(os.environ["BUBBLE_OIDC_GROUP_MAP"])
oidc.groups_claim = os.environ.get("BUBBLE_OIDC_GROUPS_CLAIM", "groups")
oidc.username_claim = os.environ.get("BUBBLE_OIDC_USERNAME_CLAIM", "preferred_username")
oidc.mfa_acr_values = {value.strip() for value in os.environ.get("BUBBLE_OIDC_MFA_ACR", "").split(",") if value.strip()}
oidc.oauth_callback_url = f"{public_url}/hub/oauth_callback"
oidc.post_logout_redirect_url = f"{public_url}/hub/login"
oidc.bubble_manager_home = str(Path(os.environ.get("BUBBLE_MANAGER_HOME", "var")).resolve())
oidc.bubble_manager_config = os.environ.get("BUBBLE_MANAGER_CONFIG", "")

# Roles come from the provider's groups only: no allow-list of names, never JupyterHub's admin role.
c.Authenticator.admin_users = set()
c.Authenticator.auto_login = False           # the hub's page says which provider it sends you to
c.Authenticator.auth_refresh_age = 300       # re-read groups on the person's requests every 5 minutes
c.Authenticator.refresh_pre_spawn = True     # and before every bubble start
oidc.access_review_max_age = 3600            # the sweeper re-reads absent people's groups hourly
oidc.access_review_sweep_seconds = 300

# Session hygiene: a working day, then sign in again (the cookie and the tokens it carries).
c.JupyterHub.cookie_max_age_days = 8 / 24
c.JupyterHub.oauth_token_expires_in = 8 * 3600
