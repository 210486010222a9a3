"""Filling a study's extract volume on Kubernetes, against the recording fake API.

Most tests let the fake end the Job as told; the end-to-end ones run the Job's real command
(`kube_fill`, in a worker thread) with the secret and environment the Job was given, against the
service's real transfer endpoint on this test's loop, into a folder standing for the claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import duckdb
import pytest
from traitlets.config import Config

from bubble_manager.runtime import kube_activation as ka, kube_fill, transfer_tokens as tt
from bubble_manager.runtime.kube_objects import MANIFEST_ANNOTATION, extract_claim, extract_claim_name, to_manifest
from bubble_manager.studies import State

from .conftest import HUB_LABELS, PROXY_LABELS, SERVICE_LABELS

pytestmark = pytest.mark.kube
SLUG = "t2d-statins"
IMAGE = "registry.example.org/bubble-manager/bubble:0.1.0"


def settings(context, port: int = 10101, **overrides) -> ka.KubeStudyJobs:
    config = Config()
    values = {"enabled": True, "namespace": "bubbles", "release_namespace": "bubble-manager",
              "hub_pod_labels": HUB_LABELS, "proxy_pod_labels": PROXY_LABELS, "service_pod_labels": SERVICE_LABELS,
              "service_port": port, "service_url": f"http://127.0.0.1:{port}/services/bubble-manager/",
              "image": IMAGE, "poll_seconds": 0.02, "extra_labels": {"app.kubernetes.io/instance": "bm"}}
    values.update(overrides)
    for key, value in values.items():
        setattr(config.KubeStudyJobs, key, value)
    return ka.KubeStudyJobs(config=config)


def apis(cluster) -> ka.KubeApis:
    return ka.KubeApis(cluster.core, cluster.batch, cluster.networking)


def manifest_sha256(home: Path) -> str:
    return hashlib.sha256((home / "studies" / SLUG / "manifest.json").read_bytes()).hexdigest()


def claim_annotations(cluster, name: str = "extract-t2d-statins") -> dict:
    return cluster.objects[("pvc", "bubbles", name)]["metadata"].get("annotations") or {}


def audit(context, prefix: str) -> list:
    return [e for e in context.audit.entries(study=SLUG, limit=1000) if e.action.startswith(prefix)]


async def fill(study_home, cluster, **overrides):
    if cluster.job_runner is None and cluster.job_outcome == "Complete":
        cluster.job_runner = token_only_runner(study_home.context)
    return await ka.fill_study_extract(study_home.context, SLUG, apis=apis(cluster), timeout=30,
                                       settings=settings(study_home.context, **overrides))


def token_only_runner(context, outcome: str = "Complete", download: bool = True, study: str = SLUG):
    """A Job that ends as told; if `download`, the service is told it sent the extract (no bytes move)."""

    async def run(job: dict, cluster) -> str:
        await asyncio.sleep(0.02)
        spec = job["spec"]["template"]["spec"]
        secret_name = next(v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v)
        token = cluster.objects[("secret", "bubbles", secret_name)]["stringData"]["transfer-token"]
        if outcome == "Complete" and download:
            grant = tt.redeem(context, token, study=study, purpose=tt.EXTRACT_DOWNLOAD)
            tt.complete(context, grant.token_id, actor="test", action="extract.transferred", detail={})
        return outcome

    return run


# --- the order of things, with the fake ending the Job --------------------------------------------

async def test_secret_policy_and_job_come_and_go_and_the_volume_is_marked_last(study_home, cluster):
    report = await fill(study_home, cluster)
    (target,) = report.targets
    verbs = [(verb, kind) for verb, kind, _ in cluster.calls if verb != "read"]
    assert verbs == [("create", "pvc"), ("patch", "pvc"), ("create", "networkpolicy"), ("create", "secret"),
                     ("create", "job"), ("patch", "secret"), ("delete", "secret"), ("delete", "networkpolicy"),
                     ("patch", "pvc")]
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == []
    assert claim_annotations(cluster) == {MANIFEST_ANNOTATION: manifest_sha256(study_home.home)}
    job = cluster.objects[("job", "bubbles", target.job)]
    secret = cluster.deleted[("secret", target.job)]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert secret["immutable"] is True and sorted(secret["stringData"]) == ["hub-signing.pub", "transfer-token"]
    assert secret["stringData"]["hub-signing.pub"] == (study_home.home / "keys" / "hub-signing.pub").read_text()
    assert tt.TOKEN_SHAPE.match(secret["stringData"]["transfer-token"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert container["command"] == list(ka.FILL_COMMAND) and container["image"] == IMAGE
    assert env["BUBBLE_TRANSFER_URL"] == "http://127.0.0.1:10101/services/bubble-manager/transfer/v1/extracts/" + SLUG
    assert env["BUBBLE_EXPECTED_MANIFEST_SHA256"] == manifest_sha256(study_home.home)
    policy = cluster.deleted[("networkpolicy", f"{target.job}-net")]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
        job["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["egress"][0]["ports"] == [{"port": 10101, "protocol": "TCP"}]
    assert [e.action for e in audit(study_home.context, "")][-4:] == [
        "transfer.token-issued", "transfer.redeemed", "extract.transferred", "extract.volume-filled"]
    filled = audit(study_home.context, "extract.volume-filled")[-1].detail
    assert filled["claims"] == ["extract-t2d-statins"] and filled["jobs"] == [target.job]


async def test_a_failed_job_leaves_no_marked_volume_even_one_marked_before(study_home, cluster, options):
    claim = to_manifest(extract_claim(options, SLUG))
    claim["metadata"]["annotations"] = {MANIFEST_ANNOTATION: "ab" * 32}  # what an older fill left
    cluster.objects[("pvc", "bubbles", "extract-t2d-statins")] = claim
    cluster.job_outcome = "Failed"
    with pytest.raises(ka.ExtractFillError, match="was not filled"):
        await fill(study_home, cluster)
    assert MANIFEST_ANNOTATION not in claim_annotations(cluster)
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == []
    (issued,) = [e for e in audit(study_home.context, "transfer.token-issued")]
    assert tt.token_state(study_home.context, issued.detail["token"])["outcome"] == "revoked"
    failure = audit(study_home.context, "extract.volume-fill-failed")[-1].detail
    assert failure == {"claim": "extract-t2d-statins", "job": issued.detail["job"], "reason": "JobFailed"}
    assert not audit(study_home.context, "extract.volume-filled")


async def test_a_job_that_succeeds_without_the_extract_marks_nothing(study_home, cluster):
    """Exit 0 is not enough: the service must have recorded that it sent this Job's token the extract."""
    cluster.job_runner = token_only_runner(study_home.context, download=False)
    with pytest.raises(ka.ExtractFillError, match="without the service having sent it"):
        await fill(study_home, cluster)
    assert MANIFEST_ANNOTATION not in claim_annotations(cluster)
    (issued,) = audit(study_home.context, "transfer.token-issued")
    assert tt.token_state(study_home.context, issued.detail["token"])["outcome"] == "revoked"


