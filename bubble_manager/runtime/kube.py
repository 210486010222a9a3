"""`KubeBubbleSpawner`: a KubeSpawner that runs each study bubble as a hardened pod behind its own
NetworkPolicy.

The gate is the same as the local spawner's (`spec.build_spec`): the study comes from the server
name, `user_options` are ignored, the default server is refused, and every refusal is audited.
Order of a start: gate, volume claims (workspace and shared created if missing; the extract must
exist and hold the study's current manifest, verified like the local spawner does: signed by the
hub, for the approved request, matching the extract), the NetworkPolicy, then the pod. The pod is checked
(`kube_checks`) right before it is sent, after any site hook. A failed start removes the pod, then
the policy; a stop deletes the pod, waits until it is gone, and only then deletes the policy. If
the pod cannot be confirmed gone the policy stays: the namespace's default-deny policy (from the
chart) would still cut a policy-less pod off, this is the second lock.

Bubbles live in their own namespace without DNS, so `hub_connect_url` must name the hub Service by
its cluster IP (the chart's config reads it from `HUB_SERVICE_HOST`).

Extensions: a pod's deadline reaches the study's end as it was when the pod was built, and cannot be
raised. When an approved extension moved that end, `poll` replaces the pod, shortly before its
deadline (or after it, if the hub was down then), by one built for the new end: the gate again, the
policy kept and refreshed before the new pod, the same volumes; `bubble.extended`. A replacement
that fails stops the bubble, as its deadline would have (`kube_extension`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Dict, Enum, Integer, Unicode, default

from .. import clock
from ..config import load_settings
from ..operations import Context
from ..store import load_study
from . import extract_gate
from .kube_checks import pod_problems, policy_problems, require_safe
from .kube_extension import extended_end, renewal_due
from .kube_objects import (MANIFEST_ANNOTATION, KubeOptions, bubble_network_policy, bubble_pod, extract_claim_name,
                           network_policy_name, shared_claim, shared_claim_name, to_manifest, workspace_claim,
                           workspace_claim_name)
from .spawner_base import BubbleSpawnerBase, shared_context
from .spec import BubbleSpec, SpawnRefused, StudyPaths, build_spec

def open_shared_context(home: str, config_file: str) -> Context:
    """The hub process's one store connection (shared with every spawner, see `spawner_base`)."""
    return shared_context(load_settings(home, config_file or None))


def check_hub_connect_url(url: str | None, hub_api_port: int) -> None:
    """Bubbles have no DNS: the hub must be reached by IP address, on the port the policy opens."""
    parsed = urlparse(url or "")
    try:
        ipaddress.ip_address(parsed.hostname or "")
    except ValueError:
        raise ValueError(f"KubeBubbleSpawner.hub_connect_url is {url!r}: bubbles cannot resolve names, set it to "
                         "the hub Service's cluster IP, e.g. http://10.96.12.34:8081 (the chart reads "
                         "HUB_SERVICE_HOST)") from None
    if (parsed.port or (443 if parsed.scheme == "https" else 80)) != hub_api_port:
        raise ValueError(f"hub_connect_url {url!r} does not use port {hub_api_port}, the only port the bubble's "
                         "NetworkPolicy opens; make hub_api_port and the hub Service port agree")


