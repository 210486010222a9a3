"""When a running bubble pod must be replaced to follow an approved extension of its study.

A pod's `activeDeadlineSeconds` reaches the study's end as it was when the pod was built (its
`bubble-manager.io/expires-at` annotation), and Kubernetes only lets it be lowered on a running
pod. So when an extension moves the end, `KubeBubbleSpawner.poll` replaces the pod shortly before
that old end (or once the kubelet has ended it there, if the hub was down then) with one built for
the new end: the moment the bubble would have stopped anyway, so an extension never stops a bubble
earlier than without it. Pure functions over the pod as the reflector holds it (a dict) and the
study as the store holds it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from ..studies import State, Study
from .spec import LABEL_PREFIX

EXPIRES_ANNOTATION = f"{LABEL_PREFIX}/expires-at"


def pod_end(pod: Mapping[str, Any]) -> dt.datetime | None:
    """The study end the pod's deadline was computed for; None for a pod we did not annotate."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXPIRES_ANNOTATION)
    try:
        end = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return end if end is not None and end.tzinfo is not None else None


def deadline_exceeded(pod: Mapping[str, Any]) -> bool:
    """The kubelet ended the pod at its `activeDeadlineSeconds`."""
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "DeadlineExceeded"


def renewal_due(pod: Mapping[str, Any], now: dt.datetime, lead_seconds: int) -> dt.datetime | None:
    """The pod's end when it is within `lead_seconds` of it or already past it; else None (nothing to look at)."""
    end = pod_end(pod)
    if end is None:
        return None
    if deadline_exceeded(pod) or (end - now).total_seconds() <= lead_seconds:
        return end
    return None


def extended_end(study: Study | None, member: str, end: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The study's new end when an approved extension moved it past `end` and the member may still use the
    (active) study; None otherwise: then the pod ends at its deadline as built."""
    if study is None or study.state is not State.active or member not in study.members:
        return None
    return study.expires_at if study.expires_at > max(end, now) else None
