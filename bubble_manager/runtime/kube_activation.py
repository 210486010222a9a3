"""Filling a study's extract volume on Kubernetes: the step between "the hub built and verified the
extract" and "a bubble may mount it".

The hub builds and signs the extract on its own home volume; bubbles run in another namespace and
can only mount claims of theirs. `fill_study_extract(context, slug)` bridges the two:

1. checks the extract on the hub (`extract verify`, this study, its approved request);
2. per extract claim (one per study, or one per member in `per-member` mode): creates the claim if
   needed and removes its "holds manifest X" annotation, so a half-filled volume is never mounted;
3. issues a one-time transfer token bound to the study, the Job and this manifest version;
4. runs the extract-fill Job (`python -m bubble_manager.runtime.kube_fill` in the bubble image) with
   `kube_runner.StudyJobRunner`: its NetworkPolicy (egress to the service pods on the service port,
   nothing else) first, then its secret (the token and the hub's public key), then the Job; the
   secret and the policy are deleted when it ends, whatever the end;
5. marks the claim with the manifest's sha256 only once the Job succeeded and the service recorded
   that it sent this Job's token the whole extract (the spawner refuses any other claim), revokes
   the token if the Job never used it, and audits the outcome.

`publish_extract(context, slug)` is the hook for activation and rebuilds: a no-op unless the site
runs the Kubernetes profile (`c.KubeStudyJobs.enabled`), else it runs the above and waits. The Job
downloads from this very service, so it must be called from a worker thread, never on the
service's event loop (it refuses to).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urljoin, urlparse

from traitlets import Bool, Dict, Enum, Float, Integer, Unicode
from traitlets.config import Configurable

from ..store import load_study
from . import extract_gate, transfer_tokens
from .kube_checks import UnsafeObject, job_policy_problems, pod_problems, require_safe
from .kube_jobs import (JobResources, ServicePeer, extract_job, job_name, job_network_policy, job_secret)
from .kube_objects import MANIFEST_ANNOTATION, KubeOptions, extract_claim, to_manifest
from .kube_runner import JobFailed, StudyJobRunner
from .spec import StudyPaths

FILL_COMMAND = ("python", "-m", "bubble_manager.runtime.kube_fill")
FILLABLE_STATES = ("approved", "active")


T = TypeVar("T")


class KubeStudyJobs(Configurable):
    """Where and how the service runs study Jobs in the bubbles namespace (the chart sets all of it)."""

    enabled = Bool(False, help="The site runs the Kubernetes profile: after an extract is built and verified, "
                               "`publish_extract` fills the study's extract volume in the bubbles namespace."
                   ).tag(config=True)
    namespace = Unicode("bubbles", help="Namespace of bubbles and study Jobs.").tag(config=True)
    release_namespace = Unicode("", help="Namespace of the hub, proxy and service pods (the Job's only peer)."
                                ).tag(config=True)
    hub_pod_labels = Dict({"app.kubernetes.io/component": "hub"}, help="Labels of the hub pods (as the spawner's)."
                          ).tag(config=True)
    proxy_pod_labels = Dict({"app.kubernetes.io/component": "proxy"}, help="Labels of the proxy pods (as the "
                            "spawner's).").tag(config=True)
    service_pod_labels = Dict({"app.kubernetes.io/component": "service"}, help="Labels that select exactly the "
                              "bubble-manager service pods: an extract Job's only egress.").tag(config=True)
    service_port = Integer(10101, help="Port of the service pods (Service port and target port are both this value)."
                           ).tag(config=True)
    service_url = Unicode("", help="The service as a Job reaches it: its Service's cluster IP (Jobs have no DNS), "
                                   "port and prefix, e.g. http://10.96.0.20:10101/services/bubble-manager/."
                          ).tag(config=True)
    image = Unicode("", help="Image of the extract-fill Job (the bubble image: it carries kube_fill)."
                    ).tag(config=True)
    image_pull_policy = Unicode("IfNotPresent", help="Pull policy of the Job image.").tag(config=True)
    uid = Integer(1000, help="Non-root uid of Job processes (the bubbles' uid: the files they write are the "
                             "bubbles' to read).").tag(config=True)
    gid = Integer(100, help="Non-root gid of Job processes.").tag(config=True)
    service_account = Unicode("bubble", help="Service account of Job pods (no role binding, no token)."
                              ).tag(config=True)
    extract_mode = Enum(["shared", "per-member"], "shared", help="As KubeBubbleSpawner.extract_mode: one claim per "
                        "study, or one per member (each filled by its own Job).").tag(config=True)
    extract_storage_class = Unicode(None, allow_none=True, help="Storage class of extract claims.").tag(config=True)
    extract_size = Unicode("10Gi", help="Size of each extract claim: room for two copies, since a refill writes "
                                        "the new extract before it replaces the old one.").tag(config=True)
    extra_labels = Dict({}, help="Labels added to every Job, secret, policy and claim (the chart's instance "
                                 "labels).").tag(config=True)
    job_cpu = Unicode("500m", help="CPU request and limit of the extract-fill Job.").tag(config=True)
    job_memory = Unicode("256Mi", help="Memory request and limit of the extract-fill Job (it streams).").tag(config=True)
    job_deadline_seconds = Integer(3600, help="activeDeadlineSeconds of the extract-fill Job.").tag(config=True)
    token_ttl_seconds = Integer(1800, help="How long a Job's transfer token stays valid (scheduling and image "
                                           "pull included); it is single-use either way.").tag(config=True)
    poll_seconds = Float(2.0, help="How often the service reads a running Job's status.").tag(config=True)


class ExtractFillError(RuntimeError):
    """The extract volume was not filled (and is not marked as holding the extract)."""


@dataclass(frozen=True)
class KubeApis:
    """The three API groups a fill needs (kubernetes_asyncio clients, or the tests' recording fake)."""

    core: Any
    batch: Any
    networking: Any


@dataclass(frozen=True)
class FillTarget:
    member: str | None
    claim: str
    job: str


@dataclass
class FillReport:
    study: str
    manifest_sha256: str
    targets: list[FillTarget] = field(default_factory=list)


# --- pure parts ----------------------------------------------------------------------------------

def kube_options(settings: KubeStudyJobs) -> KubeOptions:
    if not settings.release_namespace:
        raise ValueError("c.KubeStudyJobs.release_namespace is empty: set the namespace of the hub and service pods")
    if not settings.image:
        raise ValueError("c.KubeStudyJobs.image is empty: set the bubble image (it runs the extract-fill Job)")
    return KubeOptions(namespace=settings.namespace, hub_namespace=settings.release_namespace,
                       hub_pod_labels=dict(settings.hub_pod_labels), proxy_pod_labels=dict(settings.proxy_pod_labels),
                       image=settings.image, image_pull_policy=settings.image_pull_policy, uid=settings.uid,
                       gid=settings.gid, service_account=settings.service_account, extract_mode=settings.extract_mode,
                       extract_storage_class=settings.extract_storage_class, extract_size=settings.extract_size,
                       extra_labels={key: str(value) for key, value in settings.extra_labels.items()})


def service_peer(settings: KubeStudyJobs) -> ServicePeer:
    return ServicePeer(settings.release_namespace, dict(settings.service_pod_labels), settings.service_port)


def transfer_url(settings: KubeStudyJobs, slug: str) -> str:
    """Where the Job downloads: the service by IP (no DNS in the bubbles namespace), on the port its policy opens."""
    parsed = urlparse(settings.service_url)
    try:
        ipaddress.ip_address(parsed.hostname or "")
    except ValueError:
        raise ValueError(f"c.KubeStudyJobs.service_url is {settings.service_url!r}: Jobs cannot resolve names, give "
                         "the service's cluster IP, e.g. http://10.96.0.20:10101/services/bubble-manager/ (the "
                         "chart reads it from <SERVICE>_SERVICE_HOST)") from None
    if parsed.scheme != "http" or parsed.port != settings.service_port:
        raise ValueError(f"c.KubeStudyJobs.service_url {settings.service_url!r} must be http on port "
                         f"{settings.service_port}, the only port the Job's NetworkPolicy opens")
    base = settings.service_url if settings.service_url.endswith("/") else settings.service_url + "/"
    return urljoin(base, f"transfer/v1/extracts/{slug}")


def fill_targets(settings: KubeStudyJobs, slug: str, members: tuple[str, ...] | list[str], run_id: str
                 ) -> list[FillTarget]:
    """One Job per claim: the study's claim, or each member's copy."""
    options = kube_options(settings)
    owners: list[str | None] = list(members) if settings.extract_mode == "per-member" else [None]
    if not owners:
        raise ValueError(f"study {slug} has no members: no extract copy to fill")
    return [FillTarget(member, extract_claim(options, slug, member).metadata.name,
                       job_name("extract", slug, f"{run_id}{index}")) for index, member in enumerate(owners)]


# --- the adapter ---------------------------------------------------------------------------------

async def fill_study_extract(context: Any, slug: str, *, actor: str = "system", apis: KubeApis | None = None,
                             settings: KubeStudyJobs | None = None, timeout: float | None = None) -> FillReport:
    """Fill the study's extract claim(s) from the hub's verified extract; ExtractFillError if not done."""
    settings = settings or KubeStudyJobs(config=context.settings.config)
    options, peer, url = kube_options(settings), service_peer(settings), transfer_url(settings, slug)
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None or study.state.value not in FILLABLE_STATES:
        raise ExtractFillError(f"study {slug} is not approved or active: its extract volume is not filled")
    paths = StudyPaths(context.home, slug)
    problems, _ = extract_gate.extract_problems(paths, context.verifier(), study)
    if problems:
        context.audit.record(actor=actor, action="extract.volume-fill-failed", study=slug,
                             detail={"reason": "hub-extract-invalid", "problems": len(problems)})
        raise ExtractFillError(f"the extract of {slug} on the hub does not verify ({'; '.join(problems)}); rebuild "
                               "it (`bubble-manager extract build`) before its volume can be filled")
    manifest_sha256 = extract_gate.manifest_sha256(paths)
    public_key = (context.home / "keys" / "hub-signing.pub").read_text()
    report = FillReport(slug, manifest_sha256, fill_targets(settings, slug, study.members, secrets.token_hex(3)))
    own_apis = apis is None
    apis = apis or in_cluster_apis()
    runner = StudyJobRunner(apis.core, apis.batch, settings.namespace, poll_seconds=settings.poll_seconds,
                            network_api=apis.networking)
    try:
        for target in report.targets:
            await _fill_one(context, settings, options, peer, runner, apis, target, slug=slug, url=url, actor=actor,
                            manifest_sha256=manifest_sha256, public_key=public_key,
                            timeout=timeout or settings.job_deadline_seconds + 120)
    finally:
        if own_apis:
            await apis.core.api_client.close()
    context.audit.record(actor=actor, action="extract.volume-filled", study=slug, detail={
        "manifest_sha256": manifest_sha256, "claims": [t.claim for t in report.targets],
        "jobs": [t.job for t in report.targets], "namespace": settings.namespace})
    return report


async def _fill_one(context: Any, settings: KubeStudyJobs, options: KubeOptions, peer: ServicePeer,
                    runner: StudyJobRunner, apis: KubeApis, target: FillTarget, *, slug: str, url: str, actor: str,
                    manifest_sha256: str, public_key: str, timeout: float) -> None:
    from kubernetes_asyncio.client.rest import ApiException

    claim = extract_claim(options, slug, target.member)
    try:
        await apis.core.create_namespaced_persistent_volume_claim(namespace=settings.namespace, body=claim)
    except ApiException as error:
        if error.status != 409:
            raise
    await apis.core.patch_namespaced_persistent_volume_claim(  # unmarked until this Job succeeded
        name=target.claim, namespace=settings.namespace, body={"metadata": {"annotations": {MANIFEST_ANNOTATION: None}}})
    token = transfer_tokens.issue(context, study=slug, purpose=transfer_tokens.EXTRACT_DOWNLOAD, job=target.job,
                                  actor=actor, ttl_seconds=settings.token_ttl_seconds, manifest_sha256=manifest_sha256)
    try:
        secret = job_secret(options, name=target.job, kind="extract", slug=slug,
                            data={"transfer-token": token.secret, "hub-signing.pub": public_key})
        job = extract_job(options, slug=slug, name=target.job, command=FILL_COMMAND, manifest_sha256=manifest_sha256,
                          secret_name=target.job, member=target.member, env={"BUBBLE_TRANSFER_URL": url},
                          resources=JobResources(cpu=settings.job_cpu, memory=settings.job_memory,
                                                 deadline_seconds=settings.job_deadline_seconds),
                          image=settings.image)
        policy = job_network_policy(options, job_name_=target.job, kind="extract", slug=slug, service=peer)
        _check(job, policy, peer, target.claim)
        await runner.run(job, secret, timeout=timeout, policy=policy)
        outcome = (transfer_tokens.token_state(context, token.token_id) or {}).get("outcome")
        if outcome != "completed":  # exit 0 is not enough: the service must have sent this Job the extract
            raise JobFailed(f"job {target.job} ended without the service having sent it the extract ({outcome})")
        await runner.mark_extract([target.claim], manifest_sha256)
    except (JobFailed, UnsafeObject, ApiException, ValueError, OSError, asyncio.TimeoutError) as error:
        context.audit.record(actor=actor, action="extract.volume-fill-failed", study=slug, detail={
            "claim": target.claim, "job": target.job, "reason": type(error).__name__})
        raise ExtractFillError(f"the extract volume {target.claim} of study {slug} was not filled: {error}") from error
    finally:
        transfer_tokens.revoke_unused(context, token.token_id, actor=actor, reason="the Job ended without using it")


def _check(job: Any, policy: Any, peer: ServicePeer, claim: str) -> None:
    """The final objects, re-checked as the spawner re-checks a bubble's, before anything is sent."""
    template = to_manifest(job.spec.template)
    template["spec"]["activeDeadlineSeconds"] = job.spec.active_deadline_seconds
    require_safe("Job", job.metadata.name, pod_problems(template, expected_claims={claim}))
    require_safe("NetworkPolicy", policy.metadata.name, job_policy_problems(
        to_manifest(policy), service_namespace=peer.namespace, service_labels=peer.pod_labels,
        service_port=peer.port))


def in_cluster_apis() -> KubeApis:
    """Clients with the pod's own service account (the chart's `<release>-service` account)."""
    from kubernetes_asyncio import client, config

    config.load_incluster_config()
    api = client.ApiClient()
    return KubeApis(client.CoreV1Api(api), client.BatchV1Api(api), client.NetworkingV1Api(api))


def run_site_job(context: Any, what: str, make: Callable[[KubeStudyJobs], Awaitable[T]]) -> T | None:
    """Run a Kubernetes step to its end from a worker thread; nothing unless the site runs Kubernetes
    bubbles (`c.KubeStudyJobs.enabled`). The steps wait for Jobs that talk to this service, so they
    never run on the service's event loop."""
    settings = KubeStudyJobs(config=context.settings.config)
    if not settings.enabled:
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make(settings))
    raise RuntimeError(f"{what} waits for the Kubernetes API and Jobs: call it from a worker thread "
                       "(run_in_executor), never on the service's event loop")


def publish_extract(context: Any, slug: str, *, actor: str = "system") -> FillReport | None:
    """The hook after an extract was built and verified: fill its volume on Kubernetes sites, else nothing."""
    return run_site_job(context, "publish_extract",
                        lambda settings: fill_study_extract(context, slug, actor=actor, settings=settings))
