"""An in-memory Kubernetes API that records every call, shaped like the kubernetes_asyncio clients
KubeSpawner 7 uses: `CoreV1Api` (pods with list/watch for its reflectors, PVCs, secrets, events),
`NetworkingV1Api` (our NetworkPolicies) and `BatchV1Api` (study Jobs).

Objects are stored as the plain dicts the API server would hold; pods go Pending then Running (or
stay Pending, or are refused, as a test asks) and their changes are streamed to open watches the
way the API server streams them (one JSON event per line), so KubeSpawner's own reflector code runs
unchanged. `calls` lists (verb, kind, name) in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

from kubernetes_asyncio.client.rest import ApiException

from bubble_manager.runtime.kube_objects import to_manifest


class FakeStreamContent:
    def __init__(self, queue: asyncio.Queue):
        self.queue = queue

    async def readline(self) -> bytes:
        return await self.queue.get()


class FakeResponse:
    """What `_preload_content=False` returns: a list body, or a watch stream."""

    def __init__(self, body: dict | None = None, queue: asyncio.Queue | None = None):
        self.ok, self.status, self.reason = True, 200, "OK"
        self._body = body
        self.content = FakeStreamContent(queue) if queue is not None else None

    async def read(self) -> bytes:
        return json.dumps(self._body).encode()

    async def json(self) -> dict:
        return self._body or {}

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeCluster:
    """The shared state; `core`, `networking` and `batch` are the three API objects."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.watchers: dict[str, list[asyncio.Queue]] = {}
        self.versions = itertools.count(1)
        self.pod_behaviour = "run"  # run | pending | refuse
        self.pod_ips = (f"10.1.2.{n}" for n in itertools.count(3))  # each new pod its own address
        self.job_outcome = "Complete"  # Complete | Failed
        self.fail_next: dict[tuple[str, str], int] = {}
        self.deleted: dict[tuple[str, str], dict] = {}  # the last state of every deleted object
        self.job_runner = None  # async (job manifest, cluster) -> outcome: runs a Job's command for real
        self.job_errors: list[Exception] = []
        self.core = CoreV1(self)
        self.networking = NetworkingV1(self)
        self.batch = BatchV1(self)

    # --- generic verbs ---

    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, _, name) in self.objects if k == kind)

    def _maybe_fail(self, verb: str, kind: str) -> None:
        status = self.fail_next.pop((verb, kind), None)
        if status:
            raise ApiException(status=status, reason=f"injected {status} on {verb} {kind}")

    def create(self, kind: str, namespace: str, body: Any) -> dict:
        manifest = body if isinstance(body, dict) else to_manifest(body)
        name = manifest["metadata"]["name"]
        self.calls.append(("create", kind, name))
        self._maybe_fail("create", kind)
        if (kind, namespace, name) in self.objects:
            raise ApiException(status=409, reason=f"{kind} {name} already exists")
        manifest = json.loads(json.dumps(manifest))
        manifest["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()),
                                    resourceVersion=str(next(self.versions)))
        self.objects[(kind, namespace, name)] = manifest
        return manifest

    def read(self, kind: str, namespace: str, name: str) -> dict:
        self.calls.append(("read", kind, name))
        return self._stored(kind, namespace, name)

    def _stored(self, kind: str, namespace: str, name: str) -> dict:
        try:
            return self.objects[(kind, namespace, name)]
        except KeyError:
            raise ApiException(status=404, reason=f"{kind} {name} not found") from None

    def delete(self, kind: str, namespace: str, name: str) -> dict:
        self.calls.append(("delete", kind, name))
        self._maybe_fail("delete", kind)
        try:
            manifest = self.objects.pop((kind, namespace, name))
            self.deleted[(kind, name)] = manifest
            return manifest
        except KeyError:
            raise ApiException(status=404, reason=f"{kind} {name} not found") from None

    def replace(self, kind: str, namespace: str, name: str, body: Any) -> dict:
        self.calls.append(("replace", kind, name))
        self._stored(kind, namespace, name)
        manifest = json.loads(json.dumps(to_manifest(body)))
        manifest["metadata"]["namespace"] = namespace
        self.objects[(kind, namespace, name)] = manifest
        return manifest

    def patch(self, kind: str, namespace: str, name: str, body: dict) -> dict:
        self.calls.append(("patch", kind, name))
        current = self._stored(kind, namespace, name)
        merge(current, json.loads(json.dumps(body)))
        return current

    def publish(self, kind: str, event: str, manifest: dict) -> None:
        line = (json.dumps({"type": event, "object": manifest}) + "\n").encode()
        for queue in self.watchers.get(kind, []):
            queue.put_nowait(line)

    def list_response(self, kind: str, namespace: str, watch: bool, label_selector: str | None) -> FakeResponse:
        if watch:
            queue: asyncio.Queue = asyncio.Queue()
            self.watchers.setdefault(kind, []).append(queue)
            return FakeResponse(queue=queue)
        items = [m for (k, ns, _), m in self.objects.items() if k == kind and ns == namespace
                 and matches(m, label_selector)]
        return FakeResponse({"items": items, "metadata": {"resourceVersion": str(next(self.versions))}})


