"""Opt-outs: a person added to the warehouse's opt-out register leaves every active extract within
one tick; everyone else keeps their pseudonym; running bubbles restart; nobody is named."""

from __future__ import annotations

import io
import os
from pathlib import Path

import duckdb

from bubble_manager.archive.keys import load_live_identity
from bubble_manager.extract.vault import read_vault
from bubble_manager.runtime.spec import StudyPaths

from .conftest import START, approved_study, at, audit, steps_of, tick


def vault(context, slug: str):
    identity = load_live_identity(context, slug, purpose="test")
    return read_vault(StudyPaths(context.home, slug).vault, slug, [identity])


def extract_pseudonyms(context, slug: str) -> set[str]:
    with duckdb.connect(str(StudyPaths(context.home, slug).extract), read_only=True) as db:
        return {row[0] for row in db.execute("SELECT person_id FROM person").fetchall()}


def test_an_opted_out_person_leaves_every_active_extract(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "opt-a")
    approved_study(ctx, "opt-b", members=("bob",))
    assert sorted(steps_of(tick(ctx, hub))) == [("opt-a", "activate"), ("opt-b", "activate")]
    hub.run("alice", "opt-a")
    before = {slug: vault(ctx, slug) for slug in ("opt-a", "opt-b")}
    shared = sorted(set(before["opt-a"].person_ids) & set(before["opt-b"].person_ids))
    person = int(shared[0])
    pseudonym = before["opt-a"].pseudonyms[list(before["opt-a"].person_ids).index(person)]
    assert pseudonym in extract_pseudonyms(ctx, "opt-a")
    warehouse = Path(ctx.settings.warehouse_path)
    with duckdb.connect(str(warehouse)) as db:
        db.execute("INSERT INTO opt_out VALUES (?, DATE '2026-12-01')", [person])

    frozen_clock.advance(minutes=1)
    report = tick(ctx, hub)
    assert sorted(steps_of(report, "done")) == [("opt-a", "opt-out-rebuild"), ("opt-b", "opt-out-rebuild")]
    for slug in ("opt-a", "opt-b"):
        after = vault(ctx, slug)
        assert person not in set(after.person_ids)
        kept_before = dict(zip(before[slug].person_ids.tolist(), before[slug].pseudonyms))
        assert {p: kept_before[p] for p in after.person_ids.tolist()} == dict(zip(after.person_ids.tolist(),
                                                                                  after.pseudonyms))
        assert len(after) == len(before[slug]) - 1
    assert pseudonym not in extract_pseudonyms(ctx, "opt-a")
    assert hub.stopped == [("alice", "opt-a")] and hub.started == [("alice", "opt-a")]
    refreshed = dict(audit(ctx, "opt-a", "study.extract_refreshed"))["study.extract_refreshed"]
    assert refreshed["reason"] == "opt-out register changed" and refreshed["bubbles_restarted"] == 1
    first, applied = audit(ctx, None, "lifecycle.opt-outs-applied")     # the first tick applied the register too
    assert first[1] == {"active_studies_checked": 2, "studies_rebuilt": 0}
    assert applied[1] == {"active_studies_checked": 2, "studies_rebuilt": 2}
    exported = io.StringIO()
    ctx.audit.export_jsonl(exported)
    assert pseudonym not in exported.getvalue()
    for _, detail in audit(ctx, None, "lifecycle.opt-outs-applied") + audit(ctx, "opt-a", "study.extract_refreshed"):
        assert person not in detail.values() and str(person) not in map(str, detail.values())

    frozen_clock.advance(minutes=1)
    assert tick(ctx, hub).steps == []                      # applied once
    os.utime(warehouse)                                    # the warehouse changed, not its register
    frozen_clock.advance(minutes=1)
    assert tick(ctx, hub).steps == [] and len(audit(ctx, None, "lifecycle.opt-outs-applied")) == 2
