"""Workspaces to the hub before archiving, on Kubernetes: the collect Job's command against the service's
real upload endpoint, hostile uploads, the adapter against the recording fake API, and the whole chain
to a real archive that custodians restore."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bubble_manager.runtime import kube_collect, kube_snapshot as ks, transfer_tokens as tt
from bubble_manager.runtime import workspace_transfer as wt
from bubble_manager.runtime.kube_objects import shared_claim, study_claim_selector, to_manifest, workspace_claim
from bubble_manager.runtime.spec import StudyPaths, member_dir_name

from .test_activation import SLUG, apis, settings

pytestmark = pytest.mark.kube
ALICE, BOB = member_dir_name("alice"), member_dir_name("bob")


CLAIM_FILES = (f"workspaces/{ALICE}/analysis.ipynb", f"workspaces/{ALICE}/data/table.csv",
               f"workspaces/{ALICE}/résumé €.txt", f"workspaces/{BOB}/notes.md", "shared/results/figure.png")


def claim_tree(root: Path) -> dict[str, bytes]:
    """What the claims hold, as the collect Job sees them under /snapshot: files, a link, a pipe, odd names."""
    files = {
        f"workspaces/{ALICE}/analysis.ipynb": b'{"cells": []}\n',
        f"workspaces/{ALICE}/data/table.csv": b"age,count\n40-49,12\n" * 100,
        f"workspaces/{ALICE}/résumé €.txt": "non-ASCII names survive\n".encode(),
        f"workspaces/{BOB}/notes.md": b"# notes\n",
        "shared/results/figure.png": os.urandom(300_000),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / f"workspaces/{ALICE}/empty").mkdir()
    os.symlink("/etc/passwd", root / f"workspaces/{ALICE}/passwd")
    os.symlink("analysis.ipynb", root / f"workspaces/{ALICE}/latest.ipynb")
    os.mkfifo(root / "shared/pipe")
    assert sorted(files) == sorted(CLAIM_FILES)
    return files


def on_hub(paths: StudyPaths) -> dict[str, bytes]:
    found = {}
    for top in ("workspaces", "shared"):
        for path in sorted((paths.root / top).rglob("*")):
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(paths.root))] = path.read_bytes()
    return found


async def put(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """PUT from a worker thread: the service answers on this test's event loop."""
    return await asyncio.to_thread(_put, url, body, headers)


