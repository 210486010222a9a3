"""An approved extension reaches running bubble pods: a pod's activeDeadlineSeconds cannot be raised, so the
spawner replaces it at its old end with one built for the new end (against the recording Kubernetes API)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from bubble_manager.runtime.kube_extension import (EXPIRES_ANNOTATION, deadline_exceeded, extended_end, pod_end,
                                                   renewal_due)
from bubble_manager.store import save_study
from bubble_manager.studies import State

from .conftest import make_spawner
from .test_spawner import POD, POLICY, _audit_rows, fill_extract, order

pytestmark = pytest.mark.kube
UTC = dt.timezone.utc


def extend(study_home, days: int = 30, **changes):
    study = replace(study_home.study, ends=study_home.study.ends + dt.timedelta(days=days), **changes)
    with study_home.context.store.transaction() as session:
        save_study(session, study)
    return study


def pod(cluster) -> dict:
    return cluster.objects[("pod", "bubbles", POD)]


def killed_at_deadline(cluster) -> None:
    """What the kubelet leaves when activeDeadlineSeconds runs out."""
    manifest = pod(cluster)
    manifest["status"] = {"phase": "Failed", "reason": "DeadlineExceeded", "podIP": "10.1.2.3",
                          "containerStatuses": [{"name": "notebook", "state": {"terminated": {"exitCode": 137}}}]}
    cluster.publish("pod", "MODIFIED", manifest)


def hub_records_the_server(spawner, url: str) -> list[tuple[str, str]]:
    """The hub's side of a started server: its ORM record and the proxy; returns the routes the proxy is given."""
    from types import SimpleNamespace
    from urllib.parse import urlparse

    from jupyterhub import orm

    address = urlparse(url)
    spawner.orm_spawner.server = orm.Server(proto=address.scheme, ip=address.hostname, port=address.port,
                                            base_url="/user/alice/t2d-statins/", cookie_name="jupyterhub-user-alice")
    spawner.db = SimpleNamespace(commit=lambda: None)
    routed: list[tuple[str, str]] = []

    class Proxy:
        async def add_user(self, user, server_name):  # noqa: ANN001 - jupyterhub.proxy.Proxy.add_user
            routed.append((server_name, user.spawners[server_name].server.ip))

    spawner.user.settings = {"proxy": Proxy()}
    spawner.user.spawners = {spawner.name: spawner}
    return routed


async def settle() -> None:
    import asyncio

    await asyncio.sleep(0.1)  # the reflector reads the fake API's watch stream


# --- the rules, as plain data ---------------------------------------------------------------------

END = dt.datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC)


def annotated(end: str | None, **status) -> dict:
    return {"metadata": {"annotations": {EXPIRES_ANNOTATION: end} if end else {}}, "status": status}


def test_a_renewal_is_looked_for_only_near_or_past_the_pods_end():
    built_for = annotated(END.isoformat(), phase="Running")
    assert pod_end(built_for) == END
    assert renewal_due(built_for, END - dt.timedelta(seconds=301), 300) is None
    assert renewal_due(built_for, END - dt.timedelta(seconds=300), 300) == END
    assert renewal_due(built_for, END + dt.timedelta(hours=3), 300) == END
    ended = annotated(END.isoformat(), phase="Failed", reason="DeadlineExceeded")
    assert deadline_exceeded(ended) and renewal_due(ended, END - dt.timedelta(days=9), 300) == END
    for foreign in (annotated(None, phase="Running"), annotated("not a date"), annotated("2027-03-31T23:59:59")):
        assert renewal_due(foreign, END, 300) is None  # not built by us (or no time zone): never touched


def test_only_an_active_study_extended_past_the_pod_for_a_member_is_followed():
    from ..test_studies import active

    study = active()
    now = study.expires_at - dt.timedelta(minutes=2)
    later = replace(study, ends=study.ends + dt.timedelta(days=30))
    assert extended_end(later, study.members[0], study.expires_at, now) == later.expires_at
    assert extended_end(study, study.members[0], study.expires_at, now) is None  # not extended
    assert extended_end(later, "mallory", study.expires_at, now) is None
    assert extended_end(replace(later, state=State.revoked), study.members[0], study.expires_at, now) is None
    assert extended_end(None, study.members[0], study.expires_at, now) is None
    assert extended_end(later, study.members[0], later.expires_at, now) is None  # the pod already reaches it


# --- the spawner, against the recording API ---------------------------------------------------------

