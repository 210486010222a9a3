"""Move a study's archives to a hybrid post-quantum archive key by rewriting headers only.

An age file's payload depends on its file key alone; the header wraps that file key to the
recipients. `rotate_to_pq` therefore rebuilds the study's current (X25519) archive identity from a
custodian quorum, makes a new hybrid `mlkem768x25519` archive identity, splits it to the same
custodians with the same quorum, and rewrites the header of every archive of the study (and of its
vault) to the new key. Payload bytes stay as they are.

Each file is rewritten into a temporary file in its folder (fsynced), verified as read back from
disk (header MAC, every payload chunk, and the new stanza opened with the new identity), then
renamed over the original together with its re-signed envelope, the store row and an audit entry.
The whole rotation is resumable: the new key's shares are staged first under
`keys/studies/<slug>/rotation/`, so a rotation cut short is finished by running it again with the
same quorum (files already moved are recognised and skipped). Only when every file is moved do the
new shares replace the old ones, which are kept under `retired/` (purge shreds them with the rest);
nothing is destroyed by a rotation.

What it does not do: copies of the archives made before the rotation (backups, stolen copies)
keep their old header and the old, classical protection. See docs/post-quantum.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sqlalchemy import select
from tqdm import tqdm
from traitlets import Enum
from traitlets.config import Configurable

from .. import clock
from ..runtime.spec import StudyPaths
from ..store import ArchiveRow
from .age import (AgeError, AgeReader, HybridIdentity, Identity, Recipient, X25519Identity,
                  parse_recipient, read_header, rewrite_header)
from .age_format import read_header_bytes, parse_header, unwrap_file_key
from .age_mlkem import STANZA_TYPE as HYBRID_STANZA_TYPE
from .fsutil import fsync_dir, locked, private_dir, write_atomic, write_new
from .keys import (RECORD_NAME, SYSTEM_ACTOR, KeyStoreError, keys_root, load_study_keys, recover_archive_identity,
                   require_study_keys, study_keys_dir)
from .manifest import ENVELOPE_FORMAT, SignedDocumentError, parse, sign, to_bytes, verify
from .shares import ShareDocument, split_identity
from .snapshot import archive_dir, envelope_path_for, verify_envelope

HYBRID_ENCRYPTION = "age-encryption.org/v1 (mlkem768x25519)"
ROTATION_DIR = "rotation"
RETIRED_DIR = "retired"
PENDING_NAME = "pending.json"
TEMP_SUFFIX = ".rotating"  # not `.tmp`: snapshot's leftover cleanup must not remove a half-committed pair
_COPY_BUFFER = 1 << 20


class RotationError(RuntimeError):
    """The rotation cannot start or continue; the message says why and what to do."""


class PostQuantumSettings(Configurable):
    """Which age key type new study archive keys and custodian keys use."""

    archive_key_type = Enum(
        ["mlkem768x25519", "x25519"], default_value="mlkem768x25519",
        help="Key type of new study archive keys (and live keys). 'mlkem768x25519' (hybrid ML-KEM-768 + "
             "X25519, age1pq1...) stays confidential if either algorithm holds, for archives kept 20 years; "
             "'x25519' is for sites that must open archives with an age CLI older than 1.3 (Debian 12 has "
             "1.1.1). Existing studies keep their keys; `bubble-manager keys rotate --pq` moves them.",
    ).tag(config=True)
    custodian_key_type = Enum(
        ["mlkem768x25519", "x25519"], default_value="mlkem768x25519",
        help="Key type `bubble-manager keys custodian-new` makes. Shares of hybrid archive keys encrypted to "
             "X25519 custodian keys are only as safe as X25519: keep both hybrid.",
    ).tag(config=True)


def new_identity(key_type: str) -> HybridIdentity | X25519Identity:
    """A fresh identity of `key_type` ('mlkem768x25519' or 'x25519'), as PostQuantumSettings names them."""
    if key_type == "mlkem768x25519":
        return HybridIdentity.generate()
    if key_type == "x25519":
        return X25519Identity.generate()
    raise ValueError(f"unknown age key type {key_type!r}: use 'mlkem768x25519' or 'x25519'")


def is_post_quantum(recipient: object) -> bool:
    return bool(getattr(recipient, "post_quantum", False))


# --- what the key store must support ------------------------------------------------------------

def hybrid_key_store_gap() -> str | None:
    """None if keys.py/shares.py can hold a hybrid archive key, else what they lack.

    Probed through their public functions on a throw-away key store, so the rotation starts only
    when the record it writes can be read back and the new shares can be recombined.
    """
    identity = HybridIdentity.generate()
    recipient = identity.recipient().to_string()
    with tempfile.TemporaryDirectory(prefix="bm-pq-probe-") as home:
        folder = Path(home) / "keys" / "studies" / "probe"
        folder.mkdir(parents=True)
        record = {"format": "bubble-manager-study-keys/1", "study": "probe", "archive_recipient": recipient,
                  "live_recipient": recipient, "threshold": 1, "count": 1, "custodians": ["probe"],
                  "created_at": clock.isoformat(clock.utcnow()), "live_key_destroyed_at": None, "shares": []}
        (folder / RECORD_NAME).write_text(json.dumps(record))
        try:
            keys = load_study_keys(Path(home), "probe")
        except (AgeError, ValueError, KeyError, TypeError) as error:
            return (f"the key store cannot read a study record whose archive key is hybrid ({error}): keys.py must "
                    "parse archive_recipient and live_recipient with parse_recipient, not X25519Recipient")
        if keys is None or keys.archive_recipient.to_string() != recipient:
            return "the key store does not return the hybrid archive recipient it was given"
    from . import keys as key_store

    document = ShareDocument(study="probe", index=1, threshold=1, count=1, archive_recipient=recipient,
                             custodian="probe", created="", mnemonic=split_identity(identity, 1, 1)[0])
    try:
        rebuilt = key_store.combine_shares([document], "probe")
    except ValueError as error:
        return (f"custodian shares of a hybrid archive key do not recombine ({error}): shares.combine_shares must "
                "rebuild a HybridIdentity when the share's archive-recipient is age1pq1...")
    if rebuilt.recipient().to_string() != recipient:
        return "shares.combine_shares rebuilds another key than the hybrid one it was given"
    return None


# --- one file ----------------------------------------------------------------------------------

@dataclass
class RewrittenFile:
    size: int
    sha256: str


def rewrite_verified(source: Path, temp: Path, old_identities: Sequence[Identity],
                     new_recipients: Sequence[Recipient], new_identity: Identity | None,
                     advance: Callable[[int], None] = lambda _n: None) -> RewrittenFile:
    """Write `source` with a header for `new_recipients` into `temp` (fsynced), and verify it from disk.

    The copy authenticates every payload chunk of `source`; the verification reads `temp` back and
    checks that its header holds only stanzas of the new recipients' types, that it opens with
    `new_identity` (when given) to the same file key, that its MAC verifies and that every payload
    chunk authenticates. Returns the size and sha256 of `temp`. `temp` is removed on any failure.
    """
    try:
        with open(source, "rb") as src:
            old_file_key = unwrap_file_key(parse_header(read_header_bytes(src)[0]), old_identities)
        rewrite_header(source, temp, old_identities, new_recipients, verify_payload=True)
        advance(temp.stat().st_size)
        digest = hashlib.sha256()
        size = 0
        with open(temp, "rb") as raw:
            reader = _HashingReader(raw, digest, advance)
            header_bytes, leftover = read_header_bytes(reader)
            header = parse_header(header_bytes)
            types = [stanza.type for stanza in header.stanzas]
            if all(is_post_quantum(r) for r in new_recipients) and set(types) != {HYBRID_STANZA_TYPE}:
                raise RotationError(f"{temp.name}: the rewritten header holds stanzas {types}, expected only "
                                    f"{HYBRID_STANZA_TYPE}")
            if new_identity is not None:
                if unwrap_file_key(header, [new_identity]) != old_file_key:
                    raise RotationError(f"{temp.name}: the new key opens the rewritten header to another file key")
            else:
                unwrap_file_key(header, [_FixedKey(old_file_key)])  # checks the MAC
            AgeReader.from_file_key(_Prefixed(leftover, reader), old_file_key).verify_to_end()
            size = reader.count
        return RewrittenFile(size=size, sha256=digest.hexdigest())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class _FixedKey:
    """An identity that returns a known file key: lets unwrap_file_key check a header's MAC."""

    def __init__(self, file_key: bytes) -> None:
        self._file_key = file_key

    def unwrap(self, stanzas) -> bytes:
        return self._file_key


