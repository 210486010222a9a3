"""Deleting a closed study's volume claims on Kubernetes, once its final archive is verified.

Locally, the closing path's last step removes `studies/<slug>/` from the hub. On Kubernetes the
study also lives in claims of the bubbles namespace (its extract, each member's workspace, the
shared folder), which the spawner and the extract fills keep on purpose. `remove_study_volumes`
is that step for the claims:

1. the study must be archived (the closing path's `archive` step ran), else nothing is touched;
2. it lists the claims labelled with the study (`bubble-manager.io/study`, part of bubble-manager);
3. `plan_removal` (pure) decides claim by claim: extract claims go (the extract is the hub's and
   is in the archive); a workspace or shared claim goes only if the final archive holds it, that
   is if the workspace collect that completed after the workspaces were locked and before that
   archive was made took it (`collected_claims`, read from the audit log: an archive taken
   without a collect, say by hand, holds the hub's copy, not the claims); any other claim (one
   that collect did not take, or a volume kind we did not make) is kept and reported for an
   administrator;
4. it deletes the claims to remove (a claim already gone counts as removed) and audits
   `lifecycle.volumes-removed` with the names removed and kept, or `lifecycle.volumes-remove-failed`.

Deleting a claim deletes its data only if the storage class's reclaim policy is `Delete`
(docs/kubernetes.md). A claim a pod still mounts is removed by the cluster once the pod is gone
(pvc-protection); the closing path stopped the study's bubbles long before.

`remove_volumes(context, slug)` is the hook the closing path calls: a no-op unless
`c.KubeStudyJobs.enabled`; like the other hooks it must run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..store import load_study
from .kube_activation import KubeApis, KubeStudyJobs, in_cluster_apis, run_site_job
from .kube_objects import STUDY_LABEL, VOLUME_LABEL, study_claim_selector, to_manifest

PART_OF = ("app.kubernetes.io/part-of", "bubble-manager")
REMOVABLE_STATES = ("archived",)

log = logging.getLogger(__name__)


class VolumeRemovalError(RuntimeError):
    """The study's claims were not (all) removed; the closing step is tried again on the next tick."""


@dataclass(frozen=True)
class KeptClaim:
    claim: str
    reason: str


@dataclass
class RemovalPlan:
    remove: list[str] = field(default_factory=list)
    keep: list[KeptClaim] = field(default_factory=list)


@dataclass
class VolumeRemoval:
    study: str
    removed: list[str] = field(default_factory=list)
    kept: list[KeptClaim] = field(default_factory=list)


# --- pure parts ----------------------------------------------------------------------------------

def collected_claims(entries: Iterable[Any], archive_number: int) -> frozenset[str]:
    """The claims the workspace collect took, if it completed after the workspaces were last locked and
    before archive `archive_number` was written (or adopted), from the study's audit entries in order;
    none otherwise."""
    locked, taken = False, frozenset()
    for entry in entries:
        if entry.action == "lifecycle.lock-workspaces":
            locked, taken = True, frozenset()
        elif entry.action == "snapshot.workspaces-collected" and locked:
            taken = frozenset(name for name in entry.detail.get("claim_names") or [] if isinstance(name, str))
        elif entry.action in ("archive.snapshot", "archive.adopted") and entry.detail.get("number") == archive_number:
            return taken
    return frozenset()


def plan_removal(claims: Iterable[Mapping[str, Any]], slug: str, in_archive: Iterable[str]) -> RemovalPlan:
    """Which of these claim manifests go and which stay (with the reason), for a closed study whose verified
    final archive holds the workspace and shared claims `in_archive` (`collected_claims`)."""
    in_archive = set(in_archive)
    plan = RemovalPlan()
    for claim in claims:
        metadata = claim.get("metadata") or {}
        name, labels = metadata.get("name") or "", metadata.get("labels") or {}
        if labels.get(STUDY_LABEL) != slug or labels.get(PART_OF[0]) != PART_OF[1]:
            plan.keep.append(KeptClaim(name, "not labelled as a claim of this study"))
        elif labels.get(VOLUME_LABEL) == "extract":
            plan.remove.append(name)
        elif labels.get(VOLUME_LABEL) not in ("workspace", "shared"):
            plan.keep.append(KeptClaim(name, f"unknown volume kind {labels.get(VOLUME_LABEL)!r}"))
        elif name not in in_archive:
            plan.keep.append(KeptClaim(name, "no workspace collect before the final archive took it"))
        else:
            plan.remove.append(name)
    plan.remove.sort()
    plan.keep.sort(key=lambda kept: kept.claim)
    return plan


# --- the adapter ---------------------------------------------------------------------------------

async def remove_study_volumes(context: Any, slug: str, *, archive_number: int | None, actor: str = "system",
                               apis: KubeApis | None = None, settings: KubeStudyJobs | None = None
                               ) -> VolumeRemoval:
    """Delete the claims of archived study `slug` that `plan_removal` lets go, `archive_number` being its
    verified final archive (None: it had none); VolumeRemovalError if any stays undeleted for a reason
    other than the plan's."""
    from kubernetes_asyncio.client.rest import ApiException

    settings = settings or KubeStudyJobs(config=context.settings.config)
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None or study.state.value not in REMOVABLE_STATES:
        state = study.state.value if study else "unknown"
        context.audit.record(actor=actor, action="lifecycle.volumes-remove-failed", study=slug,
                             detail={"reason": "not-archived", "state": state})
        raise VolumeRemovalError(f"study {slug} is {state}, not archived: its volume claims are kept (they are "
                                 "removed by the closing path, after the final archive is verified)")
    in_archive = collected_claims(context.audit.entries(study=slug, limit=None), archive_number) \
        if archive_number else frozenset()
    report = VolumeRemoval(slug)
    own_apis = apis is None
    apis = apis or in_cluster_apis()
    try:
        listed = await apis.core.list_namespaced_persistent_volume_claim(
            namespace=settings.namespace, label_selector=study_claim_selector(slug))
        plan = plan_removal([to_manifest(item) for item in listed.items or []], slug, in_archive)
        report.kept = plan.keep
        for name in plan.remove:
            try:
                await apis.core.delete_namespaced_persistent_volume_claim(name=name, namespace=settings.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
            report.removed.append(name)
    except (ApiException, OSError, asyncio.TimeoutError) as error:
        context.audit.record(actor=actor, action="lifecycle.volumes-remove-failed", study=slug, detail={
            "reason": type(error).__name__, "removed": report.removed, "namespace": settings.namespace})
        raise VolumeRemovalError(f"the volume claims of study {slug} in namespace {settings.namespace} were not all "
                                 f"removed ({error}); the closing path tries again on the next tick") from error
    finally:
        if own_apis:
            await apis.core.api_client.close()
    for kept in report.kept:
        log.warning("claim %s/%s of closed study %s is kept (%s): an administrator decides what becomes of it",
                    settings.namespace, kept.claim, slug, kept.reason)
    context.audit.record(actor=actor, action="lifecycle.volumes-removed", study=slug, detail={
        "namespace": settings.namespace, "removed": report.removed,
        "kept": [{"claim": kept.claim, "reason": kept.reason} for kept in report.kept]})
    return report


def remove_volumes(context: Any, slug: str, *, archive_number: int | None, actor: str = "system"
                   ) -> VolumeRemoval | None:
    """The closing path's hook once the final archive verified: delete the study's claims on Kubernetes sites."""
    return run_site_job(context, "remove_volumes", lambda settings: remove_study_volumes(
        context, slug, archive_number=archive_number, actor=actor, settings=settings))
