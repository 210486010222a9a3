"""Pure builders for the study Jobs (extract fill, snapshot collect), the short-lived secret each one
gets, and the NetworkPolicy of a Job that must reach the bubble-manager service.

A Job runs with the same hardening as a bubble (non-root, read-only root, no privilege escalation,
no capabilities, seccomp, no service-account token, no DNS, no host access). The bubbles namespace
denies all traffic by default; a Job that talks to the service (the extract fill downloads, the
snapshot's collect Job uploads) gets a policy of its own, created before the Job and deleted after
it, that opens egress to the service pods on the service port only (by pod and namespace labels;
the Job is given the service's cluster IP, since it has no DNS) and no ingress at all. What a Job
needs from outside (a one-time transfer token, the hub's public key) comes in a secret made for
that Job alone, mounted read-only, deleted by the service as soon as the Job ends
(`kube_runner.StudyJobRunner`); an owner reference to the Job is the backstop should the service
die first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Mapping, Sequence

from kubernetes_asyncio.client import models as k8s

from .kube_objects import (DNS_NAME, STUDY_LABEL, KubeOptions, claim_volume, container_security, namespace_selector,
                           no_dns, pod_security, scratch_volume, short_name, extract_claim_name, shared_claim_name,
                           workspace_claim_name)
from .spec import LABEL_PREFIX, member_dir_name

JOB_KIND_LABEL = f"{LABEL_PREFIX}/job"
JOB_NAME_LABEL = f"{LABEL_PREFIX}/job-name"
JOB_KINDS = ("extract", "snapshot")
SECRET_MOUNT = PurePosixPath("/run/secrets/bubble-manager")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@dataclass(frozen=True)
class JobMount:
    claim: str
    path: PurePosixPath
    read_only: bool


@dataclass(frozen=True)
class ServicePeer:
    """The bubble-manager service pods, as a Job's NetworkPolicy names them: the only peer it may reach."""

    namespace: str
    pod_labels: Mapping[str, str]
    port: int

    def __post_init__(self) -> None:
        if not DNS_NAME.match(self.namespace) or len(self.namespace) > 63:
            raise ValueError(f"service namespace {self.namespace!r} is not a Kubernetes namespace name")
        if not self.pod_labels:
            raise ValueError("the service pod labels are empty: a policy peer without labels would select every pod "
                             "of the namespace; give the labels the chart puts on the service pods")
        if not 1 <= self.port <= 65535 or self.port == 53:
            raise ValueError(f"service port {self.port} is not a usable TCP port (1-65535, not 53)")


@dataclass(frozen=True)
class JobResources:
    cpu: str = "1"
    memory: str = "2Gi"
    deadline_seconds: int = 6 * 3600
    ttl_seconds: int = 3600


def job_name(kind: str, slug: str, run_id: str) -> str:
    if kind not in JOB_KINDS:
        raise ValueError(f"job kind {kind!r} is not one of {', '.join(JOB_KINDS)}")
    if not re.fullmatch(r"[a-z0-9]{1,12}", run_id):
        raise ValueError(f"run id {run_id!r} must be 1-12 lowercase letters or digits")
    return short_name(kind, slug, run_id)


def job_labels(options: KubeOptions, kind: str, slug: str) -> dict[str, str]:
    return {STUDY_LABEL: slug, JOB_KIND_LABEL: kind, "app.kubernetes.io/component": f"{kind}-job",
            "app.kubernetes.io/part-of": "bubble-manager", **options.extra_labels}


def job_secret(options: KubeOptions, *, name: str, kind: str, slug: str, data: Mapping[str, str]) -> k8s.V1Secret:
    """The one secret a Job may read: immutable, labelled with its study and Job."""
    if not data:
        raise ValueError("a job secret must hold at least one entry; leave the secret out when the Job needs none")
    bad = [key for key in data if not SECRET_KEY.match(key)]
    if bad:
        raise ValueError(f"secret keys {bad} are not valid file names (letters, digits, '-', '_', '.')")
    return k8s.V1Secret(
        api_version="v1", kind="Secret", type="Opaque", immutable=True,
        metadata=k8s.V1ObjectMeta(name=name, namespace=options.namespace,
                                  labels={**job_labels(options, kind, slug), f"{LABEL_PREFIX}/short-lived": "true"}),
        string_data=dict(sorted(data.items())))


