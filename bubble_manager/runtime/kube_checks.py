"""Last checks before an object is sent: the pod really is hardened, the policy really is closed.

The builders already produce such objects; these checks run on the final manifest, after any
site hook (`modify_pod_hook`, `extra_pod_config`...) had its say, so that no configuration can
quietly reopen what the builders closed. Each returns the list of problems (empty when fine).
"""

from __future__ import annotations

from typing import Any, Mapping

from .kube_objects import NAMESPACE_NAME_LABEL

HOST_FLAGS = ("hostNetwork", "hostPID", "hostIPC", "hostUsers")
DNS_PORTS = {53, "53", "dns", "domain", "dns-tcp"}


class UnsafeObject(RuntimeError):
    """A pod or policy that would weaken the bubble; nothing was created."""


def pod_problems(pod: Mapping[str, Any], *, expected_claims: set[str] | None = None) -> list[str]:
    """What makes this pod manifest (camelCase dict) unfit to run a bubble or study Job."""
    spec = pod.get("spec") or {}
    problems: list[str] = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    for flag in HOST_FLAGS[:3]:
        if spec.get(flag):
            problems.append(f"{flag} is set")
    if spec.get("hostUsers") is True:
        problems.append("hostUsers is true")
    if not isinstance(spec.get("activeDeadlineSeconds"), int) or spec["activeDeadlineSeconds"] < 1:
        problems.append("activeDeadlineSeconds is missing")
    pod_context = spec.get("securityContext") or {}
    if (pod_context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if pod_context.get("runAsUser") == 0 or pod_context.get("runAsNonRoot") is not True:
        problems.append("pod may run as root")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if kinds - {"emptyDir", "persistentVolumeClaim", "secret"}:
            problems.append(f"volume {volume.get('name')} is of kind {sorted(kinds)}")
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and expected_claims is not None and claim not in expected_claims:
            problems.append(f"volume {volume.get('name')} mounts unexpected claim {claim}")
    for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        problems += [f"container {container.get('name')}: {p}" for p in _container_problems(container)]
    if spec.get("ephemeralContainers"):
        problems.append("ephemeralContainers are set")
    return problems


def _container_problems(container: Mapping[str, Any]) -> list[str]:
    context = container.get("securityContext") or {}
    problems = []
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        problems.append("privileged")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if context.get("runAsUser") == 0 or context.get("runAsNonRoot") is not True:
        problems.append("may run as root")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities are not all dropped")
    if (context.get("capabilities") or {}).get("add"):
        problems.append("capabilities are added")
    if (context.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault"):
        problems.append("seccompProfile is not RuntimeDefault")
    if not (container.get("resources") or {}).get("limits"):
        problems.append("no resource limits")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            problems.append(f"hostPort {port['hostPort']}")
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            problems.append("environment from a secret")
    for variable in container.get("env") or []:
        if "secretKeyRef" in (variable.get("valueFrom") or {}):
            problems.append(f"environment variable {variable.get('name')} from a secret")
    return problems


def policy_problems(policy: Mapping[str, Any], *, hub_namespace: str, hub_labels: Mapping[str, str],
                    hub_port: int) -> list[str]:
    """What lets this NetworkPolicy allow egress anywhere but TCP to the hub API port on the hub pods."""
    spec = policy.get("spec") or {}
    problems = _selection_problems(spec) + _egress_problems(spec, hub_namespace, hub_labels, hub_port, "hub")
    for index, rule in enumerate(spec.get("ingress") or []):
        if not rule.get("from") or not rule.get("ports"):
            problems.append(f"ingress rule {index} has no peers or no ports")
        for peer in rule.get("from") or []:
            if "ipBlock" in peer or not (peer.get("podSelector") or {}).get("matchLabels"):
                problems.append(f"ingress rule {index} admits more than labelled pods")
    return problems


def job_policy_problems(policy: Mapping[str, Any], *, service_namespace: str, service_labels: Mapping[str, str],
                        service_port: int) -> list[str]:
    """What lets a study Job's policy allow anything but egress to TCP `service_port` on the service pods."""
    spec = policy.get("spec") or {}
    problems = _selection_problems(spec) + _egress_problems(spec, service_namespace, service_labels, service_port,
                                                            "service")
    if spec.get("ingress"):
        problems.append("a study Job's policy admits ingress; Jobs receive no connection")
    if not spec.get("egress"):
        problems.append("the policy opens nothing: the Job could not reach the service")
    return problems


def _selection_problems(spec: Mapping[str, Any]) -> list[str]:
    problems = []
    if sorted(spec.get("policyTypes") or []) != ["Egress", "Ingress"]:
        problems.append("policyTypes is not both Ingress and Egress")
    if not (spec.get("podSelector") or {}).get("matchLabels"):
        problems.append("the policy does not select its pod by labels")
    return problems


def _egress_problems(spec: Mapping[str, Any], namespace_name: str, pod_labels_: Mapping[str, str], port_number: int,
                     what: str) -> list[str]:
    problems = []
    for index, rule in enumerate(spec.get("egress") or []):
        where = f"egress rule {index}"
        peers, ports = rule.get("to") or [], rule.get("ports") or []
        if not peers or not ports:
            problems.append(f"{where} has no peers or no ports (it would allow every destination or port)")
        for peer in peers:
            if "ipBlock" in peer:
                problems.append(f"{where} has an ipBlock")
            pod_labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            namespace = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            if dict(pod_labels) != dict(pod_labels_) or (peer.get("podSelector") or {}).get("matchExpressions"):
                problems.append(f"{where} does not name exactly the {what} pods")
            if namespace != {NAMESPACE_NAME_LABEL: namespace_name} or (peer.get("namespaceSelector") or {}).get(
                    "matchExpressions"):
                problems.append(f"{where} does not name exactly the {what} namespace")
        for port in ports:
            if port.get("port") in DNS_PORTS or port.get("endPort"):
                problems.append(f"{where} opens a DNS port or a port range")
            if port.get("port") != port_number or port.get("protocol", "TCP") != "TCP":
                problems.append(f"{where} opens {port.get('protocol', 'TCP')}/{port.get('port')}, "
                                f"not TCP/{port_number}")
    return problems


def require_safe(kind: str, name: str, problems: list[str]) -> None:
    if problems:
        raise UnsafeObject(f"refusing to create {kind} {name}: " + "; ".join(problems)
                           + " (check the spawner configuration and modify_pod_hook)")