class _HashingReader:
    def __init__(self, raw, digest, advance: Callable[[int], None]) -> None:
        self._raw, self._digest, self._advance, self.count = raw, digest, advance, 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._note(data)
        return data

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer) or 0
        self._note(memoryview(buffer)[:count])
        return count

    def _note(self, data) -> None:
        self._digest.update(data)
        self.count += len(data)
        self._advance(len(data))


class _Prefixed:
    def __init__(self, prefix: bytes, src) -> None:
        self._prefix, self._src = prefix, src

    def readinto(self, buffer) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._src.readinto(buffer)


def header_is_hybrid(path: Path) -> bool:
    """True if every stanza of the file's header is an mlkem768x25519 stanza."""
    with open(path, "rb") as file:
        return all(stanza.type == HYBRID_STANZA_TYPE for stanza in read_header(file).stanzas)


# --- a study --------------------------------------------------------------------------------------

@dataclass
class RotationResult:
    slug: str
    old_recipient: str
    new_recipient: str
    rotated: list[int] = field(default_factory=list)
    already_rotated: list[int] = field(default_factory=list)
    vault: str = "absent"
    resumed: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"study": self.slug, "old_recipient": self.old_recipient, "new_recipient": self.new_recipient,
                "rotated": self.rotated, "already_rotated": self.already_rotated, "vault": self.vault,
                "resumed": self.resumed}


