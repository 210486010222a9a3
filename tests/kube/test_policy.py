"""No bubble can reach anything but the hub API; no study Job anything but the service.

Reads every NetworkPolicy that can select a bubble — the ones the chart renders into the bubbles
namespace (default and example values) and the per-bubble ones the builder makes from the settings
the chart hands the hub — and proves, independently of the production checks in kube_checks.py:
policyTypes lists both Ingress and Egress; every egress rule has peers and ports; every peer names
the hub pods by pod labels and the hub namespace by namespace labels; the only port is the hub API
port over TCP; no ipBlock, no empty rule, no DNS port, no port range.

The same proof covers the per-Job policies of extract-fill Jobs, with the service pods and the
service port in place of the hub's, and no ingress at all.
"""

from __future__ import annotations

import pytest

from bubble_manager.runtime import kube_jobs
from bubble_manager.runtime.kube_checks import job_policy_problems
from bubble_manager.runtime.kube_objects import KubeOptions, bubble_network_policy, to_manifest

from .chart import NAMESPACE, VALUE_SETS, find, hub_values, rendered

pytestmark = pytest.mark.kube
DNS = {53, "53", "dns", "domain", "dns-tcp"}


def egress_violations(policy: dict, hub_namespace: str, hub_labels: dict, hub_port: int) -> list[str]:
    spec = policy["spec"]
    name = policy["metadata"]["name"]
    found = []
    if set(spec.get("policyTypes", [])) != {"Ingress", "Egress"}:
        found.append(f"{name}: policyTypes {spec.get('policyTypes')} is not both Ingress and Egress")
    for rule in spec.get("egress") or []:
        if not rule:
            found.append(f"{name}: an empty egress rule allows everything")
            continue
        if not rule.get("to"):
            found.append(f"{name}: an egress rule without peers allows every destination")
        if not rule.get("ports"):
            found.append(f"{name}: an egress rule without ports allows every port")
        for peer in rule.get("to") or []:
            if "ipBlock" in peer:
                found.append(f"{name}: ipBlock {peer['ipBlock']}")
            pods = peer.get("podSelector") or {}
            namespaces = peer.get("namespaceSelector") or {}
            if not pods.get("matchLabels") or pods.get("matchLabels") != hub_labels or pods.get("matchExpressions"):
                found.append(f"{name}: peer {peer} does not select exactly the hub pods by labels")
            if namespaces.get("matchLabels") != {"kubernetes.io/metadata.name": hub_namespace} or \
                    namespaces.get("matchExpressions"):
                found.append(f"{name}: peer {peer} does not select the hub namespace by its label")
        for port in rule.get("ports") or []:
            if port.get("port") in DNS:
                found.append(f"{name}: DNS port {port}")
            if "endPort" in port:
                found.append(f"{name}: port range {port}")
            if port.get("port") != hub_port or port.get("protocol", "TCP") != "TCP":
                found.append(f"{name}: port {port} is not TCP/{hub_port}")
    return found


def bubble_policies(values: str) -> tuple[list[dict], dict]:
    """The chart's policies in the bubbles namespace, plus a built per-bubble policy with the chart's settings."""
    docs = rendered(values)
    settings = hub_values(docs)
    namespace = settings["bubbles"]["namespace"]
    options = KubeOptions(namespace=namespace, hub_namespace=settings["namespace"],
                          hub_pod_labels=settings["hubPodLabels"], proxy_pod_labels=settings["proxyPodLabels"],
                          image=settings["bubbles"]["image"], hub_api_port=settings["hubApiPort"],
                          extra_labels=settings["bubbleLabels"])
    built = to_manifest(bubble_network_policy(options, pod_name="jupyter-alice--t2d-statins", study="t2d-statins"))
    chart_policies = find(docs, "NetworkPolicy", namespace=namespace)
    return chart_policies + [built], settings


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_no_egress_rule_allows_anything_but_the_hub_api(values):
    policies, settings = bubble_policies(values)
    assert len(policies) >= 2
    assert any(p["spec"].get("egress") for p in policies), "the built policy must open the hub API"
    for policy in policies:
        assert egress_violations(policy, settings["namespace"], settings["hubPodLabels"],
                                 settings["hubApiPort"]) == []


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_nothing_else_in_the_bubbles_namespace_opens_egress(values):
    """A policy in the release namespace cannot open a bubble's egress; only bubbles-namespace ones count."""
    docs = rendered(values)
    namespace = hub_values(docs)["bubbles"]["namespace"]
    for policy in find(docs, "NetworkPolicy", namespace=namespace):
        assert not policy["spec"].get("egress") and not policy["spec"].get("ingress")


