"""Pure builders for a bubble on Kubernetes: plain data in, kubernetes client objects out.

Like kubespawner's `objects.py`, nothing here talks to a cluster. `KubeBubbleSpawner` (kube.py)
and the Job runner (kube_runner.py) are the thin adapters that send these objects.

What the builders guarantee (and `kube_checks.py` re-checks before anything is sent):
- the bubble pod runs as a non-root uid with a read-only root filesystem, no privilege
  escalation, every capability dropped, seccomp `RuntimeDefault`, no service-account token, no
  host namespace or host path, no secret volume, and an `activeDeadlineSeconds` that ends it at
  the study's expiry;
- its NetworkPolicy denies all egress but TCP to the hub API port on the hub pods (selected by
  pod and namespace labels: no DNS, no IP block, no other pod) and all ingress but the proxy and
  hub pods on the server port.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from kubernetes_asyncio.client import models as k8s

from .spec import EXTRACT_TARGET, HOME_TARGET, LABEL_PREFIX, SHARED_TARGET, WORKSPACE_TARGET, BubbleSpec, \
    member_dir_name

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
BUBBLE_LABEL = f"{LABEL_PREFIX}/bubble"
STUDY_LABEL = f"{LABEL_PREFIX}/study"
MEMBER_LABEL = f"{LABEL_PREFIX}/member"
VOLUME_LABEL = f"{LABEL_PREFIX}/volume"
MANIFEST_ANNOTATION = f"{LABEL_PREFIX}/manifest-sha256"
EXTRACT_FILE = EXTRACT_TARGET.name
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXTRACT_MODES = ("shared", "per-member")


@dataclass(frozen=True)
class KubeOptions:
    """Site choices the builders need; the spawner fills it from its traits, tests from plain data."""

    namespace: str
    hub_namespace: str
    hub_pod_labels: Mapping[str, str]
    proxy_pod_labels: Mapping[str, str]
    image: str
    hub_api_port: int = 8081
    server_port: int = 8888
    image_pull_policy: str = "IfNotPresent"
    uid: int = 1000
    gid: int = 100
    service_account: str = "bubble"
    extract_mode: str = "shared"
    extract_storage_class: str | None = None
    extract_size: str = "10Gi"
    workspace_storage_class: str | None = None
    workspace_size: str = "10Gi"
    shared_size: str = "10Gi"
    home_size: str = "1Gi"
    tmp_size: str = "2Gi"
    termination_grace_seconds: int = 30
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("namespace", "hub_namespace"):
            if not DNS_NAME.match(getattr(self, name)) or len(getattr(self, name)) > 63:
                raise ValueError(f"{name} {getattr(self, name)!r} is not a Kubernetes namespace name "
                                 "(lowercase letters, digits and '-', at most 63)")
        for name in ("hub_pod_labels", "proxy_pod_labels"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: a policy peer without labels would select every pod; "
                                 "give the labels the chart puts on that component")
        if self.uid == 0 or self.gid == 0:
            raise ValueError("bubbles never run as root: set uid and gid to non-zero ids (jovyan is 1000:100)")
        if self.extract_mode not in EXTRACT_MODES:
            raise ValueError(f"extract_mode {self.extract_mode!r} is not one of {', '.join(EXTRACT_MODES)}")
        for name in ("hub_api_port", "server_port"):
            if not 1 <= getattr(self, name) <= 65535 or getattr(self, name) == 53:
                raise ValueError(f"{name} {getattr(self, name)} is not a usable TCP port (1-65535, not 53)")


# --- names ---------------------------------------------------------------------------------------

def short_name(*parts: str, limit: int = 63) -> str:
    """A DNS-label name from parts, cut with a hash suffix when too long (names must stay unique)."""
    name = "-".join(re.sub(r"[^a-z0-9-]+", "-", p.lower()).strip("-") for p in parts if p)
    if len(name) <= limit and DNS_NAME.match(name):
        return name
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]
    return f"{name[:limit - 11].rstrip('-')}-{digest}"


def network_policy_name(pod_name: str) -> str:
    return short_name(pod_name, "net")


def extract_claim_name(slug: str, member: str | None = None) -> str:
    return short_name("extract", slug, member_dir_name(member) if member else "")


def workspace_claim_name(slug: str, member: str) -> str:
    return short_name("workspace", slug, member_dir_name(member))


def shared_claim_name(slug: str) -> str:
    return short_name("shared", slug)


def study_claim_selector(slug: str) -> str:
    """The label selector of every claim of a study, as `_claim` labels them."""
    return f"{STUDY_LABEL}={slug},app.kubernetes.io/part-of=bubble-manager"


def bubble_label_value(pod_name: str) -> str:
    return short_name(pod_name)


# --- serialisation -------------------------------------------------------------------------------

def to_manifest(obj: Any) -> Any:
    """A client object as the plain dict the API server receives (camelCase keys, no None)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [to_manifest(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_manifest(value) for key, value in obj.items() if value is not None}
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    return {obj.attribute_map[name]: to_manifest(getattr(obj, name))
            for name in obj.openapi_types if getattr(obj, name) is not None}


def quantity_cpu(cpu: float) -> str:
    return f"{round(cpu * 1000)}m"


def quantity_bytes(count: int) -> str:
    return str(int(count))


# --- shared hardening ----------------------------------------------------------------------------

def container_security(options: KubeOptions) -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True, run_as_user=options.uid, run_as_group=options.gid, privileged=False,
        allow_privilege_escalation=False, read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))


