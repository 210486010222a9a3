"""A closed study's claims on Kubernetes: which go once its archive is verified (pure), the deletion against
the recording fake API, and the closing path of the reconciler deleting them (after the archive, never before)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

import pytest

from bubble_manager.runtime import kube_volumes as kv
from bubble_manager.runtime.kube_objects import (KubeOptions, extract_claim, shared_claim, study_claim_selector,
                                                 to_manifest, workspace_claim)
from bubble_manager.store import save_study
from bubble_manager.studies import State

from .conftest import HUB_LABELS, PROXY_LABELS
from .test_activation import SLUG, apis, settings

pytestmark = pytest.mark.kube
OTHER = "copd-cohort"


def per_member(options: KubeOptions) -> KubeOptions:
    return dataclasses.replace(options, extract_mode="per-member")


def study_claims(options: KubeOptions, slug: str = SLUG, members=("alice", "bob")) -> list[dict]:
    """The claims the spawner and the fills leave for a study: extract (shared and per-member), workspaces, shared."""
    claims = [extract_claim(options, slug)] + [extract_claim(per_member(options), slug, m) for m in members]
    claims += [workspace_claim(options, slug, m) for m in members] + [shared_claim(options, slug)]
    return [to_manifest(claim) for claim in claims]


def names(claims: list[dict]) -> list[str]:
    return sorted(claim["metadata"]["name"] for claim in claims)


# --- the plan, as plain data ---------------------------------------------------------------------

def collected(claims: list[dict]) -> set[str]:
    """What a collect takes of these claims: the workspace and shared ones."""
    return {c["metadata"]["name"] for c in claims if not c["metadata"]["name"].startswith("extract-")}


def test_an_archived_study_loses_every_claim_the_archive_holds(options):
    plan = kv.plan_removal(study_claims(options), SLUG, collected(study_claims(options)))
    assert plan.remove == names(study_claims(options)) and plan.keep == []


def test_a_workspace_no_collect_took_is_kept_and_said_why(options):
    claims = study_claims(options, members=("alice", "bob", "carol"))
    carol = to_manifest(workspace_claim(options, SLUG, "carol"))["metadata"]["name"]
    plan = kv.plan_removal(claims, SLUG, collected(claims) - {carol})
    assert plan.keep == [kv.KeptClaim(carol, "no workspace collect before the final archive took it")]
    assert carol not in plan.remove and len(plan.remove) == len(claims) - 1
    assert to_manifest(extract_claim(per_member(options), SLUG, "carol"))["metadata"]["name"] in plan.remove


def test_without_a_collect_before_the_archive_only_the_extract_claims_go(options):
    plan = kv.plan_removal(study_claims(options), SLUG, frozenset())
    assert plan.remove == names([c for c in study_claims(options) if c["metadata"]["name"].startswith("extract-")])
    assert {kept.reason for kept in plan.keep} == {"no workspace collect before the final archive took it"}
    assert len(plan.keep) == 3  # two workspaces and the shared folder


def test_claims_not_labelled_as_the_studys_or_of_an_unknown_kind_are_kept(options):
    stranger = to_manifest(workspace_claim(options, OTHER, "alice"))
    stranger["metadata"]["name"] = to_manifest(workspace_claim(options, SLUG, "alice"))["metadata"]["name"]
    hand_made = to_manifest(shared_claim(options, SLUG))
    del hand_made["metadata"]["labels"]["app.kubernetes.io/part-of"]
    odd = to_manifest(shared_claim(options, SLUG))
    odd["metadata"].update(name="scratch-t2d-statins")
    odd["metadata"]["labels"]["bubble-manager.io/volume"] = "scratch"
    plan = kv.plan_removal([stranger, hand_made, odd], SLUG, collected([stranger, hand_made, odd]))
    assert plan.remove == []
    assert [kept.reason for kept in plan.keep] == ["unknown volume kind 'scratch'",
                                                   "not labelled as a claim of this study",
                                                   "not labelled as a claim of this study"]


def entries(*actions) -> list[SimpleNamespace]:
    """Audit entries in order: an action, (archive action, number) or (collect action, claim names)."""
    found = []
    for seq, item in enumerate(actions, start=1):
        action, value = item if isinstance(item, tuple) else (item, None)
        detail = {"claim_names": value} if action == COLLECT else {"number": value} if value else {}
        found.append(SimpleNamespace(seq=seq, action=action, detail=detail))
    return found


LOCK, COLLECT, TOOK = "lifecycle.lock-workspaces", "snapshot.workspaces-collected", ["shared-x", "workspace-x-a"]


@pytest.mark.parametrize(("trail", "taken"), [
    ((LOCK, (COLLECT, TOOK), ("archive.snapshot", 3)), TOOK),
    ((LOCK, (COLLECT, TOOK), ("archive.adopted", 3)), TOOK),              # a killed snapshot, adopted
    ((LOCK, (COLLECT, ["shared-x"]), (COLLECT, TOOK), ("archive.snapshot", 3)), TOOK),  # the last collect counts
    (((COLLECT, TOOK), LOCK, ("archive.snapshot", 3)), []),               # collected before the lock only
    ((LOCK, ("archive.snapshot", 3), (COLLECT, TOOK)), []),               # the archive was made before it
    ((LOCK, (COLLECT, TOOK), ("archive.snapshot", 2), LOCK, ("archive.snapshot", 3)), []),  # relocked, no collect
    ((LOCK, (COLLECT, TOOK), ("archive.snapshot", 2)), []),               # another archive
    ((LOCK, (COLLECT, None), ("archive.snapshot", 3)), []),               # a collect that names nothing
    ((), []),
])
def test_only_claims_a_collect_took_between_the_lock_and_the_archive_count_as_archived(trail, taken):
    assert kv.collected_claims(entries(*trail), 3) == frozenset(taken)


def test_the_selector_names_the_study_and_the_project():
    assert study_claim_selector(SLUG) == "bubble-manager.io/study=t2d-statins,app.kubernetes.io/part-of=bubble-manager"


# --- the adapter against the recording API ----------------------------------------------------------

def put(cluster, claims: list[dict]) -> None:
    for claim in claims:
        cluster.objects[("pvc", "bubbles", claim["metadata"]["name"])] = claim


def took(slug: str, members=("alice", "bob")) -> set[str]:
    options = KubeOptions(namespace="bubbles", hub_namespace="bubble-manager", hub_pod_labels=HUB_LABELS,
                          proxy_pod_labels=PROXY_LABELS, image="bubble:0.1.0")
    return collected(study_claims(options, slug, members))


def archive_study(study_home, collected: bool = True) -> int:
    """The study archived as the closing path leaves it: its audit trail shows the lock, the workspace
    collect (if `collected`) and final archive 1. Returns that archive's number."""
    with study_home.context.store.transaction() as session:
        save_study(session, dataclasses.replace(study_home.study, state=State.archived))
    audit = study_home.context.audit
    audit.record(actor="system", action=LOCK, study=SLUG, detail={})
    if collected:  # what the collect took of the claims the test puts in the cluster (members alice and bob)
        audit.record(actor="system", action=COLLECT, study=SLUG, detail={"claim_names": sorted(took(SLUG))})
    audit.record(actor="system", action="archive.snapshot", study=SLUG, detail={"number": 1})
    return 1