async def test_a_job_that_cannot_be_created_leaves_nothing_but_the_unmarked_claim(study_home, cluster):
    cluster.fail_next[("create", "job")] = 403
    with pytest.raises(ka.ExtractFillError, match="403"):
        await fill(study_home, cluster)
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == [] and cluster.names("job") == []
    assert MANIFEST_ANNOTATION not in claim_annotations(cluster)


async def test_per_member_mode_fills_each_members_copy_with_its_own_job(study_home, cluster):
    report = await fill(study_home, cluster, extract_mode="per-member")
    claims = [t.claim for t in report.targets]
    assert claims == [extract_claim_name(SLUG, "alice"), extract_claim_name(SLUG, "bob")]
    assert len({t.job for t in report.targets}) == 2
    for claim in claims:
        assert claim_annotations(cluster, claim) == {MANIFEST_ANNOTATION: manifest_sha256(study_home.home)}
    assert len(audit(study_home.context, "transfer.token-issued")) == 2


async def test_an_extract_that_does_not_verify_on_the_hub_touches_no_cluster(study_home, cluster):
    extract = study_home.home / "studies" / SLUG / "extract.duckdb"
    extract.write_bytes(extract.read_bytes() + b"tampered")
    with pytest.raises(ka.ExtractFillError, match="does not verify"):
        await fill(study_home, cluster)
    assert cluster.calls == []
    assert audit(study_home.context, "extract.volume-fill-failed")[-1].detail["reason"] == "hub-extract-invalid"
    assert not audit(study_home.context, "transfer.token-issued")


async def test_a_study_that_is_not_live_gets_no_volume(study_home, cluster):
    from dataclasses import replace

    from bubble_manager.store import save_study

    with study_home.context.store.transaction() as session:
        save_study(session, replace(study_home.study, state=State.expired))
    with pytest.raises(ka.ExtractFillError, match="not approved or active"):
        await fill(study_home, cluster)
    assert cluster.calls == []


