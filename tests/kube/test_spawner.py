"""KubeBubbleSpawner without a cluster: its pod manifest, its gate, and the order in which it creates and
deletes the NetworkPolicy and the pod, against a recording in-memory Kubernetes API."""

from __future__ import annotations

import hashlib

import pytest
from kubernetes_asyncio.client import models as k8s

from bubble_manager.runtime import kube
from bubble_manager.runtime.kube_checks import UnsafeObject, pod_problems
from bubble_manager.runtime.kube_objects import MANIFEST_ANNOTATION, extract_claim, to_manifest
from bubble_manager.runtime.spec import SpawnRefused

from .conftest import HUB_IP_URL, make_spawner

pytestmark = pytest.mark.kube

POD = "jupyter-alice--t2d-statins"
POLICY = "jupyter-alice--t2d-statins-net"


def fill_extract(cluster, options, study_home, *, sha: str | None = None, member: str | None = None) -> None:
    """Put the study's extract claim in the fake cluster as the extract Job leaves it."""
    claim = to_manifest(extract_claim(options, study_home.study.slug, member))
    claim["metadata"]["annotations"] = {
        MANIFEST_ANNOTATION: sha or hashlib.sha256(study_home.manifest.read_bytes()).hexdigest()}
    cluster.objects[("pvc", "bubbles", claim["metadata"]["name"])] = claim


def _audit_rows(context) -> list[tuple[str, str | None, dict]]:
    import json

    from sqlalchemy import select

    from bubble_manager.store import AuditEntryRow

    with context.store.transaction() as session:
        rows = session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
        return [(r.action, r.study, json.loads(r.detail)) for r in rows]


def order(cluster, *kinds: str) -> list[tuple[str, str]]:
    return [(verb, kind) for verb, kind, _ in cluster.calls if kind in kinds and verb in ("create", "delete")]


# --- the pod manifest ---------------------------------------------------------------------------

async def test_pod_manifest_renders_the_spec_without_a_cluster(study_home, cluster):
    spawner = make_spawner(study_home.home)
    pod = to_manifest(await spawner.get_pod_manifest())
    assert pod["metadata"]["name"] == POD and pod["metadata"]["namespace"] == "bubbles"
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["bubble-manager.io/study"] == "t2d-statins"
    assert labels["component"] == "bubble"  # what kubespawner's pod reflector selects
    assert annotations["bubble-manager.io/manifest-sha256"] == hashlib.sha256(
        study_home.manifest.read_bytes()).hexdigest()
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"] == f"{HUB_IP_URL}/hub/api"
    assert env["BUBBLE_STUDY"] == "t2d-statins" and env["JUPYTERHUB_API_TOKEN"] == "bubble-api-token"
    assert pod["spec"]["activeDeadlineSeconds"] == int((study_home.study.expires_at - kube.clock.utcnow())
                                                       .total_seconds())
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": f"{round(study_home.study.request.resources.cpu * 1000)}m",
                                   "memory": str(study_home.study.request.resources.memory_bytes)}
    assert pod_problems(pod) == []


async def test_the_bubble_token_and_server_settings_match_the_local_spawner(study_home, cluster):
    from bubble_manager.runtime.local import SERVER_TOKEN_SCOPES

    spawner = make_spawner(study_home.home)
    assert spawner.server_token_scopes == SERVER_TOKEN_SCOPES == ["users:activity!user", "access:servers!server"]
    assert spawner.oauth_client_allowed_scopes == [] and spawner.disable_user_config is True
    env = {e["name"]: e["value"] for e in to_manifest(await spawner.get_pod_manifest())["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_DISABLE_USER_CONFIG"] == "1" and env["JUPYTERHUB_DEFAULT_URL"] == "/lab"


async def test_user_options_are_ignored(study_home, cluster):
    spawner = make_spawner(study_home.home)
    spawner.user_options = {"image": "evil/image:latest", "study": "other-study", "profile": "gpu"}
    await spawner.load_user_options()
    assert spawner.user_options == {}
    assert spawner.options_form == "" and spawner.options_from_form({"study": ["x"]}) == {}
    pod = to_manifest(await spawner.get_pod_manifest())
    assert pod["spec"]["containers"][0]["image"] == "registry.example.org/bubble-manager/bubble:0.1.0"


@pytest.mark.parametrize(("user", "server", "reason"), [
    ("alice", "", "default-server"),
    ("mallory", "t2d-statins", "not-member"),
    ("alice", "no-such-study", "unknown-study"),
])
async def test_the_gate_refuses_and_audits_before_any_api_call(study_home, cluster, options, user, server, reason):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home, user=user, server=server)
    with pytest.raises(SpawnRefused) as refused:
        await spawner.start()
    assert refused.value.reason == reason
    assert cluster.calls == []
    assert ("bubble.refused", reason) in [(a, d.get("reason")) for a, _, d in _audit_rows(study_home.context)]