async def remove(study_home, cluster, archive_number: int | None = 1):
    return await kv.remove_study_volumes(study_home.context, SLUG, archive_number=archive_number,
                                         apis=apis(cluster), settings=settings(study_home.context))


def audited(study_home, action: str) -> list[dict]:
    return [e.detail for e in study_home.context.audit.entries(study=SLUG, action=action, limit=None)]


async def test_the_claims_of_an_archived_study_are_listed_by_label_and_deleted(study_home, cluster, options):
    archive_study(study_home)
    mine, other = study_claims(options, members=("alice", "bob", "carol")), study_claims(options, OTHER)
    put(cluster, mine + other)
    report = await remove(study_home, cluster)
    carol = to_manifest(workspace_claim(options, SLUG, "carol"))["metadata"]["name"]
    assert cluster.calls[0] == ("list", "pvc", kv.study_claim_selector(SLUG))
    deleted = [name for verb, kind, name in cluster.calls if (verb, kind) == ("delete", "pvc")]
    assert deleted == report.removed == sorted(set(names(mine)) - {carol})
    assert cluster.names("pvc") == sorted(names(other) + [carol])    # another study's claims are untouched
    (entry,) = audited(study_home, "lifecycle.volumes-removed")
    assert entry == {"namespace": "bubbles", "removed": report.removed, "kept": [
        {"claim": carol, "reason": "no workspace collect before the final archive took it"}]}


async def test_without_a_collect_before_the_final_archive_the_workspaces_stay(study_home, cluster, options):
    archive_study(study_home, collected=False)  # say an archive taken by hand, from the hub's copy, was reused
    put(cluster, study_claims(options))
    report = await remove(study_home, cluster)
    assert report.removed == names([c for c in study_claims(options) if c["metadata"]["name"].startswith("extract-")])
    assert cluster.names("pvc") == sorted(claim.claim for claim in report.kept) and len(report.kept) == 3
    assert {kept["reason"] for kept in audited(study_home, "lifecycle.volumes-removed")[0]["kept"]} == {
        "no workspace collect before the final archive took it"}


async def test_a_study_that_is_not_archived_keeps_its_claims_and_the_refusal_is_audited(study_home, cluster, options):
    put(cluster, study_claims(options))
    with pytest.raises(kv.VolumeRemovalError, match="is active, not archived"):
        await remove(study_home, cluster)
    assert cluster.calls == [] and len(cluster.names("pvc")) == len(study_claims(options))
    assert audited(study_home, "lifecycle.volumes-remove-failed") == [{"reason": "not-archived", "state": "active"}]


