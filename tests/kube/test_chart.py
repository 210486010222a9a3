"""The Helm chart, through the real helm binary: lint, render, strict validation, schema, RBAC, checkov,
and the hub configuration it ships run against the values it renders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from .chart import (CHART, CHECKOV, NAMESPACE, RELEASE, VALUE_SETS, find, helm, hub_values, rendered, rendered_text,
                    require, template_args)
from .golden import validate_strict

pytestmark = pytest.mark.kube
VALUE_SET_NAMES = sorted(VALUE_SETS)


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_helm_lint_passes(values):
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if VALUE_SETS[values]:
        args += ["--values", str(VALUE_SETS[values])]
    result = helm(*args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_every_rendered_object_passes_strict_validation(values):
    docs = rendered(values)
    assert len(docs) > 15
    for doc in docs:
        validate_strict(doc)


def test_examples_cover_the_documented_choices():
    assert {"default", "production", "per-member-extract"} <= set(VALUE_SETS)
    per_member = hub_values(rendered("per-member-extract"))
    assert per_member["bubbles"]["extractMode"] == "per-member"
    production = rendered("production")
    images = {c["image"] for d in find(production, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    assert all("@sha256:" in image for image in images)


# --- the schema rejects wrong values ------------------------------------------------------------

WRONG_VALUES = [
    ({"unknownTopLevel": 1}, "unknownTopLevel"),
    ({"hub": {"apiPortt": 8081}}, "apiPortt"),
    ({"bubbles": {"uid": 0}}, "/bubbles/uid"),
    ({"bubbles": {"gid": "100"}}, "/bubbles/gid"),
    ({"bubbles": {"extractMode": "copy"}}, "/bubbles/extractMode"),
    ({"bubbles": {"namespace": "Bubbles_NS"}}, "/bubbles/namespace"),
    ({"images": {"bubble": {"tag": "latest"}}}, "/images/bubble/tag"),
    ({"images": {"hub": {"digest": "sha256:abc"}}}, "/images/hub/digest"),
    ({"hub": {"apiPort": 8888}}, "/hub/apiPort"),
    ({"service": {"port": "10101"}}, "/service/port"),
    ({"database": {"url": "mysql://root@db/x"}}, "/database/url"),
    ({"database": {"egress": [{"to": []}]}}, "/database/egress"),
    ({"hub": {"publicUrl": None}}, "publicUrl"),
    ({"hub": {"publicUrl": ""}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "http://jupyter.example.org"}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "https://jupyter.example.org/jupyter"}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "https://jupyter.example.org/hub/oauth_callback"}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "jupyter.example.org"}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "https://jupyter.example.org:8443"}}, "/hub/publicUrl"),
    ({"hub": {"publicUrl": "https://*.example.org"}}, "/hub/publicUrl"),
    ({"ingress": {"tls": {"secretName": ""}}}, "/ingress/tls/secretName"),
    ({"ingress": {"hosts": ["jupyter.example.org"]}}, "hosts"),
    ({"auth": {"type": "dummy"}}, "/auth/type"),
    ({"auth": {"oidc": {"issuer": "http://sso.example.org/realms/hospital"}}}, "/auth/oidc/issuer"),
    ({"auth": {"oidc": {"authorizeUrl": "https://sso.example.org/auth"}}}, "authorizeUrl"),
    ({"auth": {"oidc": {"mfa": {"required": "yes"}}}}, "/auth/oidc/mfa/required"),
    ({"auth": {"oidc": {"mfa": {"amrValue": ["otp"]}}}}, "amrValue"),
    ({"auth": {"oidc": {"mfa": {"acrValues": ["gold level"]}}}}, "/auth/oidc/mfa/acrValues"),
    ({"auth": {"oidc": {"idpLogout": "false"}}}, "/auth/oidc/idpLogout"),
    ({"hub": {"groups": {"admins": []}}}, "/hub/groups/admins"),
    ({"hub": {"groups": {"stewards": " stewards"}}}, "/hub/groups/stewards"),
    ({"hub": {"groups": {"jupyterhub-admins": "ops"}}}, "jupyterhub-admins"),
    ({"proxy": {"serviceType": "ExternalName"}}, "/proxy/serviceType"),
    ({"hub": {"home": {"size": "lots"}}}, "/hub/home/size"),
    ({"hub": {"home": {"accessMode": "ReadWriteOncePod"}}}, "/hub/home/accessMode"),
    ({"warehouse": {"existingClaim": "Warehouse_Claim"}}, "/warehouse/existingClaim"),
    ({"warehouse": {"file": "../warehouse.duckdb"}}, "/warehouse/file"),
    ({"warehouse": {"file": "warehouse.sqlite"}}, "/warehouse/file"),
]


@pytest.mark.parametrize(("values", "names"), WRONG_VALUES, ids=[n for _, n in WRONG_VALUES])
def test_the_schema_rejects_wrong_values(tmp_path, values, names):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm(*template_args(path), check=False)
    assert result.returncode != 0
    assert names in result.stderr, result.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--namespace", "bubbles"], "must differ from the release namespace"),
    (["--set", "database.existingSecret.name="], "set database.url or database.existingSecret.name"),
    (["--set", "auth.oidc.existingSecret.name="], "OIDC client secret"),
    (["--set", "hub.groups.admins=researchers"], 'the provider group "researchers" gives both researchers and admins'),
    (["--set", "hub.groups.stewards={eds-stewards,researchers}"], "gives both researchers and stewards"),
    (["--set", "auth.oidc.callbackUrl=https://jupyter.example.org/hub/oauth_callback"],
     "auth.oidc.callbackUrl is no longer a value: remove it and set hub.publicUrl"),
])
def test_the_chart_refuses_inconsistent_values(extra, message):
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- least privilege ----------------------------------------------------------------------------

HUB_RESOURCES = {"pods", "persistentvolumeclaims", "services", "events", "networkpolicies"}
SERVICE_RULES = {("", "persistentvolumeclaims"): {"list", "create", "patch", "delete"},
                 ("", "secrets"): {"create", "patch", "delete"},
                 ("networking.k8s.io", "networkpolicies"): {"create", "update", "delete"},
                 ("batch", "jobs"): {"create", "delete"}, ("batch", "jobs/status"): {"get"}}


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_hub_and_service_may_only_manage_their_objects_in_the_bubbles_namespace(values):
    docs = rendered(values)
    bubbles_namespace = hub_values(docs)["bubbles"]["namespace"]
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    roles = {r["metadata"]["name"].rsplit("-", 1)[1]: r for r in find(docs, "Role")}
    assert sorted(roles) == ["hub", "service"]
    assert {r["metadata"]["namespace"] for r in roles.values()} == {bubbles_namespace}
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            if "secrets" in rule["resources"]:
                assert set(rule["verbs"]) == {"create", "patch", "delete"}  # never read or list one
    for rule in roles["hub"]["rules"]:  # bubbles only: no Job, no secret
        assert set(rule["resources"]) <= HUB_RESOURCES
        if "events" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    granted = {(group, resource): set(rule["verbs"]) for rule in roles["service"]["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    assert granted == SERVICE_RULES  # study Jobs, closings: no pod, no watch, nothing read but claims and Job status
    bindings = {b["metadata"]["name"].rsplit("-", 1)[1]: b for b in find(docs, "RoleBinding")}
    for component in ("hub", "service"):
        assert bindings[component]["roleRef"]["name"] == roles[component]["metadata"]["name"]
        assert bindings[component]["subjects"] == [{"kind": "ServiceAccount", "namespace": NAMESPACE,
                                                    "name": f"{RELEASE}-bubble-manager-{component}"}]


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_bubbles_namespace_holds_no_secret_and_a_powerless_account(values):
    docs = rendered(values)
    bubbles_namespace = hub_values(docs)["bubbles"]["namespace"]
    in_bubbles = [d for d in docs if d["metadata"].get("namespace") == bubbles_namespace]
    assert not [d for d in in_bubbles if d["kind"] in ("Secret", "ConfigMap", "Deployment", "Pod")]
    account = find(docs, "ServiceAccount", "bubble", bubbles_namespace)[0]
    assert account["automountServiceAccountToken"] is False
    assert not [s for b in find(docs, "RoleBinding") for s in b["subjects"] if s["name"] == "bubble"]
    namespaces = find(docs, "Namespace")
    if namespaces:
        assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_default_deny_in_both_namespaces(values):
    docs = rendered(values)
    bubbles_namespace = hub_values(docs)["bubbles"]["namespace"]
    for namespace in (NAMESPACE, bubbles_namespace):
        deny = [p for p in find(docs, "NetworkPolicy", namespace=namespace)
                if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] and "egress" not in p["spec"]]
        assert deny and sorted(deny[0]["spec"]["policyTypes"]) == ["Egress", "Ingress"], namespace


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_only_the_hub_and_the_service_get_a_service_account_token(values):
    docs = rendered(values)
    for deployment in find(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        expected = deployment["metadata"]["name"].endswith(("-hub", "-service"))
        assert spec["automountServiceAccountToken"] is expected, deployment["metadata"]["name"]
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]


# --- checkov ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_checkov_finds_no_failed_check_and_every_skip_is_explained(tmp_path):
    checkov = require(CHECKOV)
    for name in VALUE_SET_NAMES:
        (tmp_path / f"{name}.yaml").write_text(rendered_text(name))
    result = subprocess.run([str(checkov), "--directory", str(tmp_path), "--framework", "kubernetes", "--output",
                             "json", "--skip-download", "--compact"],
                            capture_output=True, text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"].get("failed_checks", [])]
    assert failed == []
    assert sum(r["summary"]["failed"] for r in reports) == 0
    assert sum(r["summary"]["passed"] for r in reports) > 100
    for skipped in (c for r in reports for c in r["results"].get("skipped_checks", [])):
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


# --- the hub configuration the chart ships ------------------------------------------------------

def load_hub_config(tmp_path: Path, docs: list[dict]):
    """Run files/jupyterhub_config.py as JupyterHub would, with the rendered values and fake secret files."""
    from traitlets.config import PyFileConfigLoader

    config_dir, secrets_dir = tmp_path / "config", tmp_path / "secrets"
    config_dir.mkdir()
    secrets_dir.mkdir()
    config_map = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    for name, text in config_map["data"].items():
        (config_dir / name).write_text(text)
    for name in ("cookie-secret", "proxy-token", "service-token", "oidc-client-secret", "database-url", "crypt-key"):
        (secrets_dir / name).write_text("ab" * 32 if name in ("cookie-secret", "crypt-key") else f"{name}-value")
    values = json.loads((config_dir / "values.json").read_text())
    env = {"BUBBLE_MANAGER_CONFIG_DIR": str(config_dir), "BUBBLE_MANAGER_SECRETS_DIR": str(secrets_dir),
           values["hubServiceEnv"] + "_SERVICE_HOST": "10.96.7.8",
           values["serviceServiceEnv"] + "_SERVICE_HOST": "10.96.7.9"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        config = PyFileConfigLoader("jupyterhub_config.py", str(config_dir)).load_config()
        bubble_config = PyFileConfigLoader("bubble_manager_config.py", str(config_dir)).load_config()
    return config, bubble_config, values


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_hub_config_runs_and_sets_only_real_spawner_traits(tmp_path, values):
    from bubble_manager.runtime.kube import KubeBubbleSpawner, check_hub_connect_url

    docs = rendered(values)
    config, bubble_config, settings = load_hub_config(tmp_path, docs)
    spawner = config.KubeBubbleSpawner
    unknown = set(spawner) - set(KubeBubbleSpawner.class_traits(config=True))
    assert not unknown, f"the chart's hub config sets traits KubeBubbleSpawner does not have: {unknown}"
    check_hub_connect_url(spawner.hub_connect_url, spawner.hub_api_port)
    from bubble_manager.auth.authenticator import BubbleOIDCAuthenticator

    unknown = set(config.BubbleOIDCAuthenticator) - set(BubbleOIDCAuthenticator.class_traits(config=True))
    assert not unknown, f"the chart's hub config sets traits BubbleOIDCAuthenticator does not have: {unknown}"
    assert "GenericOAuthenticator" not in config
    assert spawner.hub_connect_url == f"http://10.96.7.8:{settings['hubApiPort']}"
    assert bubble_config.BubbleManager.db_url == "database-url-value"
    assert config.JupyterHub.spawner_class == "bubble_manager.runtime.kube.KubeBubbleSpawner"
    service = config.JupyterHub.services[0]
    assert service["name"] == "bubble-manager" and service["api_token"] == "service-token-value"
    assert service["url"] == f"http://{RELEASE}-bubble-manager-service:10101"
    assert spawner.namespace == settings["bubbles"]["namespace"] != config.KubeBubbleSpawner.hub_namespace


def source_values(name: str) -> dict:
    """The values as written (the chart's defaults overlaid with the example), to check the rendering against."""
    def overlay(base: dict, extra: dict) -> dict:
        return {**base, **{k: overlay(base.get(k, {}), v) if isinstance(v, dict) else v for k, v in extra.items()}}

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return overlay(defaults, yaml.safe_load(VALUE_SETS[name].read_text())) if VALUE_SETS[name] else defaults


def provider_claims(path: str, groups: list[str]) -> dict:
    claims: dict = {}
    *parents, last = path.split(".")
    leaf = claims
    for part in parents:
        leaf = leaf.setdefault(part, {})
    leaf[last] = groups
    return claims


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_hub_signs_in_through_the_bubble_oidc_authenticator(tmp_path, monkeypatch, values):
    """The authenticator the chart configures, built from it as the hub builds it: groups mapped, MFA required,
    the audit log at hand, and the one the bubble spawner accepts (users' tokens limited to the panel's scopes)."""
    import asyncio
    import io
    import urllib.request

    from jupyterhub.crypto import CryptKeeper
    from oauthenticator.generic import GenericOAuthenticator
    from tornado import web
    from traitlets.utils.importstring import import_item

    from bubble_manager.auth.authenticator import BubbleOIDCAuthenticator
    from bubble_manager.auth.mapping import DEFAULT_SECOND_FACTOR_AMR, second_factor
    from bubble_manager.runtime import hubapi

    from .conftest import make_spawner

    config, _, settings = load_hub_config(tmp_path, rendered(values))
    source = source_values(values)
    oidc_values = source["auth"]["oidc"]
    issuer = oidc_values["issuer"]
    assert import_item(config.JupyterHub.authenticator_class) is BubbleOIDCAuthenticator

    fetched = []

    def discovery(url, timeout):  # noqa: ANN001 - the provider's discovery document, instead of the network
        fetched.append(url)
        return io.BytesIO(json.dumps({
            "issuer": issuer, "authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo", "jwks_uri": f"{issuer}/certs",
            "end_session_endpoint": f"{issuer}/logout"}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", discovery)
    authenticator = BubbleOIDCAuthenticator(config=config)
    assert fetched == [f"{issuer}/.well-known/openid-configuration"]
    assert (authenticator.token_url, authenticator.jwks_url) == (f"{issuer}/token", f"{issuer}/certs")
    assert authenticator.client_id == oidc_values["clientId"]
    assert authenticator.client_secret == "oidc-client-secret-value"  # read from the projected secret file

    groups = {role: [names] if isinstance(names, str) else names for role, names in source["hub"]["groups"].items()}
    assert authenticator.group_map == {name: role for role, names in groups.items() for name in names}
    assert authenticator.allowed_groups == {"researchers", "stewards", "admins"}
    assert not authenticator.admin_users and not authenticator.admin_groups
    for role, names in groups.items():  # what a sign-in maps, through the configured claim
        state = {authenticator.user_auth_state_key: provider_claims(oidc_values["groupsClaim"], [*names, "staff"])}
        model = asyncio.run(authenticator.update_auth_model({"auth_state": state}))
        assert asyncio.run(authenticator.get_user_groups(model["auth_state"])) == {role}

    assert authenticator.mfa_required is True
    assert authenticator.mfa_acr_values == set(oidc_values["mfa"]["acrValues"])
    assert authenticator.mfa_amr_values == set(oidc_values["mfa"]["amrValues"] or DEFAULT_SECOND_FACTOR_AMR)
    assert not second_factor({"amr": ["pwd"], "acr": "1"}, authenticator.mfa_amr_values,
                             authenticator.mfa_acr_values).ok

    assert authenticator.enable_auth_state and authenticator.manage_groups and authenticator.auth_refresh_strict
    assert CryptKeeper(config=config).keys == [bytes.fromhex("ab" * 32)]  # the chart's crypt-key secret
    assert config.Authenticator.refresh_pre_spawn is True and "offline_access" in authenticator.scope
    assert authenticator.bubble_manager_home == settings["home"] == "/srv/bubble-manager"
    assert authenticator.bubble_manager_config == str(tmp_path / "config" / "bubble_manager_config.py")
    hub_pages = source["hub"]["publicUrl"].rstrip("/") + source["hub"]["baseUrl"] + "hub/"
    assert authenticator.oauth_callback_url == f"{hub_pages}oauth_callback"
    assert authenticator.post_logout_redirect_url == f"{hub_pages}login"
    logout = authenticator.idp_logout_url("id-token")
    assert logout.startswith(f"{issuer}/logout?") if oidc_values["idpLogout"] else logout == ""

    # roles bind the mapped hub groups, as on a local site; the panel's OAuth tokens carry its scopes
    assert config.JupyterHub.load_roles == hubapi.hub_roles()
    bound = {group for role in config.JupyterHub.load_roles for group in role.get("groups", [])}
    assert bound == set(authenticator.group_map.values()) == {"researchers", "stewards", "admins"}
    (service,) = config.JupyterHub.services
    assert set(service["oauth_client_allowed_scopes"]) == set(hubapi.CUSTOM_SCOPES)

    async def pre_spawn(authenticator) -> None:  # noqa: ANN001 - kubespawner builds its clients in a loop
        spawner = make_spawner(tmp_path)
        spawner.authenticator = authenticator
        spawner.run_pre_spawn_hook()

    asyncio.run(pre_spawn(authenticator))  # bubbles start under it
    plain = GenericOAuthenticator(client_id="x", authorize_url="https://x", token_url="https://x")
    with pytest.raises(web.HTTPError, match="do not start under the GenericOAuthenticator"):
        asyncio.run(pre_spawn(plain))


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_service_config_fills_extract_volumes_from_its_own_cluster_ip(tmp_path, values):
    from bubble_manager.runtime.kube_activation import KubeStudyJobs, kube_options, transfer_url

    docs = rendered(values)
    config, bubble_config, settings = load_hub_config(tmp_path, docs)
    unknown = set(bubble_config.KubeStudyJobs) - set(KubeStudyJobs.class_traits(config=True))
    assert not unknown, f"the chart's bubble-manager config sets traits KubeStudyJobs does not have: {unknown}"
    jobs = KubeStudyJobs(config=bubble_config)
    assert jobs.enabled and jobs.namespace == settings["bubbles"]["namespace"] == config.KubeBubbleSpawner.namespace
    prefix = next(e["value"] for d in find(docs, "Deployment") if d["metadata"]["name"].endswith("-service")
                  for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
                  if e["name"] == "JUPYTERHUB_SERVICE_PREFIX")  # where the service serves its routes
    assert transfer_url(jobs, "t2d-statins") == (f"http://10.96.7.9:{settings['servicePort']}{prefix}"
                                                 "transfer/v1/extracts/t2d-statins")
    options = kube_options(jobs)
    assert options.image == config.KubeBubbleSpawner.image and options.extract_mode == config.KubeBubbleSpawner.extract_mode
    assert (options.uid, options.gid) == (config.KubeBubbleSpawner.bubble_uid, config.KubeBubbleSpawner.bubble_gid)
    pods = {d["metadata"]["name"].rsplit("-", 1)[1]: d for d in find(docs, "Deployment")}
    service_pod = pods["service"]["spec"]["template"]
    assert jobs.service_pod_labels.items() <= service_pod["metadata"]["labels"].items()
    assert not jobs.service_pod_labels.items() <= pods["hub"]["spec"]["template"]["metadata"]["labels"].items()
    (container_port,) = service_pod["spec"]["containers"][0]["ports"]
    service = find(docs, "Service", f"{RELEASE}-bubble-manager-service")[0]
    (port,) = service["spec"]["ports"]
    assert port["port"] == container_port["containerPort"] == jobs.service_port  # policies match the pod's port
    assert port["targetPort"] == container_port["name"]
    assert service["spec"]["selector"].items() <= service_pod["metadata"]["labels"].items()
    assert service_pod["spec"]["enableServiceLinks"] is True  # how the service learns its cluster IP
    account = service_pod["spec"]["serviceAccountName"]
    assert account == f"{RELEASE}-bubble-manager-service"


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_warehouse_claim_is_mounted_read_only_in_the_service_pod_alone(tmp_path, values):
    from bubble_manager.config import BubbleManager

    docs = rendered(values)
    _, bubble_config, _ = load_hub_config(tmp_path, docs)
    source = yaml.safe_load((CHART / "examples" / f"{values}.yaml").read_text()) if values != "default" else {}
    claim = source.get("warehouse", {}).get("existingClaim", "")
    pods = {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["spec"] for d in find(docs, "Deployment")}
    mounting = {name: [v for v in pod.get("volumes", []) if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim]
                for name, pod in pods.items()}
    settings = BubbleManager(config=bubble_config, home="/srv/bubble-manager")
    if not claim:  # the default: the warehouse lives on the hub home volume
        assert "warehouse_path" not in bubble_config.BubbleManager
        assert settings.warehouse_path == "/srv/bubble-manager/warehouse/warehouse.duckdb"
        return
    assert {name for name, volumes in mounting.items() if volumes} == {"service"}
    (volume,) = mounting["service"]
    (mount,) = [m for m in pods["service"]["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert volume["persistentVolumeClaim"]["readOnly"] is True and mount["readOnly"] is True
    assert settings.warehouse_path == f"{mount['mountPath']}/{source['warehouse']['file']}"
    assert settings.catalog_path == settings.warehouse_path.removesuffix(".duckdb") + ".catalog.yaml"


def test_without_its_cluster_ip_the_service_names_the_fix(tmp_path):
    from bubble_manager.runtime.kube_activation import KubeStudyJobs, transfer_url

    docs = rendered("default")
    _, bubble_config, settings = load_hub_config(tmp_path, docs)
    bubble_config.KubeStudyJobs.service_url = ""
    with pytest.raises(ValueError, match="cluster IP"):
        transfer_url(KubeStudyJobs(config=bubble_config), "t2d-statins")


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_spawner_labels_select_the_rendered_pods(tmp_path, values):
    docs = rendered(values)
    config, _, settings = load_hub_config(tmp_path, docs)
    pods = {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["metadata"]["labels"]
            for d in find(docs, "Deployment")}
    assert config.KubeBubbleSpawner.hub_pod_labels.items() <= pods["hub"].items()
    assert config.KubeBubbleSpawner.proxy_pod_labels.items() <= pods["proxy"].items()
    assert not config.KubeBubbleSpawner.hub_pod_labels.items() <= pods["proxy"].items()
    hub_service = find(docs, "Service", f"{RELEASE}-bubble-manager-hub")[0]
    port = hub_service["spec"]["ports"][0]
    assert port["port"] == port["targetPort"] == settings["hubApiPort"] == config.KubeBubbleSpawner.hub_api_port
    assert hub_service["spec"]["selector"].items() <= pods["hub"].items()


def test_the_chart_declares_the_kubernetes_versions_it_supports():
    assert helm(*template_args(None, "--kube-version", "1.30.0")).returncode == 0
    too_old = helm(*template_args(None, "--kube-version", "1.29.9"), check=False)
    assert too_old.returncode != 0 and "kubeVersion" in too_old.stderr + too_old.stdout


# --- origins: the hub, the panel and each user's servers on their own hosts ----------------------

def service_env(docs: list[dict]) -> dict[str, str]:
    (deployment,) = [d for d in find(docs, "Deployment") if d["metadata"]["name"].endswith("-service")]
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            if "value" in e}


def initialized_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config):  # config: a traitlets Config
    """JupyterHub itself, initialised from the chart's config up to its services (a SQLite file of its own,
    the provider's discovery document served from memory): where it puts the hub, the panel and users."""
    import asyncio
    import io
    import urllib.request

    from jupyterhub.app import JupyterHub

    issuer = config.BubbleOIDCAuthenticator.issuer
    document = {"issuer": issuer, "authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
                "userinfo_endpoint": f"{issuer}/userinfo", "jwks_uri": f"{issuer}/certs"}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(json.dumps(document).encode()))
    config.JupyterHub.db_url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    app = JupyterHub(config=config)

    async def initialize() -> None:
        app.init_logging()
        app.init_eventlog()
        app.init_secrets()
        app.init_db()
        app.init_hub()
        app.init_proxy()
        app.init_oauth()
        await app.init_role_creation()
        app.init_services()
        app.init_tornado_settings()

    asyncio.run(initialize())
    return app


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_user_servers_and_the_panel_live_on_their_own_subdomains(tmp_path, monkeypatch, values):
    """subdomain_host from hub.publicUrl; JupyterHub puts the panel and each user on their own host and
    takes the panel's OAuth callback there; the service pod is told the same and signs people in on the hub's host."""
    from urllib.parse import urlsplit

    from jupyterhub import orm
    from jupyterhub.services.auth import HubOAuth

    docs = rendered(values)
    config, _, _ = load_hub_config(tmp_path, docs)
    source = source_values(values)["hub"]
    public_url, base_url = source["publicUrl"].rstrip("/"), source["baseUrl"]
    host = urlsplit(public_url).hostname
    assert config.JupyterHub.subdomain_host == public_url

    hub = initialized_hub(tmp_path, monkeypatch, config)
    assert hub.public_url == f"{public_url}{base_url}" and hub.hub_routespec == "/"  # every host reaches the hub
    panel = hub._service_map["bubble-manager"]
    assert panel.domain != host and panel.domain.endswith(f".{host}")
    panel_url = f"https://{panel.domain}{base_url}services/bubble-manager/"
    assert panel.proxy_spec == f"{panel.domain}{base_url}services/bubble-manager/"  # routed under its host only
    assert panel.orm.oauth_client.redirect_uri == f"{panel_url}oauth_callback"
    assert config.JupyterHub.default_url == panel_url
    orm_user = orm.User(name="alice")
    hub.db.add(orm_user)
    hub.db.commit()
    alice = hub.users[orm_user]
    assert alice.host == f"https://alice.{host}" and alice.proxy_spec == f"alice.{host}{base_url}user/alice/"

    env = service_env(docs)
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == panel.oauth_redirect_uri  # else the hub refuses the client
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == panel.prefix
    assert env["JUPYTERHUB_PUBLIC_URL"] == panel_url
    assert env["BUBBLE_HUB_URL"] == public_url  # the panel's links and CSP name the hub's origin
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-token-value")
    oauth = HubOAuth()  # the service's OAuth client, as it builds itself from that environment
    assert oauth.oauth_authorization_url == f"{public_url}{base_url}hub/api/oauth2/authorize"
    assert oauth.oauth_redirect_uri == panel.oauth_redirect_uri


@pytest.mark.parametrize("values", VALUE_SET_NAMES)
def test_the_ingress_serves_the_hub_host_and_its_subdomains_over_tls_to_the_host_routing_proxy(values):
    docs = rendered(values)
    source = source_values(values)
    host = source["hub"]["publicUrl"].removeprefix("https://").rstrip("/")
    (ingress,) = find(docs, "Ingress")
    assert ingress["metadata"]["namespace"] == NAMESPACE
    rules = {rule["host"]: rule["http"]["paths"] for rule in ingress["spec"]["rules"]}
    assert set(rules) == {host, f"*.{host}"}
    (public,) = find(docs, "Service", f"{RELEASE}-bubble-manager-proxy-public")
    for paths in rules.values():
        (path,) = paths
        assert (path["path"], path["pathType"]) == ("/", "Prefix")
        backend = path["backend"]["service"]
        assert backend["name"] == public["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in public["spec"]["ports"]}
    (tls,) = ingress["spec"]["tls"]
    assert set(tls["hosts"]) == set(rules) and tls["secretName"] == source["ingress"]["tls"]["secretName"]
    assert ingress["spec"].get("ingressClassName", "") == source["ingress"]["className"]
    (proxy,) = [d for d in find(docs, "Deployment") if d["metadata"]["name"].endswith("-proxy")]
    assert "--host-routing" in proxy["spec"]["template"]["spec"]["containers"][0]["command"]


def test_without_the_ingress_the_proxy_still_routes_by_host(tmp_path):
    docs = [d for d in yaml.safe_load_all(helm(*template_args(None, "--set", "ingress.enabled=false")).stdout) if d]
    assert not find(docs, "Ingress")
    (proxy,) = [d for d in find(docs, "Deployment") if d["metadata"]["name"].endswith("-proxy")]
    assert "--host-routing" in proxy["spec"]["template"]["spec"]["containers"][0]["command"]
    config, _, _ = load_hub_config(tmp_path, docs)
    assert config.JupyterHub.subdomain_host == "https://jupyter.example.org"