async def test_an_extract_that_fails_verification_is_refused(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    study_home.home.joinpath("studies", "t2d-statins", "extract.duckdb").write_bytes(b"altered after signing!!!!!!!!!!!!!!")
    with pytest.raises(SpawnRefused, match="failed verification") as refused:
        await make_spawner(study_home.home).start()
    assert refused.value.reason == "extract-invalid"
    assert cluster.calls == []


async def test_a_study_without_extract_volume_is_refused(study_home, cluster):
    with pytest.raises(SpawnRefused, match="extract") as refused:
        await make_spawner(study_home.home).start()
    assert refused.value.reason == "no-extract"
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


async def test_a_stale_extract_volume_is_refused(study_home, cluster, options):
    fill_extract(cluster, options, study_home, sha="0" * 64)
    with pytest.raises(SpawnRefused) as refused:
        await make_spawner(study_home.home).start()
    assert refused.value.reason == "stale-extract"
    assert _audit_rows(study_home.context)[-1][2]["reason"] == "stale-extract"
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


@pytest.mark.parametrize("url", ["http://hub:8081", "http://hub.bubble-manager.svc:8081", "http://10.96.0.10:8000",
                                 None])
async def test_the_hub_must_be_reached_by_ip_on_the_policy_port(study_home, cluster, options, url):
    fill_extract(cluster, options, study_home)
    with pytest.raises(RuntimeError, match="hub_connect_url"):
        await make_spawner(study_home.home, hub_connect_url=url).start()
    assert _audit_rows(study_home.context)[-1][0] == "bubble.failed"
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


# --- create/delete order ------------------------------------------------------------------------

async def test_policy_is_created_before_the_pod_and_deleted_after_it(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    url = await spawner.start()
    assert url == "http://10.1.2.3:8888"
    assert order(cluster, "pod", "networkpolicy") == [("create", "networkpolicy"), ("create", "pod")]
    policy = cluster.objects[("networkpolicy", "bubbles", POLICY)]
    pod = cluster.objects[("pod", "bubbles", POD)]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert sorted(cluster.names("pvc")) == ["extract-t2d-statins", "shared-t2d-statins",
                                            "workspace-t2d-statins-alice-2bd806c9"]

    cluster.calls.clear()
    await spawner.stop()
    assert order(cluster, "pod", "networkpolicy") == [("delete", "pod"), ("delete", "networkpolicy")]
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []
    assert len(cluster.names("pvc")) == 3  # the member's work outlives the bubble
    actions = [a for a, _, _ in _audit_rows(study_home.context)]
    assert "bubble.spawn" in actions and actions[-1] == "bubble.stop"


async def test_a_leftover_policy_is_replaced_by_the_current_one(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    stale = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": POLICY, "namespace": "bubbles"},
             "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}
    cluster.objects[("networkpolicy", "bubbles", POLICY)] = stale
    spawner = make_spawner(study_home.home)
    await spawner.start()
    assert cluster.objects[("networkpolicy", "bubbles", POLICY)]["spec"]["egress"][0]["ports"] == [
        {"port": 8081, "protocol": "TCP"}]
    await spawner.stop(now=True)


@pytest.mark.parametrize("behaviour", ["refuse", "pending"])
async def test_nothing_is_left_after_a_failed_start(study_home, cluster, options, behaviour):
    fill_extract(cluster, options, study_home)
    cluster.pod_behaviour = behaviour
    spawner = make_spawner(study_home.home, start_timeout=1)
    with pytest.raises(Exception):
        await spawner.start()
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []
    assert "bubble.failed" in [a for a, _, _ in _audit_rows(study_home.context)]
    created_policy = cluster.calls.index(("create", "networkpolicy", POLICY))
    attempts = [i for i, call in enumerate(cluster.calls) if call[:2] == ("create", "pod")]
    assert attempts and min(attempts) > created_policy
    last_policy_delete = max(i for i, call in enumerate(cluster.calls) if call == ("delete", "networkpolicy", POLICY))
    assert all(i < last_policy_delete for i, call in enumerate(cluster.calls) if call[:2] == ("delete", "pod"))


async def test_a_failed_policy_creation_creates_no_pod(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    cluster.fail_next[("create", "networkpolicy")] = 403
    with pytest.raises(Exception, match="403"):
        await make_spawner(study_home.home).start()
    assert [c for c in cluster.calls if c[1] == "pod" and c[0] == "create"] == []


async def test_the_policy_stays_while_the_pod_may_still_run(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    await spawner.start()
    cluster.fail_next[("delete", "pod")] = 500
    with pytest.raises(Exception):
        await spawner.stop(now=True)
    assert cluster.names("networkpolicy") == [POLICY]
    await spawner.stop(now=True)
    assert cluster.names("networkpolicy") == [] and cluster.names("pod") == []


async def test_a_hook_that_weakens_the_pod_is_refused_and_cleaned_up(study_home, cluster, options):
    fill_extract(cluster, options, study_home)

    def add_host_path(spawner, pod):  # noqa: ANN001 - kubespawner hook signature
        pod.spec.volumes.append(k8s.V1Volume(name="host", host_path=k8s.V1HostPathVolumeSource(path="/")))
        pod.spec.containers[0].security_context.privileged = True
        return pod

    with pytest.raises(UnsafeObject, match="hostPath.*privileged|privileged|hostPath"):
        await make_spawner(study_home.home, modify_pod_hook=add_host_path).start()
    assert ("create", "pod", POD) not in cluster.calls
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


async def test_per_member_extract_copies(study_home, cluster, options):
    from dataclasses import replace

    per_member = replace(options, extract_mode="per-member")
    fill_extract(cluster, per_member, study_home, member="alice")
    spawner = make_spawner(study_home.home, extract_mode="per-member")
    await spawner.start()
    pod = cluster.objects[("pod", "bubbles", POD)]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert "extract-t2d-statins-alice-2bd806c9" in claims
    await spawner.stop(now=True)


async def test_deleting_the_named_server_keeps_the_study_volumes(study_home, cluster, options):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    await spawner.start()
    await spawner.stop(now=True)
    cluster.calls.clear()
    await spawner.delete_forever()
    assert cluster.calls == [] and len(cluster.names("pvc")) == 3
    assert _audit_rows(study_home.context)[-1][0] == "bubble.server-deleted"