def pod_security(options: KubeOptions) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True, run_as_user=options.uid, run_as_group=options.gid, fs_group=options.gid,
        fs_group_change_policy="OnRootMismatch", seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))


def no_dns() -> tuple[str, k8s.V1PodDNSConfig]:
    """Name lookups fail at once on loopback instead of waiting on a cluster DNS the policy blocks."""
    return "None", k8s.V1PodDNSConfig(nameservers=["127.0.0.1"], searches=[], options=[
        k8s.V1PodDNSConfigOption(name="attempts", value="1"), k8s.V1PodDNSConfigOption(name="timeout", value="1")])


def scratch_volume(name: str, size: str) -> k8s.V1Volume:
    return k8s.V1Volume(name=name, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=size))


def claim_volume(name: str, claim: str, *, read_only: bool) -> k8s.V1Volume:
    return k8s.V1Volume(name=name, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
        claim_name=claim, read_only=read_only))


# --- the bubble pod ------------------------------------------------------------------------------

def bubble_resources(spec: BubbleSpec) -> k8s.V1ResourceRequirements:
    cpu = quantity_cpu(spec.resources.cpu)
    memory = quantity_bytes(spec.resources.memory_bytes)
    return k8s.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory},
                                      limits={"cpu": cpu, "memory": memory})


def active_deadline(spec: BubbleSpec, now: dt.datetime) -> int:
    """Seconds from now to the study's expiry; refuse a pod that would already be over."""
    seconds = spec.seconds_left(now)
    if seconds < 1:
        raise ValueError(f"study {spec.study} has expired ({spec.expires_at.isoformat()}); no pod is built")
    return seconds


def bubble_pod(spec: BubbleSpec, options: KubeOptions, *, name: str, now: dt.datetime,
               env: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
               annotations: Mapping[str, str] | None = None) -> k8s.V1Pod:
    """The hardened pod of one bubble: `env`, `labels` and `annotations` come from JupyterHub/kubespawner
    (API token, URLs, reflector labels); the spec's own entries win over them."""
    extract_claim = extract_claim_name(spec.study, spec.member if options.extract_mode == "per-member" else None)
    all_labels = {**(labels or {}), **options.extra_labels, **spec.labels, BUBBLE_LABEL: bubble_label_value(name)}
    all_annotations = {**(annotations or {}), **spec.annotations}
    environment = {**(env or {}), **spec.environment}
    dns_policy, dns_config = no_dns()
    container = k8s.V1Container(
        name="notebook", image=options.image, image_pull_policy=options.image_pull_policy,
        command=list(spec.command) or None, working_dir=str(WORKSPACE_TARGET),
        ports=[k8s.V1ContainerPort(name="notebook-port", container_port=options.server_port, protocol="TCP")],
        env=[k8s.V1EnvVar(name=key, value=str(value)) for key, value in sorted(environment.items())],
        resources=bubble_resources(spec), security_context=container_security(options),
        volume_mounts=[
            k8s.V1VolumeMount(name="home", mount_path=str(HOME_TARGET)),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
            k8s.V1VolumeMount(name="extract", mount_path=str(EXTRACT_TARGET), sub_path=EXTRACT_FILE, read_only=True),
            k8s.V1VolumeMount(name="workspace", mount_path=str(WORKSPACE_TARGET)),
            k8s.V1VolumeMount(name="shared", mount_path=str(SHARED_TARGET)),
        ])
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name, namespace=options.namespace, labels=all_labels,
                                  annotations=all_annotations),
        spec=k8s.V1PodSpec(
            containers=[container], restart_policy="OnFailure",
            active_deadline_seconds=active_deadline(spec, now),
            termination_grace_period_seconds=options.termination_grace_seconds,
            service_account_name=options.service_account, automount_service_account_token=False,
            enable_service_links=False, host_network=False, host_pid=False, host_ipc=False,
            share_process_namespace=False, security_context=pod_security(options),
            dns_policy=dns_policy, dns_config=dns_config,
            volumes=[
                scratch_volume("home", options.home_size),
                scratch_volume("tmp", options.tmp_size),
                claim_volume("extract", extract_claim, read_only=True),
                claim_volume("workspace", workspace_claim_name(spec.study, spec.member), read_only=False),
                claim_volume("shared", shared_claim_name(spec.study), read_only=False),
            ]))


# --- the bubble's NetworkPolicy ------------------------------------------------------------------

def namespace_selector(namespace: str) -> k8s.V1LabelSelector:
    return k8s.V1LabelSelector(match_labels={NAMESPACE_NAME_LABEL: namespace})


