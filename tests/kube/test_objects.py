"""The pure builders as plain data: golden manifests, strict schema validation, hardening properties."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from bubble_manager.runtime import kube_jobs, kube_objects as ko
from bubble_manager.runtime.kube_checks import policy_problems, pod_problems
from bubble_manager.runtime.spec import BubbleSpec, Mount, Resources, build_spec

from ..test_studies import active
from .conftest import HUB_LABELS, NOW, SERVICE_LABELS
from .golden import assert_golden, validate_strict

pytestmark = pytest.mark.kube
SHA = "ab" * 32
POD = "jupyter-alice--t2d-statins"


@pytest.fixture
def spec() -> BubbleSpec:
    return build_spec(active(), "alice", "t2d-statins", home=Path("/srv/bubble-manager"), now=NOW, uid=None,
                      manifest_sha256=SHA, command=("jupyterhub-singleuser",))


def built(options, spec) -> dict[str, dict]:
    """Every builder, rendered with fixed inputs."""
    secret = kube_jobs.job_secret(options, name="extract-t2d-statins-r1", kind="extract", slug="t2d-statins",
                                  data={"recipients.txt": "age1example", "warehouse.url": "duckdb:///source/w.duckdb"})
    return {
        "bubble-pod": ko.bubble_pod(spec, options, name=POD, now=NOW, env={"JUPYTERHUB_API_TOKEN": "token"},
                                    labels={"component": "bubble"}),
        "bubble-network-policy": ko.bubble_network_policy(options, pod_name=POD, study="t2d-statins"),
        "workspace-claim": ko.workspace_claim(options, "t2d-statins", "alice"),
        "shared-claim": ko.shared_claim(options, "t2d-statins"),
        "extract-claim": ko.extract_claim(options, "t2d-statins"),
        "extract-claim-per-member": ko.extract_claim(replace(options, extract_mode="per-member"), "t2d-statins",
                                                     "alice"),
        "job-secret": secret,
        "extract-job": kube_jobs.extract_job(options, slug="t2d-statins", name="extract-t2d-statins-r1",
                                             command=["python", "-m", "bubble_manager.runtime.kube_fill"],
                                             manifest_sha256=SHA, secret_name="extract-t2d-statins-r1",
                                             source_claim="warehouse", env={
                                                 "BUBBLE_TRANSFER_URL": "http://10.96.0.20:10101/services/"
                                                 "bubble-manager/transfer/v1/extracts/t2d-statins"}),
        "extract-job-network-policy": kube_jobs.job_network_policy(
            options, job_name_="extract-t2d-statins-r1", kind="extract", slug="t2d-statins",
            service=kube_jobs.ServicePeer("bubble-manager", SERVICE_LABELS, 10101)),
        "snapshot-job": kube_jobs.snapshot_job(options, slug="t2d-statins", name="snapshot-t2d-statins-r1",
                                               command=["python", "-m", "bubble_manager.runtime.kube_collect"],
                                               members=["alice", "bob"], shared=True,
                                               secret_name="snapshot-t2d-statins-r1", env={
                                                   "BUBBLE_TRANSFER_URL": "http://10.96.0.20:10101/services/"
                                                   "bubble-manager/transfer/v1/workspaces/t2d-statins"}),
    }


def test_every_builder_matches_its_golden_manifest(options, spec):
    for name, obj in built(options, spec).items():
        assert_golden(name, ko.to_manifest(obj))


def test_every_built_object_passes_strict_validation(options, spec):
    for obj in built(options, spec).values():
        validate_strict(ko.to_manifest(obj))


def test_the_validator_rejects_unknown_fields(options, spec):
    pod = ko.to_manifest(ko.bubble_pod(spec, options, name=POD, now=NOW))
    pod["spec"]["containers"][0]["securityContext"]["notAField"] = True
    with pytest.raises(pytest.fail.Exception, match="notAField"):
        validate_strict(pod)


# --- the pod ------------------------------------------------------------------------------------

def test_the_bubble_pod_is_hardened(options, spec):
    pod = ko.to_manifest(ko.bubble_pod(spec, options, name=POD, now=NOW))
    pod_spec, container = pod["spec"], pod["spec"]["containers"][0]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context["privileged"] is False
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False and pod_spec["enableServiceLinks"] is False
    assert not any(pod_spec[flag] for flag in ("hostNetwork", "hostPID", "hostIPC"))
    assert pod_spec["dnsPolicy"] == "None" and pod_spec["dnsConfig"]["nameservers"] == ["127.0.0.1"]
    assert all(set(v) <= {"name", "emptyDir", "persistentVolumeClaim"} for v in pod_spec["volumes"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data/extract.duckdb"]["readOnly"] is True
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod_spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims["extract"] == {"claimName": "extract-t2d-statins", "readOnly": True}
    assert claims["workspace"]["claimName"] == ko.workspace_claim_name("t2d-statins", "alice")
    assert pod_problems(pod) == []


def test_labels_and_annotations_carry_study_and_manifest(options, spec):
    pod = ko.to_manifest(ko.bubble_pod(spec, options, name=POD, now=NOW,
                                       labels={"bubble-manager.io/study": "forged"}))
    assert pod["metadata"]["labels"]["bubble-manager.io/study"] == "t2d-statins"
    assert pod["metadata"]["labels"][ko.BUBBLE_LABEL] == POD
    assert pod["metadata"]["annotations"][ko.MANIFEST_ANNOTATION] == SHA


def test_the_deadline_reaches_the_study_expiry_and_no_further(options, spec):
    for now in (NOW, spec.expires_at - dt.timedelta(seconds=5)):
        pod = ko.bubble_pod(spec, options, name=POD, now=now)
        assert pod.spec.active_deadline_seconds == int((spec.expires_at - now).total_seconds())
    with pytest.raises(ValueError, match="expired"):
        ko.bubble_pod(spec, options, name=POD, now=spec.expires_at)


def test_resources_come_from_the_spec(options, spec):
    custom = replace(spec, resources=Resources(cpu=2.5, memory_bytes=3 * 1024 ** 3))
    resources = ko.bubble_pod(custom, options, name=POD, now=NOW).spec.containers[0].resources
    assert resources.limits == resources.requests == {"cpu": "2500m", "memory": str(3 * 1024 ** 3)}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("uid", 0, "root"), ("gid", 0, "root"), ("hub_pod_labels", {}, "every pod"),
    ("namespace", "Bubbles_NS", "namespace"), ("extract_mode", "copy", "extract_mode"), ("hub_api_port", 53, "port"),
])
def test_options_refuse_unsafe_values(options, field, value, message):
    with pytest.raises(ValueError, match=message):
        replace(options, **{field: value})


def test_long_names_stay_valid_and_distinct():
    long_member = "a.very.long.name.of.a.researcher.at.the.hospital@chu-somewhere.example.org"
    first = ko.workspace_claim_name("a" * 30, long_member)
    second = ko.workspace_claim_name("a" * 30, long_member.upper())
    assert len(first) <= 63 and ko.DNS_NAME.match(first) and first != second


# --- checks catch every weakening ---------------------------------------------------------------

WEAKENINGS = {
    "host path": lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "host network": lambda p: p["spec"].update(hostNetwork=True),
    "token": lambda p: p["spec"].update(automountServiceAccountToken=True),
    "privileged": lambda p: p["spec"]["containers"][0]["securityContext"].update(privileged=True),
    "escalation": lambda p: p["spec"]["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
    "writable root": lambda p: p["spec"]["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
    "root": lambda p: p["spec"]["containers"][0]["securityContext"].update(runAsUser=0),
    "caps": lambda p: p["spec"]["containers"][0]["securityContext"].update(capabilities={"add": ["NET_RAW"]}),
    "seccomp": lambda p: p["spec"]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    "no deadline": lambda p: p["spec"].pop("activeDeadlineSeconds"),
    "secret env": lambda p: p["spec"]["containers"][0]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
    "other claim": lambda p: p["spec"]["volumes"].append(
        {"name": "o", "persistentVolumeClaim": {"claimName": "workspace-other-study-bob"}}),
    "no limits": lambda p: p["spec"]["containers"][0].pop("resources"),
    "host port": lambda p: p["spec"]["containers"][0]["ports"][0].update(hostPort=8888),
}


@pytest.mark.parametrize("weakening", sorted(WEAKENINGS))
def test_pod_checks_catch_each_weakening(options, spec, weakening):
    pod = ko.to_manifest(ko.bubble_pod(spec, options, name=POD, now=NOW))
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert pod_problems(pod, expected_claims=claims) == []
    WEAKENINGS[weakening](pod)
    assert pod_problems(pod, expected_claims=claims)


POLICY_WEAKENINGS = {
    "dns": lambda p: p["spec"]["egress"].append({"to": p["spec"]["egress"][0]["to"], "ports": [{"port": 53,
                                                                                                "protocol": "UDP"}]}),
    "empty rule": lambda p: p["spec"]["egress"].append({}),
    "ip block": lambda p: p["spec"]["egress"][0]["to"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
    "any pod": lambda p: p["spec"]["egress"][0]["to"][0].update(podSelector={}),
    "any namespace": lambda p: p["spec"]["egress"][0]["to"][0].update(namespaceSelector={}),
    "no ports": lambda p: p["spec"]["egress"][0].pop("ports"),
    "other port": lambda p: p["spec"]["egress"][0]["ports"].append({"port": 5432, "protocol": "TCP"}),
    "egress only": lambda p: p["spec"].update(policyTypes=["Ingress"]),
    "open ingress": lambda p: p["spec"]["ingress"].append({}),
}


@pytest.mark.parametrize("weakening", sorted(POLICY_WEAKENINGS))
def test_policy_checks_catch_each_weakening(options, weakening):
    policy = ko.to_manifest(ko.bubble_network_policy(options, pod_name=POD, study="t2d-statins"))
    check = dict(hub_namespace="bubble-manager", hub_labels=HUB_LABELS, hub_port=8081)
    assert policy_problems(policy, **check) == []
    weakened = copy.deepcopy(policy)
    POLICY_WEAKENINGS[weakening](weakened)
    assert policy_problems(weakened, **check)


# --- jobs and their secrets ---------------------------------------------------------------------

def test_jobs_are_hardened_one_shot_and_read_their_inputs_read_only(options, spec):
    objects = built(options, spec)
    for name in ("extract-job", "snapshot-job"):
        job = ko.to_manifest(objects[name])
        template = {"spec": {**job["spec"]["template"]["spec"], "activeDeadlineSeconds":
                             job["spec"]["activeDeadlineSeconds"]}}
        assert pod_problems(template) == [], name
        assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        secret_volume = next(v for v in template["spec"]["volumes"] if "secret" in v)
        assert secret_volume["secret"]["defaultMode"] == 0o400
        mounts = template["spec"]["containers"][0]["volumeMounts"]
        assert next(m for m in mounts if m["name"] == secret_volume["name"])["readOnly"] is True
    snapshot = ko.to_manifest(objects["snapshot-job"])["spec"]["template"]["spec"]["containers"][0]
    writable = [m["mountPath"] for m in snapshot["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]  # it reads the study claims and uploads; nothing of theirs is written
    extract = ko.to_manifest(objects["extract-job"])["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in extract["env"]}["BUBBLE_EXPECTED_MANIFEST_SHA256"] == SHA


def test_job_secrets_are_immutable_and_checked(options):
    secret = kube_jobs.job_secret(options, name="s", kind="snapshot", slug="t2d-statins", data={"a.txt": "x"})
    assert secret.immutable is True and secret.metadata.labels["bubble-manager.io/short-lived"] == "true"
    with pytest.raises(ValueError, match="at least one"):
        kube_jobs.job_secret(options, name="s", kind="snapshot", slug="t2d-statins", data={})
    with pytest.raises(ValueError, match="file names"):
        kube_jobs.job_secret(options, name="s", kind="snapshot", slug="t2d-statins", data={"../x": "y"})


def test_job_inputs_are_checked(options):
    with pytest.raises(ValueError, match="job kind"):
        kube_jobs.job_name("restore", "t2d-statins", "r1")
    with pytest.raises(ValueError, match="run id"):
        kube_jobs.job_name("extract", "t2d-statins", "R_1")
    with pytest.raises(ValueError, match="nothing to snapshot"):
        kube_jobs.snapshot_job(options, slug="t2d-statins", name="n", command=["x"], members=[], shared=False,
                               secret_name=None)
    with pytest.raises(ValueError, match="per-member"):
        ko.extract_claim(replace(options, extract_mode="per-member"), "t2d-statins")
    with pytest.raises(ValueError, match="64 lowercase hex"):
        ko.extract_filled_patch("nothex")


def test_spec_mounts_and_pod_mounts_agree(options, spec):
    """The Kubernetes pod mounts the same targets, read-only where the spec says so."""
    pod = ko.bubble_pod(spec, options, name=POD, now=NOW)
    pod_mounts = {m.mount_path: bool(m.read_only) for m in pod.spec.containers[0].volume_mounts}
    for mount in spec.mounts:
        assert pod_mounts[str(mount.target)] == mount.read_only
    assert isinstance(spec.mounts[0], Mount) and spec.mounts[0].target == PurePosixPath("/data/extract.duckdb")