def as_model(manifest: dict, type_name: str) -> Any:
    """The client model the real API returns for `manifest` (deserialised as kubernetes_asyncio does)."""
    from types import SimpleNamespace

    from kubernetes_asyncio.client import ApiClient

    # deserialising needs no connection: skip the constructor, which would open an HTTP session
    return ApiClient.__new__(ApiClient).deserialize(SimpleNamespace(data=json.dumps(manifest)), type_name)


def merge(target: dict, patch: dict) -> None:
    """A merge patch as the API server applies it: null deletes a key, maps merge, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            merge(target[key], value)
        else:
            target[key] = value


def matches(manifest: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = manifest["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (part.split("=", 1) for part in selector.split(",")))


class FakeApiClient:
    """What an adapter that made its own clients closes when done; `closed` counts the closes."""

    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


class CoreV1:
    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.api_client = FakeApiClient()

    async def create_namespaced_pod(self, namespace, body, **_):  # noqa: ANN001
        if self.cluster.pod_behaviour == "refuse":
            self.cluster.calls.append(("create", "pod", body.metadata.name))
            raise ApiException(status=403, reason="forbidden by admission")
        manifest = self.cluster.create("pod", namespace, body)
        manifest["status"] = {"phase": "Pending", "podIP": None}
        self.cluster.publish("pod", "ADDED", manifest)
        if self.cluster.pod_behaviour == "run":
            asyncio.get_running_loop().call_later(0.05, self._run, namespace, manifest["metadata"]["name"])
        return manifest

    def _run(self, namespace: str, name: str) -> None:
        manifest = self.cluster.objects.get(("pod", namespace, name))
        if manifest is None:
            return
        manifest["status"] = {"phase": "Running", "podIP": next(self.cluster.pod_ips),
                              "containerStatuses": [{"name": "notebook", "ready": True,
                                                     "state": {"running": {"startedAt": "2027-01-10T09:00:00Z"}}}]}
        self.cluster.publish("pod", "MODIFIED", manifest)

    async def delete_namespaced_pod(self, name, namespace, **_):  # noqa: ANN001
        manifest = self.cluster.delete("pod", namespace, name)
        self.cluster.publish("pod", "DELETED", manifest)
        return manifest

    async def read_namespaced_pod(self, name, namespace, **_):  # noqa: ANN001
        return self.cluster.read("pod", namespace, name)

    async def list_namespaced_pod(self, namespace, label_selector=None, watch=False, **_):  # noqa: ANN001
        return self.cluster.list_response("pod", namespace, watch, label_selector)

    async def list_namespaced_event(self, namespace, label_selector=None, watch=False, **_):  # noqa: ANN001
        return self.cluster.list_response("event", namespace, watch, label_selector)

    async def create_namespaced_persistent_volume_claim(self, namespace, body, **_):  # noqa: ANN001
        return self.cluster.create("pvc", namespace, body)

    async def read_namespaced_persistent_volume_claim(self, name, namespace, **_):  # noqa: ANN001
        return as_model(self.cluster.read("pvc", namespace, name), "V1PersistentVolumeClaim")

    async def list_namespaced_persistent_volume_claim(self, namespace, label_selector=None, **_):  # noqa: ANN001
        self.cluster.calls.append(("list", "pvc", label_selector or ""))
        items = [m for (k, ns, _), m in self.cluster.objects.items() if k == "pvc" and ns == namespace
                 and matches(m, label_selector)]
        return as_model({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "items": items, "metadata": {}},
                        "V1PersistentVolumeClaimList")

    async def delete_namespaced_persistent_volume_claim(self, name, namespace, **_):  # noqa: ANN001
        return self.cluster.delete("pvc", namespace, name)

    async def patch_namespaced_persistent_volume_claim(self, name, namespace, body, **_):  # noqa: ANN001
        return self.cluster.patch("pvc", namespace, name, body)

    async def create_namespaced_secret(self, namespace, body, **_):  # noqa: ANN001
        return self.cluster.create("secret", namespace, body)

    async def patch_namespaced_secret(self, name, namespace, body, **_):  # noqa: ANN001
        return self.cluster.patch("secret", namespace, name, body)

    async def delete_namespaced_secret(self, name, namespace, **_):  # noqa: ANN001
        return self.cluster.delete("secret", namespace, name)


class NetworkingV1:
    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster

    async def create_namespaced_network_policy(self, namespace, body, **_):  # noqa: ANN001
        return self.cluster.create("networkpolicy", namespace, body)

    async def replace_namespaced_network_policy(self, name, namespace, body, **_):  # noqa: ANN001
        return self.cluster.replace("networkpolicy", namespace, name, body)

    async def delete_namespaced_network_policy(self, name, namespace, **_):  # noqa: ANN001
        return self.cluster.delete("networkpolicy", namespace, name)


class BatchV1:
    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster

    async def create_namespaced_job(self, namespace, body, **_):  # noqa: ANN001
        manifest = self.cluster.create("job", namespace, body)
        manifest["status"] = {}
        if self.cluster.job_runner is not None:
            asyncio.ensure_future(run_job(self.cluster, namespace, manifest))
        else:
            asyncio.get_running_loop().call_later(0.05, self._finish, namespace, manifest["metadata"]["name"])
        return as_model(manifest, "V1Job")


    def _finish(self, namespace: str, name: str) -> None:
        manifest = self.cluster.objects.get(("job", namespace, name))
        if manifest is not None and self.cluster.job_outcome:
            manifest["status"] = {"conditions": [{"type": self.cluster.job_outcome, "status": "True"}]}

    async def read_namespaced_job_status(self, name, namespace, **_):  # noqa: ANN001
        return as_model(self.cluster.read("job", namespace, name), "V1Job")

    async def delete_namespaced_job(self, name, namespace, **_):  # noqa: ANN001
        return self.cluster.delete("job", namespace, name)


async def run_job(cluster: FakeCluster, namespace: str, manifest: dict) -> None:
    """Run a Job through `cluster.job_runner`, then record its outcome as the Job controller would."""
    try:
        outcome = await cluster.job_runner(manifest, cluster)
    except Exception as error:  # a broken test runner is a failed Job, not a hang
        cluster.job_errors.append(error)
        outcome = "Failed"
    if ("job", namespace, manifest["metadata"]["name"]) in cluster.objects:
        manifest["status"] = {"conditions": [{"type": outcome, "status": "True"}]}