@pytest.mark.parametrize("overrides, message", [
    ({"service_url": "http://bm-service:10101/services/bubble-manager/"}, "cannot resolve names"),
    ({"service_url": "http://10.96.0.20:8080/services/bubble-manager/"}, "only port"),
    ({"service_url": "https://10.96.0.20:10101/"}, "must be http"),
    ({"release_namespace": ""}, "release_namespace is empty"),
    ({"image": ""}, "image is empty"),
    ({"service_pod_labels": {}}, "would select every pod"),
])
async def test_bad_settings_are_named_before_anything_is_created(study_home, cluster, overrides, message):
    with pytest.raises(ValueError, match=message):
        await fill(study_home, cluster, **overrides)
    assert cluster.calls == []
    assert not audit(study_home.context, "transfer.token-issued")


def test_the_hook_does_nothing_unless_the_site_runs_on_kubernetes(study_home):
    assert ka.publish_extract(study_home.context, SLUG) is None
    assert not audit(study_home.context, "transfer.")


async def test_the_hook_refuses_to_block_the_services_event_loop(study_home):
    study_home.context.settings.config.KubeStudyJobs.enabled = True
    try:
        with pytest.raises(RuntimeError, match="worker thread"):
            ka.publish_extract(study_home.context, SLUG)
    finally:
        study_home.context.settings.config.KubeStudyJobs.enabled = False


# --- end to end: the Job's real command against the real endpoint ---------------------------------

def job_runner(volumes: dict[str, Path], secrets_root: Path):
    """Runs a Job as the kubelet would, closely enough: its secret as files, its claims as folders."""

    async def run(job: dict, cluster) -> str:
        spec = job["spec"]["template"]["spec"]
        env = {item["name"]: item["value"] for item in spec["containers"][0]["env"]}
        secret_name = next(v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v)
        secret = cluster.objects[("secret", "bubbles", secret_name)]
        folder = secrets_root / secret_name
        folder.mkdir(parents=True)
        for key, value in secret["stringData"].items():
            (folder / key).write_text(value)
        claim = next(v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
                     if "persistentVolumeClaim" in v and not v["persistentVolumeClaim"]["readOnly"])
        volumes.setdefault(claim, secrets_root.parent / "volumes" / claim).mkdir(parents=True, exist_ok=True)
        env.update(BUBBLE_JOB_SECRETS=str(folder), BUBBLE_EXTRACT_DIR=str(volumes[claim]))
        code = await asyncio.to_thread(kube_fill.main, env)
        return "Complete" if code == 0 else "Failed"

    return run