def rotate_to_pq(context, slug: str, decrypted_shares: Iterable[str], progress: bool = True, *,
                 actor: str = SYSTEM_ACTOR, reason: str = "") -> RotationResult:
    """Move study `slug`'s archives (and vault) to a new hybrid archive key; resumable; audited.

    `decrypted_shares` are k decrypted shares of the study's current archive key. Raises
    RotationError (or KeyStoreError / ShareError from the key store) naming the problem; files
    are replaced one by one, each atomically and only after verification.
    """
    gap = hybrid_key_store_gap()
    if gap:
        context.audit.record(actor=actor, action="keys.rotate-refused", study=None,
                             detail={"slug": slug, "problem": gap[:300]})
        raise RotationError(f"cannot rotate study {slug} to a post-quantum key with this key store: {gap}")
    home = context.home
    keys = require_study_keys(home, slug)
    key_folder = study_keys_dir(home, slug)
    pending = _load_pending(key_folder)
    if is_post_quantum(keys.archive_recipient) and pending is None:
        raise RotationError(f"study {slug}'s archive key is already post-quantum ({keys.archive_recipient.to_string()[:24]}"
                            "...): nothing to rotate")
    vault_path = StudyPaths(home, slug).vault
    vault_recipients_extra = _vault_extra_recipients(keys, vault_path, slug)
    old_identity = recover_archive_identity(context, slug, list(decrypted_shares), actor=actor,
                                            reason=reason or "rotation to a post-quantum archive key")
    new_identity: HybridIdentity | None = None
    if pending is None:
        new_identity = HybridIdentity.generate()
        pending = _stage_new_shares(context, slug, keys, new_identity, actor)
    new_recipient = parse_recipient(pending["archive_recipient"])
    result = RotationResult(slug=slug, old_recipient=keys.archive_recipient.to_string(),
                            new_recipient=new_recipient.to_string(), resumed=new_identity is None)
    # The archive folder's lock (the one snapshots take) is held until the new key is installed, so no
    # archive appears half way through under the key being retired.
    with locked(private_dir(archive_dir(home, slug)) / ".lock"):
        _rotate_archives(context, slug, old_identity, new_recipient, new_identity, result, progress, actor)
        if vault_path.exists():
            result.vault = _rotate_vault(context, slug, vault_path, old_identity,
                                         [*vault_recipients_extra, new_recipient], new_identity, actor)
        _install_new_shares(context, slug, key_folder, pending, actor, result)
    return result


def _vault_extra_recipients(keys, vault_path: Path, slug: str) -> list[Recipient]:
    """The vault's other recipient (the live key) if it must stay, or a RotationError if it cannot."""
    if not vault_path.exists() or keys.live_key_destroyed:
        return []
    if is_post_quantum(keys.live_recipient):
        return [keys.live_recipient]
    raise RotationError(f"study {slug} still runs with a classical (X25519) live key, and its vault must stay "
                        "readable by it: a file cannot mix post-quantum and classical recipients. Rotate once the "
                        "study is archived (the live key is destroyed then), or once live keys are hybrid")


