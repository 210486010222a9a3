"""`bubble-manager extract ...`: plan, build, verify, dry-run and re-identify study extracts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_common import EXIT_FAILED, EXIT_OK, CommandError, add_actor_option, cli_actor, emit, open_context
from ..operations import StudyOperations
from ..runtime.site_hooks import publish_extract
from .build import ExtractError, build_extract
from .cohort import CohortRefused
from .manifest import verify_extract
from .plan import PlanError, describe_plan, make_plan
from .reidentify import ReidentifyRefused, reidentify
from .risk import describe_risk, dry_run
from .settings import extract_settings


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    extract = groups["root"].add_parser("extract", help="study extracts: plan, build, verify, dry-run, re-identify"
                                        ).add_subparsers(dest="extract_command", metavar="ACTION", required=True)

    plan = extract.add_parser("plan", help="print which tables, columns and transforms a study's extract holds")
    plan.add_argument("slug")
    plan.set_defaults(handler=cmd_plan)

    build = extract.add_parser("build", help="build (or rebuild) the extract of an approved or active study")
    build.add_argument("slug")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_actor_option(build)
    build.set_defaults(handler=cmd_build)

    publish = extract.add_parser("publish", help="Kubernetes sites: copy a study's verified extract into the "
                                                 "volume(s) its bubbles mount (a member added in per-member mode, "
                                                 "a failed fill); nothing to do on a local site")
    publish.add_argument("slug")
    add_actor_option(publish)
    publish.set_defaults(handler=cmd_publish)

    verify = extract.add_parser("verify", help="check an extract's sha256 and its manifest's signature "
                                               "(exit 1 on any mismatch)")
    verify.add_argument("path", help="the study folder, its extract.duckdb or its manifest.json")
    verify.set_defaults(handler=cmd_verify)

    dry = extract.add_parser("dry-run", help="cohort size (under k shown as '< k') and risk report, for a steward; "
                                             "writes no extract")
    dry.add_argument("slug")
    add_actor_option(dry)
    dry.set_defaults(handler=cmd_dry_run)

    again = extract.add_parser("reidentify", help="map pseudonyms back to warehouse person ids with a custodian "
                                                  "quorum (audited with the reason)")
    again.add_argument("slug")
    again.add_argument("pseudonyms", nargs="+", metavar="PSEUDONYM")
    again.add_argument("--share", action="append", required=True, metavar="FILE",
                       help="a share decrypted by its custodian (`bubble-manager keys decrypt-share`); repeat "
                            "for each of the k custodians")
    again.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    add_actor_option(again)
    again.set_defaults(handler=cmd_reidentify)


def cmd_plan(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    study = StudyOperations(context).get(args.slug)
    try:
        plan = make_plan(study, context.catalog, date_shift_days=extract_settings(context).date_shift_days)
    except PlanError as error:
        raise CommandError(str(error)) from None
    emit(args, plan.as_dict(), lambda: describe_plan(plan))
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    context = open_context(args)
    try:
        result = build_extract(context, cli_actor(args, {"admin"}), args.slug, progress=not args.no_progress)
    except ExtractError as error:
        hint = " (a steward sees the detail with `bubble-manager extract dry-run`)" if error.detail else ""
        raise CommandError(f"{error}{hint}") from None
    lines = [f"extract of {result.slug} built in {result.seconds:.1f} s: {result.extract}",
             f"sha256 {result.sha256}", "rows: " + ", ".join(f"{t} {n}" for t, n in result.rows.items())]
    if result.leftovers_removed:
        lines.append("removed what an interrupted build left: " + ", ".join(result.leftovers_removed))
    data = result.as_dict()
    if StudyOperations(context).get(args.slug).state.value == "active":  # its bubbles mount the old one
        filled = publish(context, args.slug, args.actor, built=True)
        if filled is not None:
            data["volumes"] = [target.claim for target in filled.targets]
            lines.append("extract volume(s) refilled: " + ", ".join(data["volumes"]))
    emit(args, data, "\n".join(lines))
    return EXIT_OK


def publish(context, slug: str, actor: str, *, built: bool = False):  # noqa: ANN001, ANN201
    """Fill the study's extract volume(s) on a Kubernetes site (None elsewhere); CommandError if not filled."""
    try:
        return publish_extract(context, slug, actor=actor)
    except (RuntimeError, ValueError) as error:  # ExtractFillError, or a site setting to fix
        done = "the extract was built, but " if built else ""
        raise CommandError(f"{done}its volume was not filled: {error}; once fixed, run `bubble-manager extract "
                           f"publish {slug}`") from None


def cmd_publish(args: argparse.Namespace) -> int:
    context = open_context(args)
    actor = cli_actor(args, {"admin"})
    filled = publish(context, args.slug, actor.name)
    if filled is None:
        emit(args, {"study": args.slug, "volumes": None}, "nothing to publish: this site does not run the Kubernetes "
             "profile (c.KubeStudyJobs.enabled is off), bubbles read the extract on the hub")
        return EXIT_OK
    volumes = [target.claim for target in filled.targets]
    emit(args, {"study": args.slug, "manifest_sha256": filled.manifest_sha256, "volumes": volumes},
         f"extract of {args.slug} ({filled.manifest_sha256[:12]}) copied into " + ", ".join(volumes))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    context = open_context(args, require_signer=False)
    verification = verify_extract(Path(args.path), context.verifier())
    if verification.ok:
        text = f"ok: {verification.extract_path} matches its signed manifest ({verification.manifest_path})"
    else:
        text = "FAILED:\n" + "\n".join(f"  {problem}" for problem in verification.problems)
    emit(args, verification.as_dict(), text)
    return EXIT_OK if verification.ok else EXIT_FAILED


def cmd_dry_run(args: argparse.Namespace) -> int:
    context = open_context(args)
    try:
        result = dry_run(context, cli_actor(args, {"steward"}), args.slug)
    except CohortRefused as refused:
        detail = f"\n  detail (stewards only): {refused.detail}" if refused.detail else ""
        raise CommandError(f"cohort query refused: {refused}{detail}") from None
    except (PlanError, PermissionError) as error:
        raise CommandError(str(error)) from None
    text = (f"study {result['study']}: cohort {result['cohort']} person(s) (k={result['k']})\n"
            + (describe_risk(result["risk"]) if result["risk"] else result.get("note", "")))
    emit(args, result, text)
    return EXIT_OK


def cmd_reidentify(args: argparse.Namespace) -> int:
    from ..archive.commands import read_share_texts

    context = open_context(args)
    try:
        found = reidentify(context, cli_actor(args, {"admin"}), args.slug, args.pseudonyms,
                           read_share_texts(args.share), args.reason)
    except ReidentifyRefused as error:
        raise CommandError(str(error)) from None
    emit(args, found, "\n".join(f"{p}\t{'not in this study' if v is None else v}" for p, v in found.items()))
    return EXIT_OK