def _put(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def upload_token(context, study: str = SLUG) -> tt.IssuedToken:
    return tt.issue(context, study=study, purpose=tt.WORKSPACE_UPLOAD, job=f"snapshot-{study}-r1", actor="system",
                    ttl_seconds=600)


# --- the collect command against the real endpoint ------------------------------------------------

async def test_the_collect_command_brings_files_and_folders_never_links(study_home, transfer_service, tmp_path):
    snapshot = tmp_path / "snapshot"
    expected = claim_tree(snapshot)
    paths = StudyPaths(study_home.home, SLUG)
    (paths.workspaces / "stale").mkdir(parents=True)  # what an earlier collect left is replaced
    (paths.workspaces / "stale" / "old.txt").write_text("old")
    secrets_dir = tmp_path / "secret"
    secrets_dir.mkdir()
    token = upload_token(study_home.context)
    (secrets_dir / "transfer-token").write_text(token.secret)
    environment = {"BUBBLE_TRANSFER_URL": f"{transfer_service.url}transfer/v1/workspaces/{SLUG}",
                   "BUBBLE_SNAPSHOT_DIR": str(snapshot), "BUBBLE_JOB_SECRETS": str(secrets_dir)}
    assert await asyncio.to_thread(kube_collect.main, environment) == 0
    assert on_hub(paths) == expected
    assert (paths.workspace("alice") / "empty").is_dir()
    assert not (paths.workspace("alice") / "passwd").exists() and not (paths.shared / "pipe").exists()
    assert not list(paths.root.glob(".upload-*")) and not list(paths.root.glob(".incoming-*"))
    assert tt.token_state(study_home.context, token.token_id)["outcome"] == "completed"
    (received,) = study_home.context.audit.entries(action="snapshot.workspaces-received", limit=10)
    assert received.detail["files"] == len(expected) and received.detail["bytes"] == sum(map(len, expected.values()))
    assert "résumé" not in json.dumps(received.detail) and "analysis" not in json.dumps(received.detail)
    assert await asyncio.to_thread(kube_collect.main, environment) == 1  # the token was for one upload


async def test_uploads_without_a_good_token_or_through_a_proxy_change_nothing(study_home, transfer_service):
    url = f"{transfer_service.url}transfer/v1/workspaces/{SLUG}"
    body = tar_of(("workspaces", None), (f"workspaces/{ALICE}/x.txt", b"x"))
    assert (await put(url, body, {}))[0] == 401
    assert (await put(url, body, {"Authorization": "token abcdef"}))[0] == 401
    other = upload_token(study_home.context, "other").secret
    assert (await put(url, body, {"Authorization": f"Bearer {other}"}))[0] == 403
    extract_token = tt.issue(study_home.context, study=SLUG, purpose=tt.EXTRACT_DOWNLOAD, job="j", actor="system",
                             ttl_seconds=60, manifest_sha256="ab" * 32)
    status, answer = await put(url, body, {"Authorization": f"Bearer {extract_token.secret}"})
    assert (status, answer["rule"]) == (403, "other-purpose")
    status, answer = await put(url, body, {"Authorization": f"Bearer {upload_token(study_home.context).secret}",
                                     "X-Forwarded-For": "203.0.113.9"})
    assert (status, answer["rule"]) == (403, "via-proxy")
    assert not (StudyPaths(study_home.home, SLUG).root / "workspaces").exists()


async def test_a_study_that_is_not_live_takes_no_upload(study_home, transfer_service):
    from dataclasses import replace

    from bubble_manager.store import save_study
    from bubble_manager.studies import State

    with study_home.context.store.transaction() as session:
        save_study(session, replace(study_home.study, state=State.approved))
    status, answer = await put(f"{transfer_service.url}transfer/v1/workspaces/{SLUG}", tar_of(("shared", None)),
                         {"Authorization": f"Bearer {upload_token(study_home.context).secret}"})
    assert (status, answer["rule"]) == (409, "study-state")


async def test_an_upload_larger_than_allowed_is_cut_and_leaves_nothing(study_home, transfer_service, tmp_path):
    study_home.context.settings.config.TransferSettings.max_upload_bytes = 100_000
    snapshot = tmp_path / "snapshot"
    claim_tree(snapshot)
    secrets_dir = tmp_path / "secret"
    secrets_dir.mkdir()
    (secrets_dir / "transfer-token").write_text(upload_token(study_home.context).secret)
    code = await asyncio.to_thread(kube_collect.main, {
        "BUBBLE_TRANSFER_URL": f"{transfer_service.url}transfer/v1/workspaces/{SLUG}",
        "BUBBLE_SNAPSHOT_DIR": str(snapshot), "BUBBLE_JOB_SECRETS": str(secrets_dir)})
    assert code == 1
    root = StudyPaths(study_home.home, SLUG).root
    await asyncio.sleep(0.1)
    assert not (root / "workspaces").exists() and not list(root.glob(".upload-*"))


def test_the_collect_command_names_what_is_missing(capsys):
    assert kube_collect.main({}) == 1
    assert "BUBBLE_TRANSFER_URL, BUBBLE_SNAPSHOT_DIR, BUBBLE_JOB_SECRETS not set" in capsys.readouterr().err


# --- hostile uploads, unpacked by hand ------------------------------------------------------------

def tar_of(*members: tuple[str, bytes | None] | tarfile.TarInfo) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            info = tarfile.TarInfo(member[0])
            if member[1] is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return out.getvalue()


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


HOSTILE = {
    "symlink": ([special(f"workspaces/{ALICE}/x", tarfile.SYMTYPE, "/etc/passwd")], "not-a-file"),
    "hard link": ([special(f"workspaces/{ALICE}/x", tarfile.LNKTYPE, "/etc/shadow")], "not-a-file"),
    "device": ([special("shared/sda", tarfile.BLKTYPE)], "not-a-file"),
    "fifo": ([special("shared/pipe", tarfile.FIFOTYPE)], "not-a-file"),
    "escape": ([(f"workspaces/{ALICE}/../../../keys/x", b"x")], "bad-path"),
    "absolute": ([("/etc/cron.d/x", b"x")], "bad-path"),
    "outside the two folders": ([("vault.age", b"x")], "bad-path"),
    "not a member": ([(f"workspaces/{member_dir_name('mallory')}/x", b"x")], "unknown-member"),
    "twice": ([("shared/a", b"1"), ("shared/a", b"2")], "duplicate"),
    "file then folder": ([("shared/a", b"1"), ("shared/a/b", b"2")], "duplicate"),
    "too deep": ([("shared/" + "d/" * 70 + "f", b"x")], "too-deep"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_upload_is_refused_whole_and_the_hub_copy_kept(tmp_path, case):
    members, reason = HOSTILE[case]
    paths = StudyPaths(tmp_path, SLUG)
    paths.workspace("alice").mkdir(parents=True)
    (paths.workspace("alice") / "kept.txt").write_text("from the last collect")
    upload = tmp_path / "upload.tar"
    upload.write_bytes(tar_of(("shared/fine.txt", b"fine"), *members))
    with pytest.raises(wt.UploadRefused) as refused:
        wt.receive(upload, paths, ["alice", "bob"], staging_name=".incoming-test")
    assert refused.value.reason == reason
    assert sorted(p.name for p in paths.root.iterdir()) == ["workspaces"]
    assert (paths.workspace("alice") / "kept.txt").read_text() == "from the last collect"
    assert not (tmp_path / "keys").exists() and not Path("/etc/cron.d/x").exists()


def test_too_many_entries_or_a_cut_tar_are_refused(tmp_path):
    paths = StudyPaths(tmp_path, SLUG)
    paths.root.mkdir(parents=True)
    upload = tmp_path / "upload.tar"
    upload.write_bytes(tar_of(*[(f"shared/{n}", b"x") for n in range(20)]))
    with pytest.raises(wt.UploadRefused) as refused:
        wt.receive(upload, paths, ["alice"], staging_name=".in", limits=wt.UploadLimits(max_members=10))
    assert refused.value.reason == "too-many"
    whole = tar_of(("shared/big", os.urandom(100_000)))
    upload.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(wt.UploadRefused) as refused:
        wt.receive(upload, paths, ["alice"], staging_name=".in")
    assert refused.value.reason == "not-a-tar"
    assert list(paths.root.iterdir()) == []


# --- the adapter against the recording API --------------------------------------------------------

def collect_runner(claims: dict[str, Path], secrets_root: Path, context=None):
    """Runs the collect Job as the kubelet would, closely enough: the claims' folders put under /snapshot."""

    async def run(job: dict, cluster) -> str:
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        snapshot = secrets_root.parent / f"snapshot-{job['metadata']['name']}"
        for mount in container["volumeMounts"]:
            claim = (volumes[mount["name"]].get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                assert mount["readOnly"] is True and volumes[mount["name"]]["persistentVolumeClaim"]["readOnly"]
                relative = Path(mount["mountPath"]).relative_to("/snapshot")
                (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(claims[claim], snapshot / relative)  # links and pipes as they are
        secret = cluster.objects[("secret", "bubbles", job["metadata"]["name"])]
        folder = secrets_root / job["metadata"]["name"]
        folder.mkdir(parents=True)
        (folder / "transfer-token").write_text(secret["stringData"]["transfer-token"])
        env.update(BUBBLE_SNAPSHOT_DIR=str(snapshot), BUBBLE_JOB_SECRETS=str(folder))
        return "Complete" if await asyncio.to_thread(kube_collect.main, env) == 0 else "Failed"

    return run


def claims_in_cluster(cluster, options, tmp_path: Path, members=("alice", "bob")) -> dict[str, Path]:
    """Workspace claims for `members` and the shared claim, as the spawner left them, with their contents."""
    tree = tmp_path / "claims-content"
    claim_tree(tree)
    found = {}
    for member in members:
        claim = to_manifest(workspace_claim(options, SLUG, member))
        cluster.objects[("pvc", "bubbles", claim["metadata"]["name"])] = claim
        found[claim["metadata"]["name"]] = tree / "workspaces" / member_dir_name(member)
    claim = to_manifest(shared_claim(options, SLUG))
    cluster.objects[("pvc", "bubbles", claim["metadata"]["name"])] = claim
    found[claim["metadata"]["name"]] = tree / "shared"
    return found


async def collect(study_home, cluster, port: int, **overrides):
    return await ks.collect_study_workspaces(study_home.context, SLUG, apis=apis(cluster), timeout=30,
                                            settings=settings(study_home.context, port=port, **overrides))


async def test_end_to_end_the_collect_job_brings_the_claims_to_the_hub(study_home, cluster, options,
                                                                       transfer_service, tmp_path):
    claims = claims_in_cluster(cluster, options, tmp_path, members=("alice",))  # bob never opened a bubble
    cluster.job_runner = collect_runner(claims, tmp_path / "secrets")
    report = await collect(study_home, cluster, transfer_service.port)
    assert report.members == ["alice"] and report.shared and report.received["files"] == 4
    paths = StudyPaths(study_home.home, SLUG)
    assert sorted(on_hub(paths)) == sorted([f"workspaces/{ALICE}/analysis.ipynb", f"workspaces/{ALICE}/data/table.csv",
                                            f"workspaces/{ALICE}/résumé €.txt", "shared/results/figure.png"])
    verbs = [(verb, kind) for verb, kind, _ in cluster.calls if verb != "read"]
    assert verbs == [("list", "pvc"), ("create", "networkpolicy"), ("create", "secret"), ("create", "job"),
                     ("patch", "secret"), ("delete", "secret"), ("delete", "networkpolicy")]
    job = cluster.objects[("job", "bubbles", report.job)]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == list(ks.COLLECT_COMMAND)
    assert sorted(cluster.deleted[("secret", report.job)]["stringData"]) == ["transfer-token"]
    actions = [e.action for e in study_home.context.audit.entries(study=SLUG, limit=None)]
    assert actions[-3:] == ["transfer.redeemed", "snapshot.workspaces-received", "snapshot.workspaces-collected"]
    (collected,) = study_home.context.audit.entries(study=SLUG, action="snapshot.workspaces-collected", limit=None)
    assert collected.detail["claim_names"] == sorted(claims)  # what a closing may delete


async def test_the_workspace_of_a_former_member_is_collected_too(study_home, cluster, options, transfer_service,
                                                                  tmp_path):
    """As on a local site, bob's workspace stays with the study after an amendment removed him, until it is
    archived: the collect takes it and the service accepts his folder (from the audit log), no one else's."""
    import dataclasses

    from bubble_manager.store import load_study, save_study

    with study_home.context.store.transaction() as session:
        save_study(session, dataclasses.replace(study_home.study, members=("alice",)))
    study_home.context.audit.record(actor="sam", action="study.amended", study=SLUG, detail={
        "kind": "members", "ends": None, "add": [], "remove": ["bob"]})
    claims = claims_in_cluster(cluster, options, tmp_path, members=("alice", "bob", "carol"))  # carol: never one
    carol = to_manifest(workspace_claim(options, SLUG, "carol"))["metadata"]["name"]
    cluster.job_runner = collect_runner({k: v for k, v in claims.items() if k != carol}, tmp_path / "secrets")
    report = await collect(study_home, cluster, transfer_service.port)
    assert report.members == ["alice", "bob"]
    assert f"workspaces/{BOB}/notes.md" in on_hub(StudyPaths(study_home.home, SLUG))
    job = cluster.objects[("job", "bubbles", report.job)]
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]
               if "persistentVolumeClaim" in v}
    assert carol not in mounted and len(mounted) == 3
    with study_home.context.store.transaction() as session:
        study = load_study(session, SLUG)
    assert wt.members_ever(study_home.context, study) == ("alice", "bob")
    with pytest.raises(wt.UploadRefused, match="not a member"):  # a folder of no member, past or present
        wt.checked_path(f"workspaces/{member_dir_name('carol')}/x", wt.member_folders(("alice", "bob")),
                        wt.UploadLimits())


async def test_a_failed_collect_job_says_do_not_archive(study_home, cluster, options, tmp_path):
    claims_in_cluster(cluster, options, tmp_path)
    cluster.job_outcome = "Failed"
    with pytest.raises(ks.CollectError, match="do not archive it yet"):
        await collect(study_home, cluster, 10101)
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == []
    (issued,) = study_home.context.audit.entries(study=SLUG, action="transfer.token-issued", limit=None)
    assert tt.token_state(study_home.context, issued.detail["token"])["outcome"] == "revoked"
    assert study_home.context.audit.entries(study=SLUG, action="snapshot.workspaces-collect-failed", limit=None)


async def test_a_study_whose_bubbles_never_opened_has_nothing_to_collect(study_home, cluster):
    report = await collect(study_home, cluster, 10101)
    assert report.job is None and cluster.names("job") == []
    assert cluster.calls == [("list", "pvc", study_claim_selector(SLUG))]
    (collected,) = study_home.context.audit.entries(study=SLUG, action="snapshot.workspaces-collected", limit=None)
    assert collected.detail["claim_names"] == []


def test_the_hook_does_nothing_unless_the_site_runs_on_kubernetes(study_home):
    assert ks.collect_workspaces(study_home.context, SLUG) is None
    assert not study_home.context.audit.entries(action="transfer.token-issued")


async def test_the_hook_refuses_to_block_the_services_event_loop(study_home):
    study_home.context.settings.config.KubeStudyJobs.enabled = True
    with pytest.raises(RuntimeError, match="worker thread"):
        ks.collect_workspaces(study_home.context, SLUG)


async def test_collected_workspaces_end_up_in_an_archive_custodians_restore(study_home, cluster, options,
                                                                              transfer_service, tmp_path):
    """The whole chain: claims -> collect Job -> hub folder -> the archive subsystem's snapshot -> restore."""
    from bubble_manager.archive.restore import restore
    from bubble_manager.archive.snapshot import snapshot

    from ..archive.conftest import recovered_identity, register_custodians

    study_home.context.settings.config.PostQuantumSettings.archive_key_type = "x25519"
    kits = register_custodians(study_home.context, tmp_path / "custodians")
    claims = claims_in_cluster(cluster, options, tmp_path)
    expected = {name: (tmp_path / "claims-content" / name).read_bytes() for name in CLAIM_FILES}
    cluster.job_runner = collect_runner(claims, tmp_path / "secrets")
    await collect(study_home, cluster, transfer_service.port)
    result = await asyncio.to_thread(snapshot, study_home.context, SLUG)
    identity = recovered_identity(study_home.context, SLUG, kits)
    destination = tmp_path / "restored"
    await asyncio.to_thread(restore, study_home.context, result.path, destination, [identity],
                            reason="test of the Kubernetes collect path")
    restored = {str(p.relative_to(destination)): p.read_bytes()
                for p in destination.rglob("*") if p.is_file() and not p.is_symlink() and "_archive" not in p.parts}
    assert {name: data for name, data in restored.items() if name.startswith(("workspaces/", "shared/"))} == expected
    assert "extract.duckdb" in restored  # the archive is the study's, not only its workspaces
    assert not [p for p in destination.rglob("*") if p.is_symlink()]  # links were never sent