async def test_a_failed_deletion_is_audited_and_a_second_run_finishes_the_job(study_home, cluster, options):
    archive_study(study_home)
    put(cluster, study_claims(options))
    first = names(study_claims(options))[0]
    del cluster.objects[("pvc", "bubbles", names(study_claims(options))[1])]  # gone already: 404 is not an error
    cluster.fail_next[("delete", "pvc")] = 500
    with pytest.raises(kv.VolumeRemovalError, match="tries again on the next tick"):
        await remove(study_home, cluster)
    assert first in cluster.names("pvc")
    assert audited(study_home, "lifecycle.volumes-remove-failed")[0]["reason"] == "ApiException"
    assert not audited(study_home, "lifecycle.volumes-removed")
    report = await remove(study_home, cluster)
    assert cluster.names("pvc") == [] and len(report.removed) == len(study_claims(options)) - 1
    assert audited(study_home, "lifecycle.volumes-removed")[0]["removed"] == report.removed


def test_the_hook_does_nothing_unless_the_site_runs_on_kubernetes(study_home):
    assert kv.remove_volumes(study_home.context, SLUG, archive_number=1) is None
    assert not audited(study_home, "lifecycle.volumes-remove-failed")


async def test_the_hook_refuses_to_block_the_services_event_loop(study_home):
    study_home.context.settings.config.KubeStudyJobs.enabled = True
    with pytest.raises(RuntimeError, match="worker thread"):
        kv.remove_volumes(study_home.context, SLUG, archive_number=1)


# --- the closing path ----------------------------------------------------------------------------

@pytest.fixture
def kube_site(monkeypatch):
    """A site on the Kubernetes profile whose API is the recording fake; the collect Job is tested elsewhere
    (test_collect.py): here the workspaces are already on the hub as a collect leaves them, and the stand-in
    records what a collect records."""
    from bubble_manager import lifecycle_closing

    from .fake_kube import FakeCluster

    fake = FakeCluster()
    monkeypatch.setattr(kv, "in_cluster_apis", lambda: apis(fake))

    def collect(context, slug, actor):  # what a collect that took the claims of alice and bob records
        context.audit.record(actor=actor, action="snapshot.workspaces-collected", study=slug,
                             detail={"claim_names": sorted(took(slug))})

    monkeypatch.setattr(lifecycle_closing, "collect_workspaces", collect)
    return fake


def test_the_reconciler_deletes_the_claims_after_the_archive_verified_and_retries_a_failure(kube_site, frozen_clock,
                                                                                            activatable_home):
    from bubble_manager.config import load_settings
    from bubble_manager.lifecycle_store import DONE
    from bubble_manager.operations import Context
    from bubble_manager.runtime.spec import StudyPaths

    from ..lifecycle.conftest import CONFIG, END, RecordingHub, START, approved_study, at, audit, steps_of, tick

    (activatable_home / "bubble_manager_config.py").write_text(CONFIG)
    ctx = Context.open(load_settings(activatable_home))
    try:
        frozen_clock.set(at(START, 0))
        approved_study(ctx, "diab")
        hub = RecordingHub()
        assert steps_of(tick(ctx, hub)) == [("diab", "activate")]
        options = KubeOptions(namespace="bubbles", hub_namespace="bubble-manager", hub_pod_labels=HUB_LABELS,
                              proxy_pod_labels=PROXY_LABELS, image="bubble:0.1.0")
        put(kube_site, study_claims(options, "diab") + study_claims(options, OTHER))
        ctx.settings.config.KubeStudyJobs.enabled = True
        kube_site.fail_next[("delete", "pvc")] = 503
        frozen_clock.set(at(END + dt.timedelta(days=1), 0))
        report = tick(ctx, hub)
        assert steps_of(report, DONE)[-1] == ("diab", "destroy-live-key")
        assert ("diab", "remove-live-data") in steps_of(report, "failed")
        assert StudyPaths(ctx.home, "diab").root.exists()               # the claims go first: nothing removed
        actions = [action for action, _ in audit(ctx, "diab")]
        assert actions.index("lifecycle.volumes-remove-failed") > actions.index("lifecycle.destroy-live-key") \
            > actions.index("lifecycle.verify-snapshot")                  # only once archived and verified
        frozen_clock.set(at(END + dt.timedelta(days=1), 1))
        assert steps_of(tick(ctx, hub), DONE) == [("diab", "remove-live-data")]
        assert kube_site.names("pvc") == names(study_claims(options, OTHER))
        assert not StudyPaths(ctx.home, "diab").root.exists()
        (step,) = audit(ctx, "diab", "lifecycle.remove-live-data")
        assert step[1]["claims_removed"] == len(study_claims(options)) and step[1]["claims_kept"] == 0
        (removed,) = audit(ctx, "diab", "lifecycle.volumes-removed")
        assert removed[1]["removed"] == names(study_claims(options, "diab"))
        assert kube_site.core.api_client.closed == 2
    finally:
        ctx.close()
