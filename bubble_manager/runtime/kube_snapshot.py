"""Bringing a study's workspaces to the hub before it is archived, on Kubernetes.

Workspaces and the shared folder are claims of the bubbles namespace; the archive is made in the
service (the hub's private key, the study's keys and the store never leave the release
namespace). `collect_study_workspaces(context, slug)`:

1. finds which of the study's claims exist (a member who never opened a bubble has none), for its
   members and its former members (`workspace_transfer.members_ever`);
2. issues a one-time transfer token (purpose `workspace-upload`) bound to the study and the Job;
3. runs the collect Job (`python -m bubble_manager.runtime.kube_collect` in the bubble image), the
   claims mounted read-only, behind its own NetworkPolicy (egress to the service port only), its
   secret holding the token alone; secret and policy are deleted when it ends;
4. succeeds only if the service recorded the whole upload as received and installed under
   `studies/<slug>/workspaces` and `shared` (`snapshot.workspaces-received`), then audits
   `snapshot.workspaces-collected` with the names of the claims it took (a closing deletes only
   those, `kube_volumes`).

`collect_workspaces(context, slug)` is the hook for the closing path, right before the snapshot
and after the study's bubbles have stopped (read-write-once claims cannot be mounted twice): a
no-op unless `c.KubeStudyJobs.enabled`. Like `publish_extract`, it must run in a worker thread.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from ..store import load_study
from . import transfer_tokens
from .workspace_transfer import members_ever
from .kube_activation import (KubeApis, KubeStudyJobs, in_cluster_apis, kube_options, run_site_job, service_peer,
                              transfer_url)
from .kube_checks import UnsafeObject, job_policy_problems, pod_problems, require_safe
from .kube_jobs import JobResources, job_name, job_network_policy, job_secret, snapshot_job
from .kube_objects import shared_claim_name, study_claim_selector, to_manifest, workspace_claim_name
from .kube_runner import JobFailed, StudyJobRunner

COLLECT_COMMAND = ("python", "-m", "bubble_manager.runtime.kube_collect")
COLLECTABLE_STATES = ("active", "expired", "revoked")


class CollectError(RuntimeError):
    """The workspaces were not brought to the hub; do not archive the study yet."""


@dataclass
class CollectReport:
    study: str
    job: str | None
    members: list[str] = field(default_factory=list)
    shared: bool = False
    received: dict[str, Any] = field(default_factory=dict)


def upload_url(settings: KubeStudyJobs, slug: str) -> str:
    extract_url = transfer_url(settings, slug)  # checks the service is named by IP on its policy port
    return urljoin(extract_url, f"../workspaces/{slug}")


async def _existing_claims(apis: KubeApis, namespace: str, slug: str, members: tuple[str, ...]
                           ) -> tuple[list[str], bool]:
    """Which of `members` have a workspace claim, and whether the study has a shared claim."""
    listed = await apis.core.list_namespaced_persistent_volume_claim(namespace=namespace,
                                                                     label_selector=study_claim_selector(slug))
    names = {item.metadata.name for item in listed.items or []}
    return [member for member in members if workspace_claim_name(slug, member) in names], \
        shared_claim_name(slug) in names


async def collect_study_workspaces(context: Any, slug: str, *, actor: str = "system", apis: KubeApis | None = None,
                                   settings: KubeStudyJobs | None = None, timeout: float | None = None
                                   ) -> CollectReport:
    """Upload the study's workspace and shared claims into `studies/<slug>/`; CollectError if not done."""
    from kubernetes_asyncio.client.rest import ApiException

    settings = settings or KubeStudyJobs(config=context.settings.config)
    options, peer, url = kube_options(settings), service_peer(settings), upload_url(settings, slug)
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None or study.state.value not in COLLECTABLE_STATES:
        raise CollectError(f"study {slug} is not active, expired or revoked: its workspaces are not collected")
    own_apis = apis is None
    apis = apis or in_cluster_apis()
    try:
        members, shared = await _existing_claims(apis, settings.namespace, slug, members_ever(context, study))
        report = CollectReport(slug, None, members, shared)
        if not members and not shared:
            context.audit.record(actor=actor, action="snapshot.workspaces-collected", study=slug,
                                 detail={"claims": 0, "claim_names": [], "reason": "no bubble was ever opened"})
            return report
        report.job = job_name("snapshot", slug, secrets.token_hex(3))
        token = transfer_tokens.issue(context, study=slug, purpose=transfer_tokens.WORKSPACE_UPLOAD, job=report.job,
                                      actor=actor, ttl_seconds=settings.token_ttl_seconds)
        try:
            job = snapshot_job(options, slug=slug, name=report.job, command=COLLECT_COMMAND, members=members,
                               shared=shared, secret_name=report.job, env={"BUBBLE_TRANSFER_URL": url},
                               resources=JobResources(cpu=settings.job_cpu, memory=settings.job_memory,
                                                      deadline_seconds=settings.job_deadline_seconds),
                               image=settings.image)
            policy = job_network_policy(options, job_name_=report.job, kind="snapshot", slug=slug, service=peer)
            template = to_manifest(job.spec.template)
            template["spec"]["activeDeadlineSeconds"] = job.spec.active_deadline_seconds
            claims = {workspace_claim_name(slug, m) for m in members} | ({shared_claim_name(slug)} if shared else set())
            require_safe("Job", report.job, pod_problems(template, expected_claims=claims))
            require_safe("NetworkPolicy", policy.metadata.name, job_policy_problems(
                to_manifest(policy), service_namespace=peer.namespace, service_labels=peer.pod_labels,
                service_port=peer.port))
            runner = StudyJobRunner(apis.core, apis.batch, settings.namespace, poll_seconds=settings.poll_seconds,
                                    network_api=apis.networking)
            await runner.run(job, job_secret(options, name=report.job, kind="snapshot", slug=slug,
                                             data={"transfer-token": token.secret}),
                             timeout=timeout or settings.job_deadline_seconds + 120, policy=policy)
            if (transfer_tokens.token_state(context, token.token_id) or {}).get("outcome") != "completed":
                raise JobFailed(f"job {report.job} ended without the service having received the workspaces")
        except (JobFailed, UnsafeObject, ApiException, ValueError, OSError, asyncio.TimeoutError) as error:
            context.audit.record(actor=actor, action="snapshot.workspaces-collect-failed", study=slug, detail={
                "job": report.job, "reason": type(error).__name__})
            raise CollectError(f"the workspaces of study {slug} were not collected: {error}; do not archive it "
                               "yet") from error
        finally:
            transfer_tokens.revoke_unused(context, token.token_id, actor=actor, reason="the Job ended without using it")
    finally:
        if own_apis:
            await apis.core.api_client.close()
    received = [e.detail for e in context.audit.entries(study=slug, action="snapshot.workspaces-received", limit=None)
                if e.detail.get("token") == token.token_id]
    report.received = {key: value for key, value in received[-1].items() if key in ("files", "folders", "bytes")}
    context.audit.record(actor=actor, action="snapshot.workspaces-collected", study=slug, detail={
        "job": report.job, "claims": len(claims), "claim_names": sorted(claims), **report.received})
    return report


def collect_workspaces(context: Any, slug: str, *, actor: str = "system") -> CollectReport | None:
    """The hook before a study's snapshot: collect its claims on Kubernetes sites, else nothing."""
    return run_site_job(context, "collect_workspaces",
                        lambda settings: collect_study_workspaces(context, slug, actor=actor, settings=settings))
