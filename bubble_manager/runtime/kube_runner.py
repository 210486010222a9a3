"""Runs a study Job (extract fill, snapshot) with the secret and the NetworkPolicy made for it alone.

Order: create the Job's NetworkPolicy if it has one (before any pod of the Job can exist), create
the secret, create the Job, make the Job own the secret (so the cluster's garbage collector removes
it with the Job should the hub die), wait for the Job to end, delete the secret in every case, then
the policy. A Job that times out is deleted too, so it never outlives its secret half-started;
were its pod still terminating when the policy goes, the namespace's default-deny policy leaves it
no network at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubernetes_asyncio.client.rest import ApiException

from .kube_jobs import secret_owner_patch
from .kube_objects import extract_filled_patch

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """The Job ended without success (or did not end in time); its secret is already deleted."""


def job_outcome(job: Any) -> str | None:
    """'Complete', 'Failed' or None while running, from a V1Job."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return condition.type
    return None


class StudyJobRunner:
    def __init__(self, core_api: Any, batch_api: Any, namespace: str, *, poll_seconds: float = 2.0,
                 network_api: Any = None):
        self.core = core_api
        self.batch = batch_api
        self.network = network_api
        self.namespace = namespace
        self.poll_seconds = poll_seconds

    async def run(self, job: Any, secret: Any | None, *, timeout: float, policy: Any | None = None) -> None:
        """Run `job` to its end; raise JobFailed unless it completed."""
        name = job.metadata.name
        if secret is not None:
            volumes = job.spec.template.spec.volumes or []
            if not any(v.secret and v.secret.secret_name == secret.metadata.name for v in volumes):
                raise ValueError(f"job {name} does not mount secret {secret.metadata.name}; build both together")
        if policy is not None:
            self._check_policy_selects(job, policy)
            await self._create_policy(policy)
        try:
            if secret is not None:
                await self.core.create_namespaced_secret(namespace=self.namespace, body=secret)
            try:
                created = await self.batch.create_namespaced_job(namespace=self.namespace, body=job)
                if secret is not None:
                    await self.core.patch_namespaced_secret(
                        name=secret.metadata.name, namespace=self.namespace,
                        body=secret_owner_patch(name, created.metadata.uid))
                outcome = await self._wait(name, timeout)
            finally:
                if secret is not None:
                    await self._delete_secret(secret.metadata.name)
        finally:
            if policy is not None:
                await self._delete_policy(policy.metadata.name)
        if outcome != "Complete":
            raise JobFailed(f"job {self.namespace}/{name} {'failed' if outcome else 'did not finish in time'}; "
                            f"see `kubectl -n {self.namespace} logs job/{name}`")

    async def fill_extract(self, job: Any, secret: Any | None, *, claims: list[str], manifest_sha256: str,
                           timeout: float, policy: Any | None = None) -> None:
        """Run the extract Job, then mark its claims as holding that manifest (the spawner checks it)."""
        extract_filled_patch(manifest_sha256)  # a bad hash fails before anything is created
        await self.run(job, secret, timeout=timeout, policy=policy)
        await self.mark_extract(claims, manifest_sha256)

    async def mark_extract(self, claims: list[str], manifest_sha256: str) -> None:
        """Annotate extract claims as holding that manifest; the spawner mounts no other."""
        patch = extract_filled_patch(manifest_sha256)
        for claim in claims:
            await self.core.patch_namespaced_persistent_volume_claim(name=claim, namespace=self.namespace,
                                                                     body=patch)

    def _check_policy_selects(self, job: Any, policy: Any) -> None:
        if self.network is None:
            raise ValueError(f"job {job.metadata.name} comes with a NetworkPolicy: give the runner a NetworkingV1Api")
        selector = (policy.spec.pod_selector.match_labels or {}) if policy.spec.pod_selector else {}
        labels = (job.spec.template.metadata.labels or {}) if job.spec.template.metadata else {}
        if not selector or not selector.items() <= labels.items():
            raise ValueError(f"NetworkPolicy {policy.metadata.name} does not select the pods of job "
                             f"{job.metadata.name}; build both together")

    async def _create_policy(self, policy: Any) -> None:
        try:
            await self.network.create_namespaced_network_policy(namespace=self.namespace, body=policy)
        except ApiException as error:
            if error.status != 409:
                raise
            await self.network.replace_namespaced_network_policy(name=policy.metadata.name, namespace=self.namespace,
                                                                 body=policy)

    async def _delete_policy(self, name: str) -> None:
        try:
            await self.network.delete_namespaced_network_policy(name=name, namespace=self.namespace)
        except ApiException as error:
            if error.status != 404:
                log.exception("could not delete job NetworkPolicy %s/%s; delete it by hand", self.namespace, name)
                raise

    async def _wait(self, name: str, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            outcome = job_outcome(await self.batch.read_namespaced_job_status(name=name, namespace=self.namespace))
            if outcome:
                return outcome
            if loop.time() >= deadline:
                await self._delete_job(name)
                return None
            await asyncio.sleep(self.poll_seconds)

    async def _delete_job(self, name: str) -> None:
        try:
            await self.batch.delete_namespaced_job(name=name, namespace=self.namespace,
                                                   propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    async def _delete_secret(self, name: str) -> None:
        try:
            await self.core.delete_namespaced_secret(name=name, namespace=self.namespace)
        except ApiException as error:
            if error.status != 404:
                log.exception("could not delete job secret %s/%s; delete it by hand", self.namespace, name)
                raise