async def test_end_to_end_the_job_fills_the_volume_from_the_service(study_home, cluster, transfer_service, tmp_path):
    volumes: dict[str, Path] = {}
    cluster.job_runner = job_runner(volumes, tmp_path / "secrets")
    report = await fill(study_home, cluster, port=transfer_service.port)
    volume = volumes["extract-t2d-statins"]
    source = study_home.home / "studies" / SLUG
    assert (volume / "extract.duckdb").read_bytes() == (source / "extract.duckdb").read_bytes()
    assert (volume / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()
    assert stat.S_IMODE((volume / "extract.duckdb").stat().st_mode) == 0o444
    with duckdb.connect(str(volume / "extract.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM measurement").fetchone()[0] == 50
    assert claim_annotations(cluster) == {MANIFEST_ANNOTATION: report.manifest_sha256}
    (issued,) = audit(study_home.context, "transfer.token-issued")
    assert tt.token_state(study_home.context, issued.detail["token"])["outcome"] == "completed"
    actions = [e.action for e in audit(study_home.context, "")]
    assert actions.index("transfer.redeemed") < actions.index("extract.transferred") < \
        actions.index("extract.volume-filled")
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == []


async def test_end_to_end_a_rebuild_during_the_fill_marks_nothing(study_home, cluster, transfer_service, tmp_path):
    """The extract changes between the token and the download: the service refuses, the Job fails, no mark."""
    from tests.hubfixture import write_fixture_extract

    volumes: dict[str, Path] = {}
    run = job_runner(volumes, tmp_path / "secrets")

    async def rebuilt_first(job: dict, cluster_) -> str:
        write_fixture_extract(study_home.context, SLUG, study_home.study.request_hash, persons=10)
        return await run(job, cluster_)

    cluster.job_runner = rebuilt_first
    with pytest.raises(ka.ExtractFillError, match="was not filled"):
        await fill(study_home, cluster, port=transfer_service.port)
    assert sorted(p.name for p in volumes["extract-t2d-statins"].iterdir()) == []
    assert MANIFEST_ANNOTATION not in claim_annotations(cluster)
    refused = [e.detail["reason"] for e in audit(study_home.context, "transfer.refused")]
    assert refused == ["stale-manifest"]
    assert cluster.names("secret") == [] and cluster.names("networkpolicy") == []


async def test_end_to_end_refilling_after_a_rebuild_brings_the_new_extract(study_home, cluster, transfer_service,
                                                                           tmp_path):
    from tests.hubfixture import write_fixture_extract

    volumes: dict[str, Path] = {}
    cluster.job_runner = job_runner(volumes, tmp_path / "secrets")
    first = await fill(study_home, cluster, port=transfer_service.port)
    write_fixture_extract(study_home.context, SLUG, study_home.study.request_hash, persons=20)
    second = await fill(study_home, cluster, port=transfer_service.port)
    assert first.manifest_sha256 != second.manifest_sha256
    assert claim_annotations(cluster) == {MANIFEST_ANNOTATION: second.manifest_sha256}
    body = json.loads((volumes["extract-t2d-statins"] / "manifest.json").read_text())["manifest"]
    assert body["persons"] == 20


async def test_the_spawner_opens_a_bubble_only_on_a_volume_the_fill_marked(study_home, cluster):
    from bubble_manager.runtime.spec import SpawnRefused

    from .conftest import make_spawner

    await fill(study_home, cluster)
    spawner = make_spawner(study_home.home)
    assert await spawner.start() == "http://10.1.2.3:8888"
    await spawner.stop()
    cluster.job_runner, cluster.job_outcome = None, "Failed"
    with pytest.raises(ka.ExtractFillError):
        await fill(study_home, cluster)
    with pytest.raises(SpawnRefused) as refused:
        await make_spawner(study_home.home).start()
    assert refused.value.reason == "stale-extract"


CALL_TO_RBAC = {  # the fake API's (verb, kind) -> (API group, resource, RBAC verb) of the real call
    ("create", "pvc"): ("", "persistentvolumeclaims", "create"), ("patch", "pvc"): ("", "persistentvolumeclaims", "patch"),
    ("create", "secret"): ("", "secrets", "create"), ("patch", "secret"): ("", "secrets", "patch"),
    ("delete", "secret"): ("", "secrets", "delete"),
    ("create", "networkpolicy"): ("networking.k8s.io", "networkpolicies", "create"),
    ("replace", "networkpolicy"): ("networking.k8s.io", "networkpolicies", "update"),
    ("delete", "networkpolicy"): ("networking.k8s.io", "networkpolicies", "delete"),
    ("create", "job"): ("batch", "jobs", "create"), ("delete", "job"): ("batch", "jobs", "delete"),
    ("read", "job"): ("batch", "jobs/status", "get"),  # read_namespaced_job_status
    ("read", "pvc"): ("", "persistentvolumeclaims", "get"),
    ("list", "pvc"): ("", "persistentvolumeclaims", "list"),  # a study's claims by label: to collect, to delete
    ("delete", "pvc"): ("", "persistentvolumeclaims", "delete"),  # ... deleted once its archive is verified
}


async def test_the_service_role_grants_exactly_what_fills_collects_and_closings_call(study_home, cluster, options):
    from .chart import find, rendered

    await fill(study_home, cluster)  # a fill that succeeds
    leftover = to_manifest(ka.job_network_policy(options, job_name_="x", kind="extract", slug=SLUG,
                                                 service=ka.ServicePeer("bubble-manager", SERVICE_LABELS, 10101)))
    cluster.job_runner, cluster.job_outcome = None, None  # a Job that overruns, whose policy name is taken
    original = ka.fill_targets

    def colliding(*arguments, **keywords):
        targets = original(*arguments, **keywords)
        leftover["metadata"]["name"] = f"{targets[0].job}-net"
        cluster.objects[("networkpolicy", "bubbles", leftover["metadata"]["name"])] = leftover
        return targets

    ka.fill_targets = colliding
    try:
        with pytest.raises(ka.ExtractFillError):
            await ka.fill_study_extract(study_home.context, SLUG, apis=apis(cluster), timeout=0.2,
                                        settings=settings(study_home.context))
    finally:
        ka.fill_targets = original
    from bubble_manager.runtime import kube_snapshot

    collected = await kube_snapshot.collect_study_workspaces(  # its Job's calls are the fill's; it reads claims
        study_home.context, SLUG, apis=apis(cluster), timeout=5, settings=settings(study_home.context))
    assert collected.job is None
    from bubble_manager.runtime import kube_volumes

    from .test_volumes import archive_study

    number = archive_study(study_home)  # its claims go once closed (a closing calls this after the archive verified)
    removal = await kube_volumes.remove_study_volumes(study_home.context, SLUG, archive_number=number,
                                                      apis=apis(cluster), settings=settings(study_home.context))
    assert removal.removed == ["extract-t2d-statins"]
    called = {CALL_TO_RBAC[(verb, kind)] for verb, kind, _ in cluster.calls}
    role = next(r for r in find(rendered("default"), "Role") if r["metadata"]["name"].endswith("-service"))
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert called == granted


# --- the CLI: `extract publish`, and `extract build` refilling an active study's volume ------------

KUBE_SITE_CONFIG = f"""
c.KubeStudyJobs.enabled = True
c.KubeStudyJobs.release_namespace = "bubble-manager"
c.KubeStudyJobs.service_url = "http://10.96.0.20:10101/services/bubble-manager/"
c.KubeStudyJobs.image = "{IMAGE}"
c.KubeStudyJobs.poll_seconds = 0.02
"""


@pytest.fixture
def kube_cli(monkeypatch):
    """The CLI's own clients are the recording fake (a Kubernetes site's CLI runs in the service pod)."""
    from .fake_kube import FakeCluster

    fake = FakeCluster()
    monkeypatch.setattr(ka, "in_cluster_apis", lambda: apis(fake))
    return fake


def test_extract_publish_fills_the_volume_on_a_kubernetes_site_and_says_so_elsewhere(study_home, kube_cli, capsys):
    from bubble_manager.cli import main

    home = str(study_home.home)
    assert main(["--home", home, "extract", "publish", SLUG, "--actor", "admin"]) == 0
    assert "does not run the Kubernetes profile" in capsys.readouterr().out and kube_cli.calls == []
    (study_home.home / "bubble_manager_config.py").write_text(KUBE_SITE_CONFIG)
    kube_cli.job_outcome = "Failed"
    assert main(["--home", home, "extract", "publish", SLUG, "--actor", "admin"]) != 0
    assert "its volume was not filled" in capsys.readouterr().err
    assert MANIFEST_ANNOTATION not in claim_annotations(kube_cli)
    kube_cli.job_runner = token_only_runner(study_home.context)
    assert main(["--home", home, "--json", "extract", "publish", SLUG, "--actor", "admin"]) == 0
    assert json.loads(capsys.readouterr().out)["volumes"] == ["extract-t2d-statins"]
    assert claim_annotations(kube_cli) == {MANIFEST_ANNOTATION: manifest_sha256(study_home.home)}
    filled = audit(study_home.context, "extract.volume-filled")[-1]
    assert filled.actor == "admin"


def test_a_rebuild_by_the_cli_refills_the_volume_of_an_active_study(activatable_home, frozen_clock, kube_cli, capsys):
    from bubble_manager.cli import main
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context

    from ..lifecycle.conftest import CONFIG, START, RecordingHub, approved_study, at, steps_of, tick

    (activatable_home / "bubble_manager_config.py").write_text(CONFIG)
    ctx = Context.open(load_settings(activatable_home))
    try:
        frozen_clock.set(at(START, 0))
        approved_study(ctx, "diab")
        assert steps_of(tick(ctx, RecordingHub())) == [("diab", "activate")]  # a local activation: no volume yet
        (activatable_home / "bubble_manager_config.py").write_text(CONFIG + KUBE_SITE_CONFIG)
        frozen_clock.set(at(START, 3))
        kube_cli.job_runner = token_only_runner(ctx, study="diab")
        home = str(activatable_home)
        assert main(["--home", home, "--json", "extract", "build", "diab", "--actor", "admin", "--no-progress"]) == 0
        built = json.loads(capsys.readouterr().out)
        assert built["volumes"] == ["extract-diab"]
        sha = hashlib.sha256((activatable_home / "studies" / "diab" / "manifest.json").read_bytes()).hexdigest()
        assert claim_annotations(kube_cli, "extract-diab") == {MANIFEST_ANNOTATION: sha}
    finally:
        ctx.close()
