"""`studies activate`: build and verify the extract first, activate only if it verifies.

A study whose extract cannot be built or does not verify stays approved; the failure is in the
audit log (`extract.failed`), and the caller gets the reason.
"""

from __future__ import annotations

from .. import clock, studies
from ..operations import Context, StudyOperations
from ..runtime.spec import StudyPaths
from ..studies import Actor, Study, TransitionError
from .build import ExtractError, build_extract, current_extract
from ..runtime.site_hooks import publish_extract
from .manifest import verify_extract


def activate_with_extract(context: Context, actor: Actor, slug: str, progress: bool = False, *,
                          operations: StudyOperations | None = None) -> Study:
    """Build (or reuse a current, verified) extract, verify it, create the workspaces, activate.

    Pass the caller's `operations` to keep its channel (`via`) in the audit entries.
    """
    operations = operations or StudyOperations(context)
    study = operations.get(slug)
    try:  # the pure rules first: no build for an activation that would be refused anyway
        studies.apply(study, actor, studies.Activate(), now=clock.utcnow(), policy=context.policy)
    except TransitionError:
        return operations.activate(actor, slug)  # audits the refusal and raises it
    reused = current_extract(context, study)
    if reused is None:
        build_extract(context, actor, slug, progress=progress)
    paths = StudyPaths(context.home, slug)
    verification = verify_extract(paths.root, context.verifier())
    manifest = verification.manifest or {}
    if not verification.ok or manifest.get("request_hash") != study.request_hash:
        problems = verification.problems or [f"the extract was built for request {manifest.get('request_hash')}, "
                                             f"not the approved {study.request_hash}"]
        context.audit.record(actor=actor.name, action="extract.failed", study=slug,
                             detail={"stage": "verify", "reason": "verification", "problems": len(problems)})
        raise ExtractError("verification", f"the extract of {slug} does not verify ({'; '.join(problems)}); "
                           "the study stays approved: rebuild with `bubble-manager extract build`")
    if reused is not None:
        context.audit.record(actor=actor.name, action="extract.reused", study=slug,
                             detail={"sha256": manifest["extract"]["sha256"], "request_hash": study.request_hash})
    create_study_folders(paths, study.members)
    publish_extract(context, slug, actor=actor.name)  # Kubernetes sites: fill the extract volume first
    return operations.activate(actor, slug)


def create_study_folders(paths: StudyPaths, members: tuple[str, ...] | list[str]) -> None:
    """The shared folder and one workspace per member (existing ones are kept as they are).

    Created root-only; the runtime hands each to the member's bubble uid when it starts.
    """
    for folder in (paths.workspaces, paths.shared, *(paths.workspace(m) for m in members)):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
