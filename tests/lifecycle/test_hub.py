"""A study's life against a real JupyterHub with the local bwrap spawner (tests/hubfixture.py).

The reconciler runs in this process with `clock.utcnow` moved through the study's life, talking to
the fixture's hub over its REST API; the bubbles' own launchers keep the real study end (months
away), so every stop seen here is the reconciler's own. A second hub runs the bubble-manager
service with the hub roles of hub_config, whose background task closes an ended study on its own.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import requests

from bubble_manager import clock
from bubble_manager.archive.snapshot import verify_envelope
from bubble_manager.config import load_settings
from bubble_manager.lifecycle import Reconciler, reconcile
from bubble_manager.lifecycle_hub import SyncHub
from bubble_manager.lifecycle_store import LifecycleClosureRow
from bubble_manager.operations import Context, StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.service.hub_client import HubClient
from bubble_manager.studies import State

from ..conftest import make_home_activatable
from ..hubfixture import ALICE, BOB, HubFixture, hub_missing_reason
from .conftest import audit, steps_of

pytestmark = [pytest.mark.slow, pytest.mark.bwrap]


def make_hub(small_warehouse: Path, *, with_service: bool = False, config: str = "") -> HubFixture:
    reason = hub_missing_reason()
    if reason:
        pytest.skip(reason)
    hub = HubFixture.create(with_service=with_service)
    make_home_activatable(hub.home, small_warehouse)
    with open(hub.home / "bubble_manager_config.py", "a") as out:
        out.write("c.ArchiveSettings.zstd_threads = 0\nc.Reconciler.stop_timeout_seconds = 60\n" + config)
    return hub


@pytest.fixture
def life_hub(small_warehouse):
    hub = make_hub(small_warehouse)
    yield hub
    leftovers = hub.close()
    assert leftovers == [], f"processes or cgroups left behind: {leftovers}"


def set_activity(hub: HubFixture, user: str, server: str, moment: dt.datetime) -> None:
    response = hub.api("POST", f"/users/{requests.utils.quote(user)}/activity",
                       json={"servers": {server: {"last_activity": clock.isoformat(moment)}}})
    assert response.ok, response.text


def test_a_study_life_against_the_real_hub(life_hub: HubFixture, frozen_clock):
    hub = life_hub
    hub.start()
    context = Context.open(load_settings(hub.home))
    sync_hub = SyncHub(HubClient(f"{hub.url}/hub/api", hub.admin_token), timeout=60)
    settings = Reconciler(config=context.settings.config)
    settings.idle_timeout_seconds = 0

    def tick(**overrides):
        for name, value in overrides.items():
            setattr(settings, name, value)
        return reconcile(context, hub=sync_hub, settings=settings)

    try:
        real_now = dt.datetime.now(dt.timezone.utc)
        frozen_clock.set(real_now)
        for user, study in ((ALICE, "alpha"), (BOB, "beta")):
            assert hub.spawn(hub.login(user), user, study).status_code in (201, 202)
            hub.wait_ready(user, study)

        # idle bubbles: beta has been quiet, alpha just did something
        time.sleep(4)
        set_activity(hub, ALICE, "alpha", dt.datetime.now(dt.timezone.utc))
        frozen_clock.set(dt.datetime.now(dt.timezone.utc))
        report = tick(idle_timeout_seconds=3)
        assert ("beta", "idle-stop") in steps_of(report, "done") and ("alpha", "idle-stop") not in steps_of(report)
        assert hub.server_model(BOB, "beta") is None and hub.server_model(ALICE, "alpha")["ready"]
        settings.idle_timeout_seconds = 0
        assert "ended" not in [s for s, _ in steps_of(report, "failed")]   # the fixture's ended study closed too

        alpha = StudyOperations(context).get("alpha")
        warned = []
        for days in (14, 3, 1):
            frozen_clock.set(alpha.expires_at - dt.timedelta(days=days) + dt.timedelta(minutes=1))
            warned += [s["detail"]["days"] for s in tick().steps if s["step"] == "warn" and s["study"] == "alpha"]
        assert warned == [14, 3, 1]

        # the hub is down at the end: nothing is marked done, the bubble keeps running
        bubble_pids = hub.running_bubble_processes()
        assert bubble_pids
        hub.stop_hub()
        frozen_clock.set(alpha.expires_at + dt.timedelta(minutes=1))
        report = tick()
        assert ("alpha", "stop-servers") in steps_of(report, "failed")
        assert StudyOperations(context).get("alpha").state is State.active
        assert StudyPaths(context.home, "alpha").extract.exists()
        assert [d["step"] for _, d in audit(context, "alpha", "lifecycle.alert")] == ["stop-servers"]
        assert hub.running_bubble_processes()

        hub.start()
        report = tick()
        assert report.failed == [], report.failed
        assert [step for study, step in steps_of(report) if study == "alpha"] == [
            "stop-servers", "expire", "lock-workspaces", "snapshot", "verify-snapshot", "archive", "destroy-live-key",
            "remove-live-data"]
        assert hub.server_model(ALICE, "alpha") is None
        deadline = time.monotonic() + 30
        while hub.running_bubble_processes() and time.monotonic() < deadline:
            hub.reap()
            time.sleep(0.2)
        assert hub.running_bubble_processes() == []       # stopped by the reconciler, not by the launcher's deadline
        assert not StudyPaths(context.home, "alpha").root.exists()
        with context.store.transaction() as session:
            number = session.get(LifecycleClosureRow, "alpha").snapshot_number
        archive = context.home / "archives" / "alpha" / f"alpha-{number}.tar.zst.age"
        verify_envelope(context.verifier(), archive)
        refused = hub.spawn(hub.login(ALICE), ALICE, "alpha")
        assert refused.status_code >= 400 and "ended" in refused.text

        alpha = StudyOperations(context).get("alpha")
        frozen_clock.set(clock.end_of_day(alpha.retention_until) + dt.timedelta(minutes=1))
        assert ("alpha", "purge") in steps_of(tick(), "done")
        assert StudyOperations(context).get("alpha").state is State.purged
        assert not archive.exists() and (archive.parent / "deletion-certificate.json").exists()
        actions = [a for a, _ in audit(context, "alpha")]
        for expected in ("study.expiry_warning", "lifecycle.stop-servers", "bubble.stop", "study.expired",
                         "archive.snapshot", "lifecycle.verify-snapshot", "study.archived", "keys.live-destroyed",
                         "lifecycle.remove-live-data", "archive.purged"):
            assert expected in actions, expected
        assert context.audit.verify(context.verifier()).ok
    finally:
        sync_hub.close()
        context.close()


def test_the_service_reconciles_on_its_own(small_warehouse):
    hub = make_hub(small_warehouse, with_service=True, config="c.Reconciler.interval_seconds = 2\n")
    try:
        hub.start()                      # the service's own hub role (runtime/hubapi.py), nothing added

        context = Context.open(load_settings(hub.home))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and StudyOperations(context).get("ended").state is not State.archived:
                time.sleep(0.5)
            assert StudyOperations(context).get("ended").state is State.archived, hub.log_tail()
            actions = [a for a, _ in audit(context, "ended")]
            assert "lifecycle.stop-servers" in actions and "lifecycle.alert" not in actions
            assert StudyOperations(context).get("alpha").state is State.active   # not due: left alone
        finally:
            context.close()
    finally:
        leftovers = hub.close()
    assert leftovers == []
