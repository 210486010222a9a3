"""CLI of the archive subsystem: custodian and study-key commands under `keys`, and `archive ...`.

`keys custodian-new` and `keys decrypt-share` run on a custodian's own machine and never touch
the hub's store; the other commands open the hub's context and are audited.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_common import EXIT_FAILED, EXIT_OK, CommandError, emit, open_context, os_user, settings_of
from .keys import (KEY_TYPES, KeyStoreError, add_custodian, decrypt_share, list_custodians, new_custodian_identity,
                   recover_archive_identity, remove_custodian, write_identity_file)
from .shares import ShareError


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from .rotate import register_rotate

    _register_keys(groups["keys"])
    register_rotate(groups["keys"])
    register_archive(groups["root"])


def _register_keys(keys: argparse._SubParsersAction) -> None:
    new = keys.add_parser("custodian-new", help="make an age identity for a custodian to keep offline "
                                                "(prints its public key; runs without the hub)")
    new.add_argument("--out", required=True, help="identity file to create (mode 0600, never overwritten)")
    new.add_argument("--type", choices=KEY_TYPES, help="key type (default: c.PostQuantumSettings.custodian_key_type, "
                                                        "mlkem768x25519; x25519 for age CLIs older than 1.3)")
    new.set_defaults(handler=cmd_custodian_new)

    custodians = keys.add_parser("custodians", help="custodians who hold shares of study archive keys"
                                 ).add_subparsers(dest="custodians_command", metavar="ACTION", required=True)
    add = custodians.add_parser("add", help="register a custodian by their age public key")
    add.add_argument("name")
    add.add_argument("public_key", metavar="AGE_PUBLIC_KEY", help="age1... (from `keys custodian-new`)")
    _actor(add)
    add.set_defaults(handler=cmd_custodians_add)
    custodians.add_parser("list", help="list registered custodians").set_defaults(handler=cmd_custodians_list)
    remove = custodians.add_parser("remove", help="stop giving new shares to a custodian")
    remove.add_argument("name")
    _actor(remove)
    remove.set_defaults(handler=cmd_custodians_remove)

    decrypt = keys.add_parser("decrypt-share", help="decrypt your share of a study's archive key "
                                                    "(on your own machine; no hub access)")
    decrypt.add_argument("--identity", required=True, help="your age identity file")
    decrypt.add_argument("share", metavar="SHARE_FILE", help="the encrypted share (.age) you were sent")
    decrypt.add_argument("--out", help="write the decrypted share here (0600) instead of standard output")
    decrypt.set_defaults(handler=cmd_decrypt_share)

    recover = keys.add_parser("recover", help="rebuild a study's archive identity from k decrypted shares")
    recover.add_argument("slug")
    recover.add_argument("--share", action="append", required=True, metavar="FILE",
                         help="a decrypted share (repeat for each custodian)")
    recover.add_argument("--out", help="write the identity as an age identity file (0600); without it the "
                                       "shares are only checked")
    recover.add_argument("--reason", default="", help="why (recorded in the audit log)")
    recover.add_argument("--offline", action="store_true",
                         help="do not open the hub's store (disaster recovery: nothing is audited)")
    _actor(recover, required=False)
    recover.set_defaults(handler=cmd_recover)


def _actor(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--actor", required=required, default=None, metavar="NAME",
                        help="who acts (recorded in the audit log; default: your OS user)")


def actor_name(args: argparse.Namespace) -> str:
    """The audited actor: the asserted name, else the OS user who ran the command."""
    return args.actor or os_user()


def read_share_texts(paths: list[str]) -> list[str]:
    texts = []
    for path in paths:
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"share file {path} not found") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not a decrypted share (binary content): its custodian decrypts it with "
                               "`bubble-manager keys decrypt-share --identity FILE SHARE`") from None
    return texts


def cmd_custodian_new(args: argparse.Namespace) -> int:
    key_type = args.type
    if key_type is None:
        from .rotate import PostQuantumSettings

        key_type = PostQuantumSettings(config=settings_of(args).config).custodian_key_type
    recipient = new_custodian_identity(Path(args.out), key_type)
    emit(args, {"identity_file": args.out, "public_key": recipient.to_string()},
         f"{recipient.to_string()}\nidentity written to {args.out}: keep it offline (and a backup); give the "
         "public key above to the hub admin for `bubble-manager keys custodians add NAME PUBLIC_KEY`")
    return EXIT_OK


def cmd_custodians_add(args: argparse.Namespace) -> int:
    context = open_context(args)
    try:
        custodian = add_custodian(context, args.name, args.public_key, actor=actor_name(args))
    except KeyStoreError as error:
        raise CommandError(str(error)) from None
    emit(args, custodian.as_dict(), f"custodian {custodian.name} registered ({custodian.recipient}); new studies' "
                                    "archive keys will include a share for them")
    return EXIT_OK


def cmd_custodians_list(args: argparse.Namespace) -> int:
    found = list_custodians(open_context(args, require_signer=False).home)
    rows = [c.as_dict() for c in found]

    def table() -> str:
        if not rows:
            return "no custodians: register some with `bubble-manager keys custodians add NAME AGE_PUBLIC_KEY`"
        return "\n".join([f"{'NAME':<24} {'ADDED':<28} PUBLIC KEY"] +
                         [f"{r['name']:<24} {r['added_at']:<28} {r['recipient']}" for r in rows])

    emit(args, rows, table)
    return EXIT_OK


def cmd_custodians_remove(args: argparse.Namespace) -> int:
    context = open_context(args)
    try:
        holding = remove_custodian(context, args.name, actor=actor_name(args))
    except KeyStoreError as error:
        raise CommandError(str(error)) from None
    note = (f"; they still hold shares of {', '.join(holding)} (those stay valid until the studies are purged)"
            if holding else "")
    emit(args, {"removed": args.name, "still_holds_shares_of": holding}, f"custodian {args.name} removed{note}")
    return EXIT_OK


def cmd_decrypt_share(args: argparse.Namespace) -> int:
    try:
        document = decrypt_share(Path(args.share), Path(args.identity))
    except (KeyStoreError, ShareError) as error:
        raise CommandError(str(error)) from None
    text = document.to_text()
    if args.out:
        from .fsutil import write_new

        out = Path(args.out)
        if out.exists() or out.is_symlink():
            raise CommandError(f"{out} already exists; choose another --out")
        write_new(out, text.encode("utf-8"), 0o600)
        print(f"share {document.index} of {document.count} of study {document.study} written to {out}; hand it "
              "over only for an approved restore, then delete it", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    if args.out and (Path(args.out).exists() or Path(args.out).is_symlink()):
        raise CommandError(f"{args.out} already exists; choose another --out")  # before anything is recovered
    texts = read_share_texts(args.share)
    context = None if args.offline else open_context(args, require_signer=False)
    try:
        identity = recover_archive_identity(context, args.slug, texts, actor=actor_name(args), reason=args.reason)
    except (ShareError, KeyStoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    public = identity.recipient().to_string()
    if args.out:
        write_identity_file(identity, Path(args.out), f"archive key of study {args.slug}, recovered from "
                                                      f"{len(texts)} custodian shares")
    emit(args, {"study": args.slug, "archive_recipient": public, "identity_file": args.out},
         f"archive key of study {args.slug} recovered ({public})"
         + (f"; identity written to {args.out}: delete it when the restore is done" if args.out
            else "; add --out FILE to write it as an age identity file"))
    return EXIT_OK


# --- archive ... ---------------------------------------------------------------------------------

def register_archive(root: argparse._SubParsersAction) -> None:
    archive = root.add_parser("archive", help="encrypted study archives: snapshot, list, verify, restore, purge"
                              ).add_subparsers(dest="archive_command", metavar="ACTION", required=True)
    snap = archive.add_parser("snapshot", help="archive a study's files now (encrypted to its archive key)")
    snap.add_argument("slug")
    _actor(snap, required=False)
    snap.set_defaults(handler=cmd_archive_snapshot)

    listing = archive.add_parser("list", help="list archives")
    listing.add_argument("--study", help="only this study's archives")
    listing.set_defaults(handler=cmd_archive_list)

    check = archive.add_parser("verify", help="check an archive's envelope signature, sha256 and size "
                                              "(without decrypting)")
    check.add_argument("path", help="the .tar.zst.age file (its .envelope.json sits beside it)")
    check.set_defaults(handler=cmd_archive_verify)

    back = archive.add_parser("restore", help="decrypt, check and restore an archive into a new folder")
    back.add_argument("archive", help="the .tar.zst.age file")
    back.add_argument("--to", required=True, help="new (or empty) folder to restore into")
    keys = back.add_mutually_exclusive_group(required=True)
    keys.add_argument("--share", action="append", metavar="FILE", help="a decrypted custodian share (repeat, k needed)")
    keys.add_argument("--identity", help="the study's recovered archive identity file (`keys recover --out`)")
    back.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    back.add_argument("--for-study", metavar="SLUG", help="the new study reusing this data (audited on both)")
    _actor(back, required=False)
    back.set_defaults(handler=cmd_archive_restore)

    purge = archive.add_parser("purge", help="after the retention date: destroy the study's key shares, vault "
                                             "and archives, and write a signed deletion certificate")
    purge.add_argument("slug")
    _actor(purge)
    purge.set_defaults(handler=cmd_archive_purge)


def cmd_archive_snapshot(args: argparse.Namespace) -> int:
    from .snapshot import SnapshotError, snapshot

    context = open_context(args)
    try:
        result = snapshot(context, args.slug, actor=actor_name(args))
    except (SnapshotError, KeyStoreError) as error:
        raise CommandError(str(error)) from None
    skipped = ", ".join(f"{count} {code}" for code, count in sorted(result.skipped.items()))
    emit(args, result.as_dict(),
         f"archive {result.number} of {result.slug}: {result.path} ({result.size:,} bytes encrypted, "
         f"{result.members} members, {result.plaintext_bytes:,} bytes before compression, {result.seconds:.1f} s)"
         + (f"\nleft out: {skipped} (listed with reasons in the archive's signed manifest)" if skipped else ""))
    return EXIT_OK


def cmd_archive_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ..store import ArchiveRow

    context = open_context(args, require_signer=False)
    with context.store.transaction() as session:
        query = select(ArchiveRow).order_by(ArchiveRow.slug, ArchiveRow.number)
        if args.study:
            query = query.where(ArchiveRow.slug == args.study)
        rows = [{"study": r.slug, "number": r.number, "path": r.path, "sha256": r.sha256, "size": r.size,
                 "created_at": r.created_at, "state": r.state} for r in session.scalars(query)]

    def table() -> str:
        if not rows:
            return "no archives"
        return "\n".join([f"{'STUDY':<30} {'N':>3} {'STATE':<7} {'SIZE':>14} {'CREATED':<20} PATH"] +
                         [f"{r['study']:<30} {r['number']:>3} {r['state']:<7} {r['size']:>14,} "
                          f"{r['created_at']:%Y-%m-%d %H:%M}     {r['path']}" for r in rows])

    emit(args, rows, table)
    return EXIT_OK


def cmd_archive_verify(args: argparse.Namespace) -> int:
    from .manifest import SignedDocumentError
    from .snapshot import verify_envelope

    context = open_context(args, require_signer=False)
    path = Path(args.path)
    if not path.is_file():
        raise CommandError(f"{path} is not a file")
    try:
        document = verify_envelope(context.verifier(), path)
    except FileNotFoundError:
        raise CommandError(f"no envelope beside {path} ({path.name}.envelope.json): it cannot be checked "
                           "without decrypting") from None
    except SignedDocumentError as error:
        emit(args, {"ok": False, "problem": str(error)}, f"archive {path.name} FAILED: {error}")
        return EXIT_FAILED
    emit(args, {"ok": True, **document}, f"archive {path.name} verified: study {document['study']}, number "
                                         f"{document['number']}, {document['size']:,} bytes, made "
                                         f"{document['created_at']}, signed by {document['key_id']}")
    return EXIT_OK


def cmd_archive_restore(args: argparse.Namespace) -> int:
    from .age import AgeError, parse_identity_file
    from .restore import RestoreError, restore
    from .shares import ShareDocument

    context = open_context(args, require_signer=False)
    actor = actor_name(args)
    try:
        if args.identity:
            identities = parse_identity_file(Path(args.identity).read_text(encoding="ascii"))
        else:
            texts = read_share_texts(args.share)
            slug = ShareDocument.parse(texts[0], source=args.share[0]).study
            identities = [recover_archive_identity(context, slug, texts, actor=actor,
                                                   reason=f"restore: {args.reason}")]
        result = restore(context, Path(args.archive), Path(args.to), identities, reason=args.reason, actor=actor,
                         for_study=args.for_study)
    except (AgeError, ShareError, KeyStoreError, RestoreError, UnicodeDecodeError) as error:
        raise CommandError(str(error)) from None
    emit(args, result.as_dict(), f"archive {result.number} of {result.study} restored into {result.destination} "
                                 f"({result.members} members, {result.bytes:,} bytes; every sha256 and the "
                                 f"manifest signature checked; envelope {result.envelope})")
    return EXIT_OK


def cmd_archive_purge(args: argparse.Namespace) -> int:
    from .purge import PurgeError, purge

    context = open_context(args)
    try:
        result = purge(context, args.slug, actor=actor_name(args),
                       via={"channel": "cli", "asserted_actor": True, "os_user": os_user()})
    except (PurgeError, KeyStoreError) as error:
        raise CommandError(str(error)) from None
    emit(args, result.as_dict(), f"study {result.study} purged: {len(result.archives)} archive(s) deleted, "
                                 f"{result.key_files} key file(s) shredded, vault "
                                 f"{'destroyed' if result.vault else 'absent'}; certificate {result.certificate}")
    return EXIT_OK
