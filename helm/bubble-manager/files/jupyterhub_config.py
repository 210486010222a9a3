# JupyterHub configuration of the bubble-manager chart (mounted from a ConfigMap).
# Settings come from the chart values (values.json beside this file), secrets from files under
# /etc/bubble-manager/secrets, and the hub Service's cluster IP from the variables Kubernetes
# gives the hub pod (<HUB SERVICE>_SERVICE_HOST): bubbles have no DNS, they reach the hub by IP.
import json
import os
from pathlib import Path

CONFIG_DIR = Path(os.environ.get("BUBBLE_MANAGER_CONFIG_DIR", "/etc/bubble-manager/config"))
SECRETS_DIR = Path(os.environ.get("BUBBLE_MANAGER_SECRETS_DIR", "/etc/bubble-manager/secrets"))
values = json.loads((CONFIG_DIR / "values.json").read_text())


def secret(name):
    return (SECRETS_DIR / name).read_text().strip()


c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

hub_ip = os.environ[values["hubServiceEnv"] + "_SERVICE_HOST"]
hub_url = f"http://{hub_ip}:{values['hubApiPort']}"

# --- hub and proxy ---
c.JupyterHub.base_url = values["baseUrl"]
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

# --- identity: OIDC, groups from the identity provider ---
if values["auth"]["type"] == "oidc":
    oidc = values["auth"]["oidc"]
    c.JupyterHub.authenticator_class = "generic-oauth"
    c.GenericOAuthenticator.client_id = oidc["clientId"]
    c.GenericOAuthenticator.client_secret = secret("oidc-client-secret")
    c.GenericOAuthenticator.authorize_url = oidc["authorizeUrl"]
    c.GenericOAuthenticator.token_url = oidc["tokenUrl"]
    c.GenericOAuthenticator.userdata_url = oidc["userdataUrl"]
    c.GenericOAuthenticator.oauth_callback_url = oidc["callbackUrl"]
    c.GenericOAuthenticator.username_claim = oidc["usernameClaim"]
    c.GenericOAuthenticator.scope = oidc["scope"]
    c.GenericOAuthenticator.manage_groups = True
    c.GenericOAuthenticator.auth_state_groups_key = "oauth_user." + oidc["groupsClaim"]
    groups = values["groups"]
    c.GenericOAuthenticator.allowed_groups = {groups["researchers"], groups["stewards"], groups["admins"]}

# --- the bubble-manager service: its own Deployment, registered here by URL and API token ---
c.JupyterHub.services = [{
    "name": "bubble-manager",
    "url": values["serviceUrl"],
    "api_token": secret("service-token"),
    "oauth_client_id": "service-bubble-manager",
    "oauth_redirect_uri": values["baseUrl"].rstrip("/") + "/services/bubble-manager/oauth_callback",
    "oauth_no_confirm": True,
    "display": True,
}]

# --- roles: custom scopes bound to groups; the platform admin role cannot open users' servers ---
c.JupyterHub.custom_scopes = {
    "custom:bubbles:use": {"description": "Request studies and open one's study bubbles."},
    "custom:bubbles:review": {"description": "Review study and output requests."},
    "custom:bubbles:admin": {"description": "Watch bubbles, audit, archives and keys."},
}
groups = values["groups"]
service_access = "access:services!service=bubble-manager"
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self"]},
    {"name": "bubble-researcher", "groups": [groups["researchers"]], "scopes": ["custom:bubbles:use", service_access]},
    {"name": "bubble-steward", "groups": [groups["stewards"]], "scopes": ["custom:bubbles:review", service_access]},
    {"name": "bubble-admin", "groups": [groups["admins"]],
     "scopes": ["custom:bubbles:admin", service_access, "read:users", "read:servers", "list:users"]},
    {"name": "bubble-manager-service", "services": ["bubble-manager"],
     "scopes": ["list:users", "read:users", "read:groups", "servers", "read:roles:users", "read:roles:groups"]},
]