def bubble_network_policy(options: KubeOptions, *, pod_name: str, study: str) -> k8s.V1NetworkPolicy:
    """Only this bubble: egress to the hub API port of the hub pods, ingress from proxy and hub on the
    server port. The hub must reach the server too: JupyterHub checks it answers before routing to it."""
    hub_peer = k8s.V1NetworkPolicyPeer(pod_selector=k8s.V1LabelSelector(match_labels=dict(options.hub_pod_labels)),
                                       namespace_selector=namespace_selector(options.hub_namespace))
    proxy_peer = k8s.V1NetworkPolicyPeer(
        pod_selector=k8s.V1LabelSelector(match_labels=dict(options.proxy_pod_labels)),
        namespace_selector=namespace_selector(options.hub_namespace))
    return k8s.V1NetworkPolicy(
        api_version="networking.k8s.io/v1", kind="NetworkPolicy",
        metadata=k8s.V1ObjectMeta(name=network_policy_name(pod_name), namespace=options.namespace, labels={
            STUDY_LABEL: study, BUBBLE_LABEL: bubble_label_value(pod_name),
            "app.kubernetes.io/component": "bubble-network-policy", "app.kubernetes.io/part-of": "bubble-manager",
            **options.extra_labels}),
        spec=k8s.V1NetworkPolicySpec(
            pod_selector=k8s.V1LabelSelector(match_labels={BUBBLE_LABEL: bubble_label_value(pod_name)}),
            policy_types=["Ingress", "Egress"],
            egress=[k8s.V1NetworkPolicyEgressRule(
                to=[hub_peer], ports=[k8s.V1NetworkPolicyPort(protocol="TCP", port=options.hub_api_port)])],
            ingress=[k8s.V1NetworkPolicyIngressRule(
                _from=[proxy_peer, hub_peer],
                ports=[k8s.V1NetworkPolicyPort(protocol="TCP", port=options.server_port)])]))


# --- volumes -------------------------------------------------------------------------------------

def _claim(name: str, options: KubeOptions, *, slug: str, volume: str, access_modes: list[str], size: str,
           storage_class: str | None, member: str | None = None,
           annotations: Mapping[str, str] | None = None) -> k8s.V1PersistentVolumeClaim:
    labels = {STUDY_LABEL: slug, VOLUME_LABEL: volume, "app.kubernetes.io/part-of": "bubble-manager",
              **options.extra_labels}
    if member:
        labels[MEMBER_LABEL] = member_dir_name(member)
    return k8s.V1PersistentVolumeClaim(
        api_version="v1", kind="PersistentVolumeClaim",
        metadata=k8s.V1ObjectMeta(name=name, namespace=options.namespace, labels=labels,
                                  annotations=dict(annotations) if annotations else None),
        spec=k8s.V1PersistentVolumeClaimSpec(
            access_modes=access_modes, storage_class_name=storage_class,
            resources=k8s.V1VolumeResourceRequirements(requests={"storage": size})))


def workspace_claim(options: KubeOptions, slug: str, member: str) -> k8s.V1PersistentVolumeClaim:
    return _claim(workspace_claim_name(slug, member), options, slug=slug, volume="workspace", member=member,
                  access_modes=["ReadWriteOnce"], size=options.workspace_size,
                  storage_class=options.workspace_storage_class)


def shared_claim(options: KubeOptions, slug: str) -> k8s.V1PersistentVolumeClaim:
    """The study's shared folder: every member's bubble mounts it, so it needs ReadWriteMany."""
    return _claim(shared_claim_name(slug), options, slug=slug, volume="shared", access_modes=["ReadWriteMany"],
                  size=options.shared_size, storage_class=options.workspace_storage_class)


def extract_claim(options: KubeOptions, slug: str, member: str | None = None) -> k8s.V1PersistentVolumeClaim:
    """The extract's volume, written once by the extract Job, then mounted read-only by the bubbles.

    `shared` mode: one claim per study, ReadOnlyMany for the bubbles (ReadWriteOnce for the Job that
    fills it). `per-member` mode, for storage classes that cannot share: one copy per member. The
    claim says which manifest it holds only once its Job succeeded (`extract_filled_patch`)."""
    per_member = options.extract_mode == "per-member"
    if per_member and not member:
        raise ValueError("extract_mode is per-member: name the member whose copy this claim holds")
    modes = ["ReadWriteOnce"] if per_member else ["ReadOnlyMany", "ReadWriteOnce"]
    return _claim(extract_claim_name(slug, member if per_member else None), options, slug=slug, volume="extract",
                  member=member if per_member else None, access_modes=modes, size=options.extract_size,
                  storage_class=options.extract_storage_class)


def extract_filled_patch(manifest_sha256: str) -> dict[str, Any]:
    """Merge patch the hub applies to an extract claim once its Job wrote and checked that manifest."""
    if not re.fullmatch(r"[0-9a-f]{64}", manifest_sha256):
        raise ValueError(f"manifest sha256 {manifest_sha256!r} is not 64 lowercase hex digits")
    return {"metadata": {"annotations": {MANIFEST_ANNOTATION: manifest_sha256}}}