class KubeBubbleSpawner(BubbleSpawnerBase, KubeSpawner):
    """One pod per (member, study) named server, rendered from the same `BubbleSpec` as the local spawner."""

    bubble_manager_home = Unicode("/srv/bubble-manager", help="bubble-manager home on the hub (store, keys, "
                                  "studies/<slug>/manifest.json).").tag(config=True)
    bubble_manager_config_file = Unicode("", help="bubble-manager config file (default HOME/bubble_manager_config.py)."
                                         ).tag(config=True)
    hub_namespace = Unicode("", help="Namespace of the hub and proxy pods (the NetworkPolicy peers); "
                                     "default: the namespace the hub runs in.").tag(config=True)
    hub_pod_labels = Dict({"app.kubernetes.io/component": "hub"}, help="Labels that select exactly the hub pods; "
                          "the only egress a bubble has is to these pods, on hub_api_port.").tag(config=True)
    proxy_pod_labels = Dict({"app.kubernetes.io/component": "proxy"}, help="Labels that select the proxy pods, the "
                            "only ones (with the hub) allowed to connect to a bubble.").tag(config=True)
    hub_api_port = Integer(8081, help="Port of the hub API on the hub pods (Service port and target port "
                                      "must both be this value).").tag(config=True)
    bubble_uid = Integer(1000, help="Non-root uid bubbles run as (jovyan in the bubble image).").tag(config=True)
    bubble_gid = Integer(100, help="Non-root gid bubbles run as (users in the bubble image).").tag(config=True)
    bubble_service_account = Unicode("bubble", help="Service account of bubble pods: it must hold no role "
                                     "binding (the chart creates it so).").tag(config=True)
    extract_mode = Enum(["shared", "per-member"], "shared", help="'shared': one ReadOnlyMany extract claim per "
                        "study; 'per-member': one copy per member for storage classes that cannot share."
                        ).tag(config=True)
    extract_storage_class = Unicode(None, allow_none=True, help="Storage class of extract claims (must offer "
                                    "ReadOnlyMany in shared mode); None uses the cluster default.").tag(config=True)
    workspace_storage_class = Unicode(None, allow_none=True, help="Storage class of workspace and shared "
                                      "claims (shared folders need ReadWriteMany).").tag(config=True)
    workspace_size = Unicode("10Gi", help="Size of each member's workspace claim.").tag(config=True)
    shared_size = Unicode("10Gi", help="Size of each study's shared folder claim.").tag(config=True)
    extract_size = Unicode("10Gi", help="Size of each extract claim.").tag(config=True)
    extension_renew_seconds = Integer(300, min=60, help="When an approved extension moved a running bubble's "
                                      "study end, its pod (whose activeDeadlineSeconds cannot be raised) is "
                                      "replaced by one reaching the new end this many seconds before its old "
                                      "deadline; keep it above the hub's poll interval.").tag(config=True)

    @default("component_label")
    def _component_label_default(self) -> str:
        return "bubble"

    # --- the spec ---------------------------------------------------------------------------------

    @property
    def context(self) -> Context:
        return open_shared_context(self.bubble_manager_home, self.bubble_manager_config_file)

    def kube_options(self) -> KubeOptions:
        return KubeOptions(
            namespace=self.namespace, hub_namespace=self.hub_namespace or self._namespace_default(),
            hub_pod_labels=dict(self.hub_pod_labels), proxy_pod_labels=dict(self.proxy_pod_labels),
            image=self.image, image_pull_policy=self.image_pull_policy, hub_api_port=self.hub_api_port,
            server_port=self.port, uid=self.bubble_uid, gid=self.bubble_gid,
            service_account=self.bubble_service_account, extract_mode=self.extract_mode,
            extract_storage_class=self.extract_storage_class, workspace_storage_class=self.workspace_storage_class,
            workspace_size=self.workspace_size, shared_size=self.shared_size, extract_size=self.extract_size,
            extra_labels={key: str(value) for key, value in self.common_labels.items()})

    def bubble_spec(self) -> BubbleSpec:
        """Gate, extract verification and spec, as the local spawner does; a refusal is audited and raised."""
        context = self.context
        server_name = self.name or ""
        now = clock.utcnow()
        with context.store.transaction() as session:
            study = load_study(session, server_name) if server_name else None
        try:
            build_spec(study, self.user.name, server_name, home=context.home, now=now, uid=None, manifest_sha256="",
                       command=())
            paths = StudyPaths(context.home, study.slug)
            extract_gate.verify_for_spawn(paths, context.verifier(), study)
            return build_spec(study, self.user.name, server_name, home=context.home, now=now, uid=None,
                              manifest_sha256=extract_gate.manifest_sha256(paths),
                              command=tuple((self.cmd or []) + self.get_args()),
                              environment={"BUBBLE_STUDY_MEMBERS": str(len(study.members))})
        except SpawnRefused as refused:
            self._audit("bubble.refused", study.slug if study else None,
                        {"reason": refused.reason, "server": server_name})
            raise

    def _audit(self, action: str, study: str | None, detail: dict[str, Any]) -> None:
        self.context.audit.record(actor=self.user.name, action=action, study=study,
                                  detail={"runtime": "kubernetes", **detail})

    # --- start ------------------------------------------------------------------------------------

    async def _start(self) -> str:
        spec = await asyncio.to_thread(self.bubble_spec)  # the store is synchronous: keep the hub's loop free
        try:
            check_hub_connect_url(self.hub_connect_url, self.hub_api_port)
            options = self.kube_options()
        except ValueError as error:
            await asyncio.to_thread(self._audit, "bubble.failed", spec.study, {"reason": "configuration"})
            raise RuntimeError(f"the bubble cannot start: {error}") from error
        self._bubble_spec = spec
        try:
            await self._ensure_claims(spec, options)
        except SpawnRefused as refused:
            await asyncio.to_thread(self._audit, "bubble.refused", spec.study,
                                    {"reason": refused.reason, "server": self.name})
            raise
        await self._create_network_policy(options, spec)
        try:
            url = await super()._start()
        except BaseException as error:
            await self._remove_after_failed_start()
            await asyncio.to_thread(self._audit, "bubble.failed", spec.study,
                                    {"reason": type(error).__name__, "pod": self.pod_name})
            raise
        await asyncio.to_thread(self._audit, "bubble.spawn", spec.study, {
            "pod": self.pod_name, "namespace": self.namespace,
            "manifest_sha256": spec.manifest_sha256, "expires_at": spec.expires_at.isoformat()})
        return url

    async def get_pod_manifest(self):  # noqa: ANN201 - kubernetes V1Pod
        spec: BubbleSpec = getattr(self, "_bubble_spec", None) or self.bubble_spec()
        spec = replace(spec, command=tuple((self.cmd or []) + self.get_args()))
        return bubble_pod(spec, self.kube_options(), name=self.pod_name, now=clock.utcnow(), env=self.get_env(),
                          labels=self._build_pod_labels(self._expand_all(self.extra_labels)),
                          annotations=self._build_common_annotations(self._expand_all(self.extra_annotations)))

    async def _make_create_pod_request(self, pod, request_timeout):  # noqa: ANN001, ANN202
        spec: BubbleSpec = self._bubble_spec
        member_extract = spec.member if self.extract_mode == "per-member" else None
        claims = {extract_claim_name(spec.study, member_extract), workspace_claim_name(spec.study, spec.member),
                  shared_claim_name(spec.study)}
        require_safe("pod", pod.metadata.name, pod_problems(to_manifest(pod), expected_claims=claims))
        if not getattr(self, "_policy_ready", False):
            require_safe("pod", pod.metadata.name, ["its NetworkPolicy was not created first"])
        return await super()._make_create_pod_request(pod, request_timeout)

    @property
    def network_api(self):  # noqa: ANN201 - kubernetes_asyncio NetworkingV1Api
        return shared_client("NetworkingV1Api")

    async def _ensure_claims(self, spec: BubbleSpec, options: KubeOptions) -> None:
        member_extract = spec.member if options.extract_mode == "per-member" else None
        name = extract_claim_name(spec.study, member_extract)
        try:
            claim = await self.api.read_namespaced_persistent_volume_claim(name=name, namespace=self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            raise SpawnRefused("no-extract", f"the extract volume of study {spec.study} is not filled yet; a bubble "
                                             "opens once the extract Job has run (ask a data steward)") from None
        annotations = (claim.metadata.annotations or {}) if claim.metadata else {}
        if annotations.get(MANIFEST_ANNOTATION) != spec.manifest_sha256:
            raise SpawnRefused("stale-extract", f"the extract volume of study {spec.study} does not hold the current "
                                                "extract; it must be refilled before the bubble opens")
        for body in (workspace_claim(options, spec.study, spec.member), shared_claim(options, spec.study)):
            try:
                await self.api.create_namespaced_persistent_volume_claim(namespace=self.namespace, body=body)
            except ApiException as error:
                if error.status != 409:
                    raise

    async def _create_network_policy(self, options: KubeOptions, spec: BubbleSpec) -> None:
        policy = bubble_network_policy(options, pod_name=self.pod_name, study=spec.study)
        require_safe("NetworkPolicy", policy.metadata.name, policy_problems(
            to_manifest(policy), hub_namespace=options.hub_namespace, hub_labels=options.hub_pod_labels,
            hub_port=options.hub_api_port))
        try:
            await self.network_api.create_namespaced_network_policy(namespace=self.namespace, body=policy)
        except ApiException as error:
            if error.status != 409:
                raise
            await self.network_api.replace_namespaced_network_policy(
                name=policy.metadata.name, namespace=self.namespace, body=policy)
        self._policy_ready = True

    async def _delete_network_policy(self) -> None:
        try:
            await self.network_api.delete_namespaced_network_policy(name=network_policy_name(self.pod_name),
                                                                    namespace=self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
        self._policy_ready = False

    async def _remove_after_failed_start(self) -> None:
        try:
            await super().stop(now=True)
        except Exception:
            self.log.exception("pod %s/%s may still exist after a failed start; its NetworkPolicy is kept",
                               self.namespace, self.pod_name)
            return
        await self._delete_network_policy()

    async def delete_forever(self) -> None:
        """A deleted named server keeps its study volumes: snapshots archive them, retention purges them."""
        await asyncio.to_thread(self._audit, "bubble.server-deleted", self.name or None, {"server": self.name})

    # --- extensions -------------------------------------------------------------------------------

    async def poll(self):  # noqa: ANN201 - None while running, else an exit status
        if getattr(self, "_renewing", False):
            return None  # being replaced by a pod that reaches the study's new end
        await self._start_watching_pods()
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        old_end = renewal_due(pod, clock.utcnow(), self.extension_renew_seconds) if pod else None
        if old_end is not None:
            new_end = await asyncio.to_thread(self._extended_end, old_end)
            if new_end is not None:
                return await self._renew(old_end, new_end)
        return await super().poll()

    def _extended_end(self, old_end):  # noqa: ANN001, ANN202 - datetimes
        with self.context.store.transaction() as session:
            study = load_study(session, self.name) if self.name else None
        return extended_end(study, self.user.name, old_end, clock.utcnow())

    async def _renew(self, old_end, new_end):  # noqa: ANN001, ANN202 - datetimes; poll's answer
        """Replace the pod by one built for the extended study: the old pod goes first, its policy stays (and is
        refreshed) throughout; any failure stops the bubble, as its deadline would have."""
        self._renewing = True
        detail = {"pod": self.pod_name, "namespace": self.namespace, "from": old_end.isoformat(),
                  "expires_at": new_end.isoformat()}
        try:
            spec = await asyncio.to_thread(self.bubble_spec)  # the gate again (a refusal is audited there)
            options = self.kube_options()
            await self._ensure_claims(spec, options)  # the extract volume still holds the current extract
            await KubeSpawner.stop(self, now=False)
            self._bubble_spec = spec
            await self._create_network_policy(options, spec)
            await KubeSpawner._start(self)
        except BaseException as error:
            self.log.warning("bubble %s/%s could not be renewed for the extension of its study: %r",
                             self.namespace, self.pod_name, error)
            await self._remove_after_failed_start()
            await asyncio.to_thread(self._audit, "bubble.failed", self.name or None,
                                    {"reason": "extension-renewal", "error": type(error).__name__, **detail})
            if not isinstance(error, Exception):
                raise
            return 1
        finally:
            self._renewing = False
        await asyncio.to_thread(self._audit, "bubble.extended", spec.study,
                                {"by": "spawner", "manifest_sha256": spec.manifest_sha256, **detail})
        status = await super().poll()  # records the new pod's address in the hub's server
        await self._route_to_new_pod()
        return status

    async def _route_to_new_pod(self) -> None:
        """Point the proxy at the new pod now rather than at the hub's next route check."""
        proxy = (getattr(self.user, "settings", None) or {}).get("proxy")
        if proxy is None or self.server is None:
            return
        try:
            await proxy.add_user(self.user, self.name)
        except Exception:
            self.log.exception("route of %s not updated; the hub's route check will", self.pod_name)

    # --- stop -------------------------------------------------------------------------------------

    async def stop(self, now: bool = False) -> None:
        """Delete the pod, wait until it is gone, then delete its policy (kept if the pod may remain)."""
        await super().stop(now=now)
        await self._delete_network_policy()
        spec = getattr(self, "_bubble_spec", None)
        await asyncio.to_thread(self._audit, "bubble.stop", spec.study if spec else (self.name or None),
                                {"pod": self.pod_name, "namespace": self.namespace})