def _load_pending(key_folder: Path) -> dict | None:
    path = key_folder / ROTATION_DIR / PENDING_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _stage_new_shares(context, slug: str, keys, new_identity: HybridIdentity, actor: str) -> dict:
    """Split the new key to the study's custodians (same quorum) into keys/studies/<slug>/rotation/."""
    key_folder = study_keys_dir(context.home, slug)
    record = json.loads((key_folder / RECORD_NAME).read_text(encoding="utf-8"))
    holders = [(share["custodian"], share["custodian_recipient"]) for share in record["shares"]]
    new_recipient = new_identity.recipient().to_string()
    now = clock.isoformat(clock.utcnow())
    mnemonics = split_identity(new_identity, keys.threshold, len(holders))
    staging = private_dir(key_folder / f".{ROTATION_DIR}-{secrets.token_hex(4)}")
    try:
        shares_folder = private_dir(staging / "shares")
        share_records = []
        for index, ((custodian, custodian_recipient), mnemonic) in enumerate(zip(holders, mnemonics), start=1):
            document = ShareDocument(study=slug, index=index, threshold=keys.threshold, count=len(holders),
                                     archive_recipient=new_recipient, custodian=custodian, created=now,
                                     mnemonic=mnemonic)
            name = f"{index}-{custodian}.age"
            _write_encrypted(shares_folder / name, document.to_text().encode("utf-8"),
                             parse_recipient(custodian_recipient))
            share_records.append({"index": index, "custodian": custodian, "custodian_recipient": custodian_recipient,
                                  "file": f"shares/{name}"})
        pending = {"archive_recipient": new_recipient, "previous_archive_recipient": record["archive_recipient"],
                   "started_at": now, "started_by": actor, "shares": share_records}
        write_new(staging / PENDING_NAME, json.dumps(pending, indent=2).encode(), 0o600)
        fsync_dir(shares_folder)
        fsync_dir(staging)
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="keys.rotation-started", study=slug, detail={
                "new_archive_recipient": new_recipient, "previous_archive_recipient": record["archive_recipient"],
                "threshold": keys.threshold, "custodians": [c for c, _ in holders]})
            os.rename(staging, key_folder / ROTATION_DIR)
        fsync_dir(key_folder)
    except BaseException:
        from .fsutil import shred_tree

        if staging.exists():
            shred_tree(staging)
        raise
    return pending


def _write_encrypted(path: Path, plaintext: bytes, recipient: Recipient) -> None:
    from .age import AgeWriter

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        with AgeWriter(out, [recipient]) as writer:
            writer.write(plaintext)
        out.flush()
        os.fsync(out.fileno())


def _rotate_archives(context, slug: str, old_identity: Identity, new_recipient: Recipient,
                     new_identity: Identity | None, result: RotationResult, progress: bool, actor: str) -> None:
    """Rotate every kept archive of the study (called with the archive folder's lock held)."""
    with context.store.transaction() as session:
        rows = [(row.number, Path(row.path)) for row in session.scalars(
            select(ArchiveRow).where(ArchiveRow.slug == slug, ArchiveRow.state == "kept").order_by(ArchiveRow.number))]
    _finish_half_committed(context, slug, rows, actor, result)
    todo = []
    for number, path in rows:
        if number in result.rotated:
            continue
        if header_is_hybrid(path):
            _check_already_rotated(context, slug, number, path)
            result.already_rotated.append(number)
        else:
            todo.append((number, path))
    # Three passes per archive: envelope hash check, rewrite (authenticating), read-back verification.
    total = 3 * sum(path.stat().st_size for _n, path in todo)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress or not todo,
              desc=f"rotating {slug}", leave=True) as bar:
        for number, path in todo:
            bar.set_postfix_str(path.name)
            _rotate_one_archive(context, slug, number, path, old_identity, new_recipient, new_identity,
                                actor, bar.update)
            result.rotated.append(number)


def _rotate_one_archive(context, slug: str, number: int, path: Path, old_identity: Identity,
                        new_recipient: Recipient, new_identity: Identity | None, actor: str,
                        advance: Callable[[int], None]) -> None:
    try:
        old_envelope = verify_envelope(context.verifier(), path)
    except (SignedDocumentError, FileNotFoundError) as error:
        raise RotationError(f"archive {number} of study {slug} does not match its signed envelope ({error}); "
                            "rotation stopped before touching it: run `bubble-manager archive verify` and restore "
                            "it from a copy, then rotate again") from None
    advance(old_envelope["size"])
    temp, envelope_temp = _temp_names(path)
    rewritten = rewrite_verified(path, temp, [old_identity], [new_recipient], new_identity, advance)
    try:
        envelope = {**old_envelope, "sha256": rewritten.sha256, "size": rewritten.size,
                    "encryption": HYBRID_ENCRYPTION, "rotated_at": clock.isoformat(clock.utcnow())}
        write_new(envelope_temp, to_bytes(sign(envelope, context.signer)), 0o600)
        _commit_pair(context, slug, number, path, temp, envelope_temp, old_envelope["sha256"], rewritten, actor,
                     new_recipient)
    except BaseException:
        if temp.exists():  # not renamed yet: the original is intact, drop both temporary files
            temp.unlink()
            envelope_temp.unlink(missing_ok=True)
        # else the archive was renamed: its new envelope stays for _finish_half_committed
        raise