def test_the_policy_check_catches_what_it_must(options):
    """The proof above is only worth something if it fails on a leaky policy."""
    hub = dict(options.hub_pod_labels)
    good = to_manifest(bubble_network_policy(options, pod_name="p", study="s"))
    assert egress_violations(good, "bubble-manager", hub, 8081) == []
    leaks = {
        "dns": {"to": good["spec"]["egress"][0]["to"], "ports": [{"port": 53, "protocol": "UDP"}]},
        "internet": {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]},
        "any port": {"to": good["spec"]["egress"][0]["to"]},
        "anywhere": {"ports": [{"port": 8081}]},
        "empty": {},
        "all pods": {"to": [{"namespaceSelector": {}}], "ports": [{"port": 8081}]},
        "range": {"to": good["spec"]["egress"][0]["to"], "ports": [{"port": 8081, "endPort": 9000}]},
    }
    for name, rule in leaks.items():
        leaky = {**good, "spec": {**good["spec"], "egress": good["spec"]["egress"] + [rule]}}
        assert egress_violations(leaky, "bubble-manager", hub, 8081), name
    one_way = {**good, "spec": {**good["spec"], "policyTypes": ["Ingress"]}}
    assert egress_violations(one_way, "bubble-manager", hub, 8081)


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector.get("matchLabels")) and selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_the_allowed_paths_really_connect(values):
    """Closed is not enough: proxy and hub must reach a bubble, and the bubble the hub, or nothing works."""
    from pathlib import Path

    from bubble_manager.runtime.kube_objects import bubble_pod
    from bubble_manager.runtime.spec import build_spec

    from ..test_studies import active
    from .conftest import NOW

    docs = rendered(values)
    settings = hub_values(docs)
    options = KubeOptions(namespace=settings["bubbles"]["namespace"], hub_namespace=settings["namespace"],
                          hub_pod_labels=settings["hubPodLabels"], proxy_pod_labels=settings["proxyPodLabels"],
                          image=settings["bubbles"]["image"], hub_api_port=settings["hubApiPort"],
                          extra_labels=settings["bubbleLabels"])
    spec = build_spec(active(), "alice", "t2d-statins", home=Path("/srv"), now=NOW, uid=None,
                      manifest_sha256="ab" * 32, command=("jupyterhub-singleuser",))
    bubble = to_manifest(bubble_pod(spec, options, name="jupyter-alice--t2d-statins", now=NOW))
    bubble_labels = bubble["metadata"]["labels"]
    pods = {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["metadata"]["labels"]
            for d in find(docs, "Deployment")}
    own = to_manifest(bubble_network_policy(options, pod_name="jupyter-alice--t2d-statins", study="t2d-statins"))
    assert selects(own["spec"]["podSelector"], bubble_labels)
    assert selects(own["spec"]["egress"][0]["to"][0]["podSelector"], pods["hub"])
    ingress_from = own["spec"]["ingress"][0]["from"]
    assert any(selects(peer["podSelector"], pods["proxy"]) for peer in ingress_from)
    assert any(selects(peer["podSelector"], pods["hub"]) for peer in ingress_from)
    policies = {p["metadata"]["name"].rsplit("-", 1)[1]: p for p in find(docs, "NetworkPolicy", namespace=NAMESPACE)}
    for component in ("hub", "proxy"):
        policy = policies[component]
        assert selects(policy["spec"]["podSelector"], pods[component])
        to_bubbles = [rule for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
                      if selects(peer.get("podSelector", {}), bubble_labels)
                      and peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name":
                                                                      options.namespace}]
        assert to_bubbles and to_bubbles[0]["ports"] == [{"port": 8888, "protocol": "TCP"}], component
    from_bubbles = [peer for rule in policies["hub"]["spec"]["ingress"] for peer in rule["from"]
                    if selects(peer.get("podSelector", {}), bubble_labels)]
    assert from_bubbles, "the hub's own policy must admit the bubbles on its API port"


# --- study Jobs ---------------------------------------------------------------------------------

JOB = "extract-t2d-statins-a1b2c30"


def chart_job_objects(values: str, kind: str = "extract") -> tuple[dict, dict, dict, list[dict]]:
    """A study Job (extract fill or snapshot collect) and its policy, built with the chart's settings."""
    docs = rendered(values)
    settings = hub_values(docs)
    options = KubeOptions(namespace=settings["bubbles"]["namespace"], hub_namespace=settings["namespace"],
                          hub_pod_labels=settings["hubPodLabels"], proxy_pod_labels=settings["proxyPodLabels"],
                          image=settings["bubbles"]["image"], extra_labels=settings["bubbleLabels"],
                          extract_mode=settings["bubbles"]["extractMode"])
    peer = kube_jobs.ServicePeer(settings["namespace"], settings["servicePodLabels"], settings["servicePort"])
    policy = to_manifest(kube_jobs.job_network_policy(options, job_name_=JOB, kind=kind, slug="t2d-statins",
                                                      service=peer))
    if kind == "extract":
        job = kube_jobs.extract_job(options, slug="t2d-statins", name=JOB, member="alice",
                                    command=["python", "-m", "bubble_manager.runtime.kube_fill"],
                                    manifest_sha256="ab" * 32, secret_name=JOB)
    else:
        job = kube_jobs.snapshot_job(options, slug="t2d-statins", name=JOB, members=["alice"], shared=True,
                                     command=["python", "-m", "bubble_manager.runtime.kube_collect"], secret_name=JOB)
    job = to_manifest(job)
    return policy, job, settings, docs


