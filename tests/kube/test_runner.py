"""Study Jobs get a secret made for them alone, deleted by the hub as soon as the Job ends, whatever the end."""

from __future__ import annotations

import pytest

from bubble_manager.runtime import kube_jobs
from bubble_manager.runtime.kube_objects import MANIFEST_ANNOTATION, extract_claim, to_manifest
from bubble_manager.runtime.kube_runner import JobFailed, StudyJobRunner

pytestmark = pytest.mark.kube
SHA = "cd" * 32
NAME = "extract-t2d-statins-r1"


def job_and_secret(options):
    secret = kube_jobs.job_secret(options, name=NAME, kind="extract", slug="t2d-statins",
                                  data={"recipients.txt": "age1example"})
    job = kube_jobs.extract_job(options, slug="t2d-statins", name=NAME, command=["bubble-manager", "extract", "fill"],
                                manifest_sha256=SHA, secret_name=NAME)
    return job, secret


def runner(cluster) -> StudyJobRunner:
    return StudyJobRunner(cluster.core, cluster.batch, "bubbles", poll_seconds=0.02, network_api=cluster.networking)


def policy_for(options, name=NAME):
    from .conftest import SERVICE_LABELS

    return kube_jobs.job_network_policy(options, job_name_=name, kind="extract", slug="t2d-statins",
                                        service=kube_jobs.ServicePeer("bubble-manager", SERVICE_LABELS, 10101))


async def test_secret_before_job_owned_by_it_and_deleted_when_it_ends(cluster, options):
    claim = to_manifest(extract_claim(options, "t2d-statins"))
    cluster.objects[("pvc", "bubbles", claim["metadata"]["name"])] = claim
    job, secret = job_and_secret(options)
    await runner(cluster).fill_extract(job, secret, claims=[claim["metadata"]["name"]], manifest_sha256=SHA,
                                       timeout=5)
    verbs = [(verb, kind) for verb, kind, _ in cluster.calls if verb != "read"]
    assert verbs == [("create", "secret"), ("create", "job"), ("patch", "secret"), ("delete", "secret"),
                     ("patch", "pvc")]
    assert cluster.names("secret") == []
    assert cluster.objects[("pvc", "bubbles", "extract-t2d-statins")]["metadata"]["annotations"] == {
        MANIFEST_ANNOTATION: SHA}


async def test_a_failed_job_loses_its_secret_and_marks_nothing(cluster, options):
    cluster.job_outcome = "Failed"
    job, secret = job_and_secret(options)
    with pytest.raises(JobFailed, match="failed"):
        await runner(cluster).fill_extract(job, secret, claims=["extract-t2d-statins"], manifest_sha256=SHA,
                                           timeout=5)
    assert cluster.names("secret") == []
    assert ("patch", "pvc", "extract-t2d-statins") not in cluster.calls


async def test_a_job_that_does_not_end_in_time_is_deleted_with_its_secret(cluster, options):
    cluster.job_outcome = None
    job, secret = job_and_secret(options)
    with pytest.raises(JobFailed, match="did not finish"):
        await runner(cluster).run(job, secret, timeout=0.1)
    assert cluster.names("secret") == [] and cluster.names("job") == []


async def test_a_job_that_cannot_be_created_leaves_no_secret(cluster, options):
    cluster.fail_next[("create", "job")] = 403
    job, secret = job_and_secret(options)
    with pytest.raises(Exception, match="403"):
        await runner(cluster).run(job, secret, timeout=5)
    assert cluster.names("secret") == [] and cluster.names("job") == []


async def test_a_secret_the_job_does_not_mount_is_refused(cluster, options):
    job, _ = job_and_secret(options)
    other = kube_jobs.job_secret(options, name="other", kind="extract", slug="t2d-statins", data={"a": "b"})
    with pytest.raises(ValueError, match="does not mount"):
        await runner(cluster).run(job, other, timeout=5)
    assert cluster.calls == []


async def test_a_job_policy_exists_before_the_job_and_goes_after_its_secret(cluster, options):
    job, secret = job_and_secret(options)
    await runner(cluster).fill_extract(job, secret, claims=[], manifest_sha256=SHA, timeout=5,
                                       policy=policy_for(options))
    verbs = [(verb, kind) for verb, kind, _ in cluster.calls if verb != "read"]
    assert verbs == [("create", "networkpolicy"), ("create", "secret"), ("create", "job"), ("patch", "secret"),
                     ("delete", "secret"), ("delete", "networkpolicy")]
    assert cluster.names("networkpolicy") == [] and cluster.names("secret") == []


@pytest.mark.parametrize("failure", ["job", "secret"])
async def test_nothing_is_left_when_the_job_or_its_secret_cannot_be_created(cluster, options, failure):
    cluster.fail_next[("create", failure)] = 403
    job, secret = job_and_secret(options)
    with pytest.raises(Exception, match="403"):
        await runner(cluster).run(job, secret, timeout=5, policy=policy_for(options))
    assert cluster.names("networkpolicy") == [] and cluster.names("secret") == [] and cluster.names("job") == []


async def test_a_policy_that_does_not_select_the_jobs_pods_is_refused(cluster, options):
    job, secret = job_and_secret(options)
    with pytest.raises(ValueError, match="does not select the pods"):
        await runner(cluster).run(job, secret, timeout=5, policy=policy_for(options, name="another-job"))
    assert cluster.calls == []


def test_the_fake_api_has_the_real_clients_methods_and_parameters():
    """Whatever the spawner and runner call on the fake exists on kubernetes_asyncio with the same parameters."""
    import inspect

    from kubernetes_asyncio import client

    from .fake_kube import BatchV1, CoreV1, NetworkingV1

    for fake, real in ((CoreV1, client.CoreV1Api), (NetworkingV1, client.NetworkingV1Api), (BatchV1, client.BatchV1Api)):
        for name, method in inspect.getmembers(fake, inspect.iscoroutinefunction):
            assert hasattr(real, name), f"{real.__name__} has no {name}"
            real_required = [p for p in inspect.signature(getattr(real, name)).parameters.values()
                             if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty and p.name != "self"]
            fake_params = list(inspect.signature(method).parameters)[1:]
            assert [p.name for p in real_required] == [p for p in fake_params if p in
                                                       {r.name for r in real_required}], name