def study_job(options: KubeOptions, *, kind: str, slug: str, name: str, command: Sequence[str],
              mounts: Sequence[JobMount], secret_name: str | None, env: Mapping[str, str] | None = None,
              resources: JobResources = JobResources(), image: str | None = None) -> k8s.V1Job:
    """A one-shot, hardened Job for `slug`: never retried, ended by its deadline, kept `ttl_seconds` for its logs."""
    if not command:
        raise ValueError(f"the {kind} job needs a command")
    volumes = [scratch_volume("tmp", options.tmp_size)]
    volume_mounts = [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")]
    for index, mount in enumerate(mounts):
        volumes.append(claim_volume(f"data-{index}", mount.claim, read_only=mount.read_only))
        volume_mounts.append(k8s.V1VolumeMount(name=f"data-{index}", mount_path=str(mount.path),
                                               read_only=mount.read_only))
    if secret_name:
        volumes.append(k8s.V1Volume(name="job-secret", secret=k8s.V1SecretVolumeSource(
            secret_name=secret_name, default_mode=0o400)))
        volume_mounts.append(k8s.V1VolumeMount(name="job-secret", mount_path=str(SECRET_MOUNT), read_only=True))
    environment = {"BUBBLE_STUDY": slug, "BUBBLE_JOB": kind, **(env or {})}
    if secret_name:
        environment["BUBBLE_JOB_SECRETS"] = str(SECRET_MOUNT)
    dns_policy, dns_config = no_dns()
    limits = {"cpu": resources.cpu, "memory": resources.memory}
    labels = job_labels(options, kind, slug)
    pod_labels = {**labels, JOB_NAME_LABEL: name}
    container = k8s.V1Container(
        name=kind, image=image or options.image, image_pull_policy=options.image_pull_policy, command=list(command),
        env=[k8s.V1EnvVar(name=key, value=str(value)) for key, value in sorted(environment.items())],
        resources=k8s.V1ResourceRequirements(requests=dict(limits), limits=dict(limits)),
        security_context=container_security(options), volume_mounts=volume_mounts)
    return k8s.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=options.namespace, labels=labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0, active_deadline_seconds=resources.deadline_seconds,
            ttl_seconds_after_finished=resources.ttl_seconds,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=pod_labels),
                spec=k8s.V1PodSpec(
                    containers=[container], restart_policy="Never", service_account_name=options.service_account,
                    automount_service_account_token=False, enable_service_links=False, host_network=False,
                    host_pid=False, host_ipc=False, security_context=pod_security(options),
                    dns_policy=dns_policy, dns_config=dns_config, volumes=volumes))))


def extract_job(options: KubeOptions, *, slug: str, name: str, command: Sequence[str], manifest_sha256: str,
                secret_name: str | None, member: str | None = None, source_claim: str | None = None,
                resources: JobResources = JobResources(), image: str | None = None,
                env: Mapping[str, str] | None = None) -> k8s.V1Job:
    """Fill a study's extract claim (or one member's copy); the command must check the manifest it wrote
    has `BUBBLE_EXPECTED_MANIFEST_SHA256` and fail otherwise. `source_claim`, if given, is mounted
    read-only at /source (the warehouse, or the shared extract a per-member copy is made from); `env`
    adds variables (the transfer URL of `kube_fill`), never overriding the ones set here."""
    target = extract_claim_name(slug, member if options.extract_mode == "per-member" else None)
    mounts = [JobMount(target, PurePosixPath("/extract"), read_only=False)]
    if source_claim:
        mounts.append(JobMount(source_claim, PurePosixPath("/source"), read_only=True))
    return study_job(options, kind="extract", slug=slug, name=name, command=command, mounts=mounts,
                     secret_name=secret_name, env={**(env or {}), "BUBBLE_EXPECTED_MANIFEST_SHA256": manifest_sha256,
                                                   "BUBBLE_EXTRACT_DIR": "/extract"},
                     resources=resources, image=image)


def snapshot_job(options: KubeOptions, *, slug: str, name: str, command: Sequence[str], members: Sequence[str],
                 shared: bool, secret_name: str | None, resources: JobResources = JobResources(),
                 image: str | None = None, env: Mapping[str, str] | None = None) -> k8s.V1Job:
    """Mount the given members' workspaces and (if `shared`) the shared folder, all read-only, under
    /snapshot/workspaces/<member folder> and /snapshot/shared, for the collect command to upload to
    the service (where the archive is made: the hub's private key never comes here)."""
    if not members and not shared:
        raise ValueError(f"study {slug} has no workspace or shared claim: nothing to snapshot")
    mounts = [JobMount(shared_claim_name(slug), PurePosixPath("/snapshot/shared"), read_only=True)] if shared else []
    for member in members:
        mounts.append(JobMount(workspace_claim_name(slug, member),
                               PurePosixPath("/snapshot/workspaces") / member_dir_name(member), read_only=True))
    return study_job(options, kind="snapshot", slug=slug, name=name, command=command, mounts=mounts,
                     secret_name=secret_name, env={**(env or {}), "BUBBLE_SNAPSHOT_DIR": "/snapshot"},
                     resources=resources, image=image)


def job_network_policy_name(job_name_: str) -> str:
    return short_name(job_name_, "net")


def job_network_policy(options: KubeOptions, *, job_name_: str, kind: str, slug: str,
                       service: ServicePeer) -> k8s.V1NetworkPolicy:
    """Only this Job's pods: egress to TCP `service.port` of the service pods, no ingress at all."""
    peer = k8s.V1NetworkPolicyPeer(pod_selector=k8s.V1LabelSelector(match_labels=dict(service.pod_labels)),
                                   namespace_selector=namespace_selector(service.namespace))
    return k8s.V1NetworkPolicy(
        api_version="networking.k8s.io/v1", kind="NetworkPolicy",
        metadata=k8s.V1ObjectMeta(name=job_network_policy_name(job_name_), namespace=options.namespace, labels={
            STUDY_LABEL: slug, JOB_KIND_LABEL: kind, JOB_NAME_LABEL: job_name_,
            "app.kubernetes.io/component": "job-network-policy", "app.kubernetes.io/part-of": "bubble-manager",
            **options.extra_labels}),
        spec=k8s.V1NetworkPolicySpec(
            pod_selector=k8s.V1LabelSelector(match_labels={JOB_NAME_LABEL: job_name_}),
            policy_types=["Ingress", "Egress"], ingress=[],
            egress=[k8s.V1NetworkPolicyEgressRule(
                to=[peer], ports=[k8s.V1NetworkPolicyPort(protocol="TCP", port=service.port)])]))


def secret_owner_patch(job_name_: str, job_uid: str) -> dict:
    """Make the Job own its secret, so that deleting the Job (TTL, or by hand) also deletes the secret."""
    return {"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name_,
                                              "uid": job_uid, "blockOwnerDeletion": True, "controller": False}]}}