def ingress_violations(policy: dict) -> list[str]:
    spec = policy["spec"]
    found = []
    if spec.get("ingress"):
        found.append(f"{policy['metadata']['name']}: a Job admits ingress {spec['ingress']}")
    if "Ingress" not in spec.get("policyTypes", []):
        found.append(f"{policy['metadata']['name']}: without policyType Ingress, other policies could open it")
    return found


@pytest.mark.parametrize("kind", ["extract", "snapshot"])
@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_no_job_egress_rule_allows_anything_but_the_service(values, kind):
    policy, _, settings, _ = chart_job_objects(values, kind)
    assert policy["spec"]["egress"], "the Job's policy must open the service"
    assert egress_violations(policy, settings["namespace"], settings["servicePodLabels"],
                             settings["servicePort"]) == []
    assert ingress_violations(policy) == []
    assert job_policy_problems(policy, service_namespace=settings["namespace"],
                               service_labels=settings["servicePodLabels"], service_port=settings["servicePort"]) == []


def test_the_job_policy_checks_catch_what_they_must(options):
    from .conftest import SERVICE_LABELS

    peer = kube_jobs.ServicePeer("bubble-manager", SERVICE_LABELS, 10101)
    good = to_manifest(kube_jobs.job_network_policy(options, job_name_=JOB, kind="extract", slug="s", service=peer))
    to_service = good["spec"]["egress"][0]["to"]
    to_hub = [{"podSelector": {"matchLabels": dict(options.hub_pod_labels)},
               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bubble-manager"}}}]
    leaks = {
        "the hub": {"to": to_hub, "ports": [{"port": 10101, "protocol": "TCP"}]},
        "the hub port": {"to": to_service, "ports": [{"port": 8081, "protocol": "TCP"}]},
        "dns": {"to": to_service, "ports": [{"port": 53, "protocol": "UDP"}]},
        "internet": {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]},
        "any pod of the namespace": {"to": [{"namespaceSelector": to_service[0]["namespaceSelector"]}],
                                     "ports": [{"port": 10101}]},
        "empty": {},
    }
    for name, rule in leaks.items():
        leaky = {**good, "spec": {**good["spec"], "egress": good["spec"]["egress"] + [rule]}}
        assert egress_violations(leaky, "bubble-manager", SERVICE_LABELS, 10101), name
        assert job_policy_problems(leaky, service_namespace="bubble-manager", service_labels=SERVICE_LABELS,
                                   service_port=10101), name
    admitting = {**good, "spec": {**good["spec"], "ingress": [{"from": to_service, "ports": [{"port": 8888}]}]}}
    assert ingress_violations(admitting)
    assert job_policy_problems(admitting, service_namespace="bubble-manager", service_labels=SERVICE_LABELS,
                               service_port=10101)
    closed = {**good, "spec": {**good["spec"], "egress": []}}
    assert job_policy_problems(closed, service_namespace="bubble-manager", service_labels=SERVICE_LABELS,
                               service_port=10101)


@pytest.mark.parametrize("kind", ["extract", "snapshot"])
@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_the_jobs_path_to_the_service_really_connects(values, kind):
    """The Job's policy selects its pods and the service pods, and the service's own policy admits the Job."""
    policy, job, settings, docs = chart_job_objects(values, kind)
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    pods = {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["metadata"]["labels"]
            for d in find(docs, "Deployment")}
    assert selects(policy["spec"]["podSelector"], job_labels)
    assert selects(policy["spec"]["egress"][0]["to"][0]["podSelector"], pods["service"])
    assert not selects(policy["spec"]["egress"][0]["to"][0]["podSelector"], pods["hub"])
    service_policy = {p["metadata"]["name"].rsplit("-", 1)[1]: p
                      for p in find(docs, "NetworkPolicy", namespace=NAMESPACE)}["service"]
    admitted = [rule for rule in service_policy["spec"]["ingress"] for peer in rule["from"]
                if selects(peer.get("podSelector", {}), job_labels) and peer.get("namespaceSelector", {}).get(
                    "matchLabels") == {"kubernetes.io/metadata.name": settings["bubbles"]["namespace"]}]
    assert admitted and admitted[0]["ports"] == [{"port": settings["servicePort"], "protocol": "TCP"}]
    bubble_labels = {"app.kubernetes.io/component": "bubble", **settings["bubbleLabels"]}
    for rule in service_policy["spec"]["ingress"]:  # a bubble is not a Job: the service stays closed to it
        assert not any(selects(peer.get("podSelector", {}), bubble_labels) for peer in rule["from"])
