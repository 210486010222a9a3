"""Fixtures for the Kubernetes tests: no cluster, a dummy kubeconfig, an in-memory recording API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("kubespawner", reason="the `kube` extra is missing: mk/kube.mk installs it with `make test`")

from jupyterhub import orm  # noqa: E402
from traitlets.config import Config  # noqa: E402

from bubble_manager.runtime import kube  # noqa: E402
from bubble_manager.runtime.kube_objects import KubeOptions  # noqa: E402
from bubble_manager.runtime.spawner_base import close_shared_contexts
from bubble_manager.runtime.spec import StudyPaths
from tests.hubfixture import write_fixture_extract  # noqa: E402
from bubble_manager.store import save_study  # noqa: E402

from ..test_studies import active  # noqa: E402
from .fake_kube import FakeCluster  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
HUB_LABELS = {"app.kubernetes.io/name": "bubble-manager", "app.kubernetes.io/instance": "bm",
              "app.kubernetes.io/component": "hub"}
PROXY_LABELS = {"app.kubernetes.io/name": "bubble-manager", "app.kubernetes.io/instance": "bm",
                "app.kubernetes.io/component": "proxy"}
SERVICE_LABELS = {"app.kubernetes.io/name": "bubble-manager", "app.kubernetes.io/instance": "bm",
                  "app.kubernetes.io/component": "service"}
HUB_IP_URL = "http://10.96.0.10:8081"

DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
    "clusters": [{"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "nobody", "user": {"token": "not-a-token"}}],
    "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody"}}],
}


@pytest.fixture(autouse=True)
def dummy_kubeconfig(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kubespawner loads a kubeconfig when a spawner is built; this one points nowhere and is never used."""
    path = tmp_path_factory.getbasetemp() / "kubeconfig.json"
    path.write_text(json.dumps(DUMMY_KUBECONFIG))
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


@pytest.fixture
def options() -> KubeOptions:
    return KubeOptions(namespace="bubbles", hub_namespace="bubble-manager", hub_pod_labels=HUB_LABELS,
                       proxy_pod_labels=PROXY_LABELS, image="registry.example.org/bubble-manager/bubble:0.1.0")


@pytest.fixture
async def cluster():
    """The fake API, installed where kubespawner's `shared_client` looks for clients of this event loop."""
    from kubespawner import clients

    fake = FakeCluster()
    loop = asyncio.get_running_loop()
    installed = {"CoreV1Api": fake.core, "NetworkingV1Api": fake.networking, "BatchV1Api": fake.batch}
    for name, api in installed.items():
        clients._client_cache[(loop, name, (), ())] = api
    yield fake
    await kube.KubeBubbleSpawner._stop_all_reflectors()
    kube.KubeBubbleSpawner.reflectors.clear()
    for name in installed:
        clients._client_cache.pop((loop, name, (), ()), None)


@pytest.fixture
def study_home(bm_home: Path, sqlite_context, frozen_clock):
    """An active study `t2d-statins` (members alice and bob) whose extract manifest the hub holds."""
    frozen_clock.set(NOW)
    study = active()
    with sqlite_context.store.transaction() as session:
        save_study(session, study)
    paths = StudyPaths(bm_home, study.slug)
    write_fixture_extract(sqlite_context, study.slug, study.request_hash)  # the extract subsystem's format
    manifest = paths.manifest
    yield SimpleNamespace(home=bm_home, study=study, context=sqlite_context, manifest=manifest)
    close_shared_contexts()


def spawner_config(home: Path, **overrides) -> Config:
    config = Config()
    settings = {
        "bubble_manager_home": str(home), "namespace": "bubbles", "hub_namespace": "bubble-manager",
        "hub_pod_labels": HUB_LABELS, "proxy_pod_labels": PROXY_LABELS, "hub_connect_url": HUB_IP_URL,
        "image": "registry.example.org/bubble-manager/bubble:0.1.0", "cmd": ["jupyterhub-singleuser"],
        "start_timeout": 3, "http_timeout": 3, "k8s_api_request_retry_timeout": 5,
        "common_labels": {"app.kubernetes.io/instance": "bm"},
    }
    settings.update(overrides)
    for key, value in settings.items():
        setattr(config.KubeBubbleSpawner, key, value)
    return config


def make_spawner(home: Path, user: str = "alice", server: str = "t2d-statins", **overrides) -> kube.KubeBubbleSpawner:
    hub = SimpleNamespace(api_url="http://hub:8081/hub/api", base_url="/hub/", public_host="", url="http://hub:8081/hub/",
                          connect_url="")
    person = SimpleNamespace(name=user, id=7, url=f"/user/{user}/", escaped_name=user)
    orm_spawner = orm.Spawner(name=server, user_options={})
    spawner = kube.KubeBubbleSpawner(user=person, hub=hub, orm_spawner=orm_spawner,
                                     config=spawner_config(home, **overrides))
    spawner.api_token = "bubble-api-token"
    spawner.oauth_client_id = f"jupyterhub-user-{user}-{server}"
    return spawner


@pytest.fixture
async def transfer_service(study_home):
    """The bubble-manager service app (as `python -m bubble_manager.service` builds it) on a free port of this
    test's event loop, sharing study_home's store: what an extract-fill Job downloads from."""
    import socket

    from tornado.httpserver import HTTPServer

    from bubble_manager.service.app import make_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = HTTPServer(make_app(study_home.context, prefix="/services/bubble-manager/"), xheaders=True)
    server.listen(port, "127.0.0.1")
    yield SimpleNamespace(port=port, url=f"http://127.0.0.1:{port}/services/bubble-manager/")
    server.stop()
    await server.close_all_connections()