async def test_an_extension_replaces_the_pod_at_its_old_end(study_home, cluster, options, frozen_clock):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    url = await spawner.start()
    routed = hub_records_the_server(spawner, url)
    old_end = study_home.study.expires_at
    assert pod(cluster)["metadata"]["annotations"][EXPIRES_ANNOTATION] == old_end.isoformat()
    extended = extend(study_home)
    cluster.calls.clear()

    assert await spawner.poll() is None  # weeks before the old end: the bubble is left alone
    assert order(cluster, "pod", "networkpolicy") == []

    frozen_clock.set(old_end - dt.timedelta(seconds=120))
    first_pod_uid = pod(cluster)["metadata"]["uid"]
    assert await spawner.poll() is None  # still running: on a new pod
    assert order(cluster, "pod", "networkpolicy") == [("delete", "pod"), ("create", "networkpolicy"),
                                                      ("create", "pod")]
    assert ("replace", "networkpolicy", POLICY) in cluster.calls  # refreshed, never removed
    renewed = pod(cluster)
    assert renewed["metadata"]["uid"] != first_pod_uid
    assert renewed["metadata"]["annotations"][EXPIRES_ANNOTATION] == extended.expires_at.isoformat()
    assert renewed["spec"]["activeDeadlineSeconds"] == int((extended.expires_at - frozen_clock.now).total_seconds())
    env = {e["name"]: e["value"] for e in renewed["spec"]["containers"][0]["env"]}
    assert env["BUBBLE_EXPIRES_AT"] == extended.expires_at.isoformat()
    _, study, detail = [row for row in _audit_rows(study_home.context) if row[0] == "bubble.extended"][-1]
    assert study == "t2d-statins" and detail["by"] == "spawner" and detail["runtime"] == "kubernetes"
    assert (detail["from"], detail["expires_at"]) == (old_end.isoformat(), extended.expires_at.isoformat())

    assert spawner.server.ip == renewed["status"]["podIP"] != "10.1.2.3"  # the hub's record of the server
    assert routed == [("t2d-statins", renewed["status"]["podIP"])]  # and the proxy, at once

    cluster.calls.clear()
    await settle()
    assert await spawner.poll() is None  # once is enough: the new pod reaches the new end
    assert order(cluster, "pod", "networkpolicy") == []
    await spawner.stop(now=True)
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


async def test_a_pod_ended_at_its_deadline_while_the_hub_was_down_comes_back(study_home, cluster, options,
                                                                            frozen_clock):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    await spawner.start()
    extended = extend(study_home)
    frozen_clock.set(study_home.study.expires_at + dt.timedelta(minutes=40))
    killed_at_deadline(cluster)
    await settle()
    cluster.calls.clear()
    assert await spawner.poll() is None
    assert order(cluster, "pod", "networkpolicy") == [("delete", "pod"), ("create", "networkpolicy"),
                                                      ("create", "pod")]
    assert pod(cluster)["metadata"]["annotations"][EXPIRES_ANNOTATION] == extended.expires_at.isoformat()
    assert pod(cluster)["status"]["phase"] == "Running"
    await spawner.stop(now=True)


@pytest.mark.parametrize("change", ["not-extended", "member-removed", "revoked"])
async def test_without_an_extension_for_the_member_the_pod_ends_at_its_deadline(study_home, cluster, options,
                                                                               frozen_clock, change):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    await spawner.start()
    if change == "member-removed":
        extend(study_home, members=tuple(m for m in study_home.study.members if m != "alice"))
    elif change == "revoked":
        extend(study_home, state=State.revoked)
    frozen_clock.set(study_home.study.expires_at - dt.timedelta(seconds=60))
    cluster.calls.clear()
    assert await spawner.poll() is None  # running until the kubelet ends it
    assert order(cluster, "pod", "networkpolicy") == []
    killed_at_deadline(cluster)
    await settle()
    assert await spawner.poll() == 137  # the hub then stops the server
    assert "bubble.extended" not in [a for a, _, _ in _audit_rows(study_home.context)]
    await spawner.stop(now=True)
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []


async def test_a_replacement_that_fails_stops_the_bubble_and_leaves_nothing(study_home, cluster, options,
                                                                           frozen_clock):
    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home, start_timeout=1)
    await spawner.start()
    extend(study_home)
    frozen_clock.set(study_home.study.expires_at - dt.timedelta(seconds=60))
    cluster.pod_behaviour = "refuse"
    cluster.calls.clear()
    assert await spawner.poll() == 1  # stopped, as the deadline would have
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []
    calls = [c[:2] for c in cluster.calls if c[1] in ("pod", "networkpolicy")]
    assert calls.index(("create", "networkpolicy")) < calls.index(("create", "pod"))
    assert max(i for i, c in enumerate(calls) if c == ("delete", "networkpolicy")) > max(
        i for i, c in enumerate(calls) if c == ("delete", "pod"))
    action, _, detail = _audit_rows(study_home.context)[-1]
    assert (action, detail["reason"]) == ("bubble.failed", "extension-renewal")


async def test_a_stale_extract_volume_stops_the_bubble_instead_of_renewing_it(study_home, cluster, options,
                                                                             frozen_clock):
    from bubble_manager.runtime.kube_objects import MANIFEST_ANNOTATION

    fill_extract(cluster, options, study_home)
    spawner = make_spawner(study_home.home)
    await spawner.start()
    extend(study_home)
    cluster.objects[("pvc", "bubbles", "extract-t2d-statins")]["metadata"]["annotations"][MANIFEST_ANNOTATION] = "0" * 64
    frozen_clock.set(study_home.study.expires_at - dt.timedelta(seconds=60))
    cluster.calls.clear()
    assert await spawner.poll() == 1
    assert [c for c in cluster.calls if c[:2] == ("create", "pod")] == []
    assert cluster.names("pod") == [] and cluster.names("networkpolicy") == []
