"""Hooks the extract and lifecycle code call at the points where a Kubernetes site must move data.

On a Kubernetes site (`c.KubeStudyJobs.enabled`) a built extract must be copied into its volume
before bubbles may use it, workspaces must be collected from their volumes before a snapshot, and
a closed study's volumes deleted once its final archive verified. On a local site all three are
nothing (the study folder on the hub is all there is). The Kubernetes client is an optional extra:
without it, the site cannot run Kubernetes bubbles, so there is nothing to move. Call these from a
worker thread: they wait for Jobs that talk to the bubble-manager service itself, or for the API.
"""

from __future__ import annotations

from typing import Any


def publish_extract(context: Any, slug: str, *, actor: str) -> Any:
    try:
        from .kube_activation import publish_extract as publish_on_kubernetes
    except ImportError:  # the kube extra is not installed: a local site
        return None
    return publish_on_kubernetes(context, slug, actor=actor)


def collect_workspaces(context: Any, slug: str, *, actor: str) -> Any:
    try:
        from .kube_snapshot import collect_workspaces as collect_on_kubernetes
    except ImportError:
        return None
    return collect_on_kubernetes(context, slug, actor=actor)


def remove_volumes(context: Any, slug: str, *, archive_number: int | None, actor: str) -> Any:
    try:
        from .kube_volumes import remove_volumes as remove_on_kubernetes
    except ImportError:
        return None
    return remove_on_kubernetes(context, slug, archive_number=archive_number, actor=actor)