def _check_already_rotated(context, slug: str, number: int, path: Path) -> None:
    """An archive a previous run moved: its envelope must match it (a lost envelope is not papered over)."""
    try:
        verify_envelope(context.verifier(), path)
    except (SignedDocumentError, FileNotFoundError) as error:
        raise RotationError(f"archive {number} of study {slug} already has a post-quantum header but does not match "
                            f"its signed envelope ({error}): its envelope was lost after the header was rewritten. "
                            "Check it with the new key (custodians decrypt their new shares) before re-signing") \
            from None


def _temp_names(path: Path) -> tuple[Path, Path]:
    envelope = envelope_path_for(path)
    return path.with_name(f".{path.name}{TEMP_SUFFIX}"), envelope.with_name(f".{envelope.name}{TEMP_SUFFIX}")


def _commit_pair(context, slug: str, number: int, path: Path, temp: Path, envelope_temp: Path, old_sha256: str,
                 rewritten: RewrittenFile, actor: str, new_recipient: Recipient) -> None:
    """Store row, audit entry and both renames in one transaction (archive first, then envelope)."""
    with context.store.transaction() as session:
        row = session.scalar(select(ArchiveRow).where(ArchiveRow.slug == slug, ArchiveRow.number == number))
        row.sha256, row.size = rewritten.sha256, rewritten.size
        context.audit.append(session, actor=actor, action="archive.rotated", study=slug, detail={
            "number": number, "old_sha256": old_sha256, "sha256": rewritten.sha256, "size": rewritten.size,
            "recipient": new_recipient.to_string()})
        # A crash between the renames leaves the new archive beside its new envelope's temporary file,
        # which _finish_half_committed completes on the next run.
        os.rename(temp, path)
        os.rename(envelope_temp, envelope_path_for(path))
        fsync_dir(path.parent)


def _finish_half_committed(context, slug: str, rows, actor: str, result: RotationResult) -> None:
    """Complete archives a crash left renamed but with their new envelope still staged."""
    for number, path in rows:
        temp, envelope_temp = _temp_names(path)
        if temp.exists():
            temp.unlink()  # never renamed: the original is intact; it is redone
        if not envelope_temp.exists():
            continue
        try:
            document = verify(parse(envelope_temp.read_bytes(), envelope_temp.name), context.verifier(),
                              ENVELOPE_FORMAT, envelope_temp.name)
        except SignedDocumentError:
            envelope_temp.unlink()
            continue
        size, digest = _file_sha256(path)
        if (size, digest) != (document["size"], document["sha256"]):
            envelope_temp.unlink()  # the archive was not renamed: it is redone
            continue
        with context.store.transaction() as session:
            row = session.scalar(select(ArchiveRow).where(ArchiveRow.slug == slug, ArchiveRow.number == number))
            old_sha256 = row.sha256
            row.sha256, row.size = digest, size
            context.audit.append(session, actor=actor, action="archive.rotated", study=slug, detail={
                "number": number, "old_sha256": old_sha256, "sha256": digest, "size": size, "completed": True})
            os.rename(envelope_temp, envelope_path_for(path))
            fsync_dir(path.parent)
        result.rotated.append(number)


