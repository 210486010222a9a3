# JupyterHub configuration of the bubble-manager chart (mounted from a ConfigMap).
# Settings come from the chart values (values.json beside this file), secrets from files under
# /etc/bubble-manager/secrets, and the hub Service's cluster IP from the variables Kubernetes
# gives the hub pod (<HUB SERVICE>_SERVICE_HOST): bubbles have no DNS, they reach the hub by IP.
import json
import os
from pathlib import Path

from bubble_manager.runtime import hubapi

CONFIG_DIR = Path(os.environ.get("BUBBLE_MANAGER_CONFIG_DIR", "/etc/bubble-manager/config"))
SECRETS_DIR = Path(os.environ.get("BUBBLE_MANAGER_SECRETS_DIR", "/etc/bubble-manager/secrets"))
values = json.loads((CONFIG_DIR / "values.json").read_text())


def secret(name):
    return (SECRETS_DIR / name).read_text().strip()


c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

hub_ip = os.environ[values["hubServiceEnv"] + "_SERVICE_HOST"]
hub_url = f"http://{hub_ip}:{values['hubApiPort']}"
public_url = values["publicUrl"]                   # https://<host>: the hub's pages
panel_prefix = values["servicePrefix"]             # <baseUrl>services/bubble-manager/
panel_url = values["servicePublicUrl"] + panel_prefix   # the panel, on its own service subdomain

# --- hub and proxy ---
c.JupyterHub.base_url = values["baseUrl"]
c.JupyterHub.subdomain_host = public_url          # each user's servers on their own subdomain, services too
c.JupyterHub.default_url = panel_url              # sign-in lands on the panel
c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{values['hubApiPort']}"
c.JupyterHub.hub_connect_url = hub_url
c.JupyterHub.cookie_secret = bytes.fromhex(secret("cookie-secret"))
c.JupyterHub.db_url = f"sqlite:///{values['home']}/jupyterhub.sqlite"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_server_name = ""
c.JupyterHub.cleanup_servers = False
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = values["proxyApiUrl"]
c.ConfigurableHTTPProxy.auth_token = secret("proxy-token")

# --- the spawner: one hardened pod per (member, study) in the bubbles namespace ---
c.JupyterHub.spawner_class = "bubble_manager.runtime.kube.KubeBubbleSpawner"
spawner = c.KubeBubbleSpawner
spawner.bubble_manager_home = values["home"]
spawner.bubble_manager_config_file = str(CONFIG_DIR / "bubble_manager_config.py")
spawner.namespace = values["bubbles"]["namespace"]
spawner.hub_namespace = values["namespace"]
spawner.hub_pod_labels = values["hubPodLabels"]
spawner.proxy_pod_labels = values["proxyPodLabels"]
spawner.common_labels = values["bubbleLabels"]
spawner.hub_connect_url = hub_url
spawner.hub_api_port = values["hubApiPort"]
spawner.image = values["bubbles"]["image"]
spawner.image_pull_policy = values["bubbles"]["pullPolicy"]
spawner.cmd = ["jupyterhub-singleuser"]
spawner.port = 8888
spawner.bubble_uid = values["bubbles"]["uid"]
spawner.bubble_gid = values["bubbles"]["gid"]
spawner.bubble_service_account = values["bubbles"]["serviceAccount"]
spawner.extract_mode = values["bubbles"]["extractMode"]
spawner.extract_storage_class = values["bubbles"]["storage"]["extractClass"] or None
spawner.workspace_storage_class = values["bubbles"]["storage"]["workspaceClass"] or None
spawner.extract_size = values["bubbles"]["storage"]["extractSize"]
spawner.workspace_size = values["bubbles"]["storage"]["workspaceSize"]
spawner.shared_size = values["bubbles"]["storage"]["sharedSize"]
spawner.start_timeout = values["bubbles"]["startTimeout"]
spawner.storage_pvc_ensure = False

# --- identity: bubble-manager's OIDC authenticator (docs/authentication.md): roles from the provider's
# groups, a required second factor, access review, every sign-in and refusal audited in the home's log.
# It also limits users' API tokens to the panel's scopes, without which bubbles refuse to start.
if values["auth"]["type"] == "oidc":
    oidc_values = values["auth"]["oidc"]
    callback_url = public_url + values["baseUrl"] + "hub/oauth_callback"
    c.JupyterHub.authenticator_class = "bubble_manager.auth.authenticator.BubbleOIDCAuthenticator"
    oidc = c.BubbleOIDCAuthenticator
    oidc.issuer = oidc_values["issuer"]
    oidc.client_id = oidc_values["clientId"]
    oidc.client_secret_file = str(SECRETS_DIR / "oidc-client-secret")
    oidc.oauth_callback_url = callback_url
    oidc.post_logout_redirect_url = callback_url.removesuffix("/oauth_callback") + "/login"
    oidc.idp_logout = oidc_values["idpLogout"]
    oidc.username_claim = oidc_values["usernameClaim"]
    oidc.groups_claim = oidc_values["groupsClaim"]
    oidc.scope = oidc_values["scope"]
    oidc.group_map = {name: role for role, names in values["groups"].items()
                      for name in ([names] if isinstance(names, str) else names)}
    oidc.mfa_required = oidc_values["mfa"]["required"]
    if oidc_values["mfa"]["amrValues"]:
        oidc.mfa_amr_values = set(oidc_values["mfa"]["amrValues"])
    oidc.mfa_acr_values = set(oidc_values["mfa"]["acrValues"])
    oidc.bubble_manager_home = values["home"]
    oidc.bubble_manager_config = str(CONFIG_DIR / "bubble_manager_config.py")
    oidc.access_review_max_age = 3600            # the sweeper re-reads absent people's groups hourly
    oidc.access_review_sweep_seconds = 300
    c.CryptKeeper.keys = [secret("crypt-key")]   # encrypts the refresh tokens kept in the auth state
    c.Authenticator.admin_users = set()          # roles come from the provider's groups only
    c.Authenticator.auto_login = False           # the hub's page says which provider it sends you to
    c.Authenticator.auth_refresh_age = 300       # re-read groups on the person's requests every 5 minutes
    c.Authenticator.refresh_pre_spawn = True     # and before every bubble start
    # Session hygiene: a working day, then sign in again (the cookie and the tokens it carries).
    c.JupyterHub.cookie_max_age_days = 8 / 24
    c.JupyterHub.oauth_token_expires_in = 8 * 3600

# --- the bubble-manager service: its own Deployment, registered here by URL and API token; the tokens
# its OAuth client receives carry the custom scopes the panel authorises with. Its OAuth callback is on
# its own subdomain, where the proxy routes it (service-deployment.yaml gives it the same URL) ---
c.JupyterHub.services = [{
    "name": hubapi.SERVICE_NAME,
    "url": values["serviceUrl"],
    "api_token": secret("service-token"),
    "oauth_client_id": "service-bubble-manager",
    "oauth_redirect_uri": panel_url + "oauth_callback",
    "oauth_no_confirm": True,
    "oauth_client_allowed_scopes": [hubapi.SCOPE_USE, hubapi.SCOPE_REVIEW, hubapi.SCOPE_ADMIN],
    "display": True,
}]

# --- roles: the hub groups researchers, stewards and admins bound to custom scopes, a trimmed user role,
# JupyterHub's admin role held by no one (bubble_manager/runtime/hubapi.py, as on a local site) ---
c.JupyterHub.custom_scopes = hubapi.CUSTOM_SCOPES
c.JupyterHub.load_roles = hubapi.hub_roles()