def _file_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(_COPY_BUFFER):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _rotate_vault(context, slug: str, vault_path: Path, old_identity: Identity, recipients: list[Recipient],
                  new_identity: Identity | None, actor: str) -> str:
    if header_is_hybrid(vault_path):
        return "already rotated"
    temp = vault_path.with_name(f".{vault_path.name}{TEMP_SUFFIX}")
    temp.unlink(missing_ok=True)
    rewritten = rewrite_verified(vault_path, temp, [old_identity], recipients, new_identity)
    try:
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="vault.rotated", study=slug, detail={
                "sha256": rewritten.sha256, "recipients": [r.to_string()[:24] + "..." for r in recipients]})
            os.rename(temp, vault_path)
            fsync_dir(vault_path.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return "rotated"


def _install_new_shares(context, slug: str, key_folder: Path, pending: dict, actor: str,
                        result: RotationResult) -> None:
    """Make the staged key the study's archive key; the old shares move to retired/ (kept until purge).

    Each step can be redone after a crash: the renames are skipped when already done, and the
    record and audit entry are written last.
    """
    staged_shares = key_folder / ROTATION_DIR / "shares"
    retired_name = pending["started_at"].replace("-", "").replace(":", "").replace("+0000", "Z")
    retired = key_folder / RETIRED_DIR / re.sub(r"[^0-9A-Za-z]", "", retired_name)
    with locked(private_dir(keys_root(context.home)) / ".lock"):
        record_path = key_folder / RECORD_NAME
        record = json.loads(record_path.read_text(encoding="utf-8"))
        record["previous_archive_recipients"] = [*record.get("previous_archive_recipients", []), {
            "recipient": pending["previous_archive_recipient"], "retired_at": clock.isoformat(clock.utcnow()),
            "shares": f"{RETIRED_DIR}/{retired.name}"}]
        record["archive_recipient"] = pending["archive_recipient"]
        record["shares"] = pending["shares"]
        record["rotated_at"] = clock.isoformat(clock.utcnow())
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="keys.rotated", study=slug, detail={
                "archive_recipient": pending["archive_recipient"],
                "previous_archive_recipient": pending["previous_archive_recipient"],
                "archives_rotated": sorted(result.rotated), "archives_already_rotated": sorted(result.already_rotated),
                "vault": result.vault})
            if staged_shares.exists():
                if (key_folder / "shares").exists():
                    private_dir(retired.parent)
                    os.rename(key_folder / "shares", retired)
                os.rename(staged_shares, key_folder / "shares")
            write_atomic(record_path, json.dumps(record, indent=2).encode(), 0o600)
            (key_folder / ROTATION_DIR / PENDING_NAME).unlink()
            (key_folder / ROTATION_DIR).rmdir()
            fsync_dir(key_folder)
    if require_study_keys(context.home, slug).archive_recipient.to_string() != pending["archive_recipient"]:
        raise KeyStoreError(f"study {slug}'s key record does not read back the new archive key")


# --- CLI ----------------------------------------------------------------------------------------

def register_rotate(keys_group: argparse._SubParsersAction) -> None:
    """Add `bubble-manager keys rotate --pq SLUG --share FILE ...` to the `keys` command group."""
    rotate = keys_group.add_parser(
        "rotate", help="move a study's archives to a new post-quantum (hybrid ML-KEM-768 + X25519) archive key, "
                       "rewriting archive headers only; needs k decrypted custodian shares of the current key")
    rotate.add_argument("--pq", required=True, metavar="SLUG", dest="slug",
                        help="the study whose archives move to a hybrid mlkem768x25519 archive key")
    rotate.add_argument("--share", action="append", required=True, metavar="FILE",
                        help="a decrypted share of the study's current archive key (repeat for each custodian)")
    rotate.add_argument("--reason", default="", help="why (recorded in the audit log)")
    rotate.add_argument("--no-progress", action="store_true", help="no progress bar")
    rotate.add_argument("--actor", default=None, metavar="NAME",
                        help="who acts (recorded in the audit log; default: your OS user)")
    rotate.set_defaults(handler=cmd_rotate)


def cmd_rotate(args: argparse.Namespace) -> int:
    from ..cli_common import EXIT_OK, CommandError, emit, open_context
    from .commands import actor_name, read_share_texts
    from .shares import ShareError

    texts = read_share_texts(args.share)
    context = open_context(args)
    try:
        result = rotate_to_pq(context, args.slug, texts, progress=not args.no_progress, actor=actor_name(args),
                              reason=args.reason)
    except (RotationError, KeyStoreError, ShareError, AgeError) as error:
        raise CommandError(str(error)) from None
    emit(args, result.as_dict(),
         f"study {result.slug}: {len(result.rotated)} archive(s) moved to the post-quantum key "
         f"{result.new_recipient[:24]}... ({len(result.already_rotated)} already were; vault: {result.vault}). "
         "The custodians' new shares are in the key store; copies of the old archives made before now keep "
         "their old protection.")
    return EXIT_OK
