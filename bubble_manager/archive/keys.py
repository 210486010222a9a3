"""The key store: custodians, and each study's archive key (custodian quorum) and live key (hub-held).

Layout under `$BUBBLE_MANAGER_HOME/keys/` (every folder root-only, 0700):

    custodians/<name>.json            a custodian's name and age public key
    studies/<slug>/study-keys.json    public record: both recipients, k, n, who holds which share
    studies/<slug>/shares/<i>-<custodian>.age
                                      share i of the archive key, age-encrypted to that custodian
    studies/<slug>/live.key           the live age identity (0600), destroyed when the study is archived

No private archive key is ever written: it is generated, split (`shares.py`), each share encrypted
to one custodian, and forgotten. Only its public recipient is kept, which is all the hub needs to
archive. Rebuilding it takes k custodians decrypting their shares on their own machines.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .. import clock
from ..store import load_study
from ..studies import State
from ..study_request import SLUG_PATTERN
from .age import (AgeError, AgeReader, AgeWriter, HybridIdentity, HybridRecipient, X25519Identity, X25519Recipient,
                  parse_identity_file, parse_recipient)
from .fsutil import fsync_dir, locked, private_dir, shred_file, shred_tree, write_atomic, write_new
from .settings import MAX_CUSTODIANS, ArchiveSettings
from .shares import ArchiveIdentity, ShareDocument, ShareError, combine_shares, split_identity

AgeRecipient = X25519Recipient | HybridRecipient
KEY_TYPES = ("mlkem768x25519", "x25519")

if TYPE_CHECKING:
    from ..operations import Context

RECORD_NAME = "study-keys.json"
LIVE_KEY_NAME = "live.key"
SYSTEM_ACTOR = "bubble-manager"
CUSTODIAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class KeyStoreError(RuntimeError):
    """A key is missing, destroyed, or the custodians cannot form the configured quorum."""


@dataclass(frozen=True)
class Custodian:
    name: str
    recipient: str
    added_at: str
    added_by: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "recipient": self.recipient, "added_at": self.added_at, "added_by": self.added_by}


@dataclass(frozen=True)
class StudyKeys:
    """The public side of a study's keys: what the hub needs to encrypt to it."""

    slug: str
    archive_recipient: AgeRecipient
    live_recipient: AgeRecipient
    threshold: int
    count: int
    custodians: tuple[str, ...]
    created_at: str
    live_key_destroyed_at: str | None = None

    @property
    def live_key_destroyed(self) -> bool:
        return self.live_key_destroyed_at is not None

    def as_dict(self) -> dict[str, object]:
        return {"study": self.slug, "archive_recipient": self.archive_recipient.to_string(),
                "live_recipient": self.live_recipient.to_string(), "threshold": self.threshold,
                "count": self.count, "custodians": list(self.custodians), "created_at": self.created_at,
                "live_key_destroyed_at": self.live_key_destroyed_at}


# --- paths ---------------------------------------------------------------------------------------

def keys_root(home: Path) -> Path:
    return Path(home) / "keys"


def custodians_dir(home: Path) -> Path:
    return keys_root(home) / "custodians"


def study_keys_dir(home: Path, slug: str) -> Path:
    _check_slug(slug)
    return keys_root(home) / "studies" / slug


def _lock_path(home: Path) -> Path:
    return private_dir(keys_root(home)) / ".lock"


def _check_slug(slug: str) -> None:
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise KeyStoreError(f"{slug!r} is not a study slug (lower-case letters, digits and dashes)")


# --- custodians ----------------------------------------------------------------------------------

def new_identity(key_type: str) -> ArchiveIdentity:
    """A fresh age identity: 'mlkem768x25519' (hybrid, post-quantum) or 'x25519'."""
    if key_type == "mlkem768x25519":
        return HybridIdentity.generate()
    if key_type == "x25519":
        return X25519Identity.generate()
    raise KeyStoreError(f"unknown age key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")


def new_custodian_identity(out: Path, key_type: str = "mlkem768x25519") -> AgeRecipient:
    """Write a new age identity file for a custodian to keep offline (0600, never overwrites)."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{out} already exists; choose another --out (an identity is never overwritten)")
    identity = new_identity(key_type)
    recipient = identity.recipient()
    text = (f"# created: {clock.isoformat(clock.utcnow())}\n# public key: {recipient.to_string()}\n"
            f"{identity.to_string()}\n")
    write_new(out, text.encode("ascii"), 0o600)
    return recipient


def list_custodians(home: Path) -> list[Custodian]:
    folder = custodians_dir(home)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(Custodian(data["name"], data["recipient"], data["added_at"], data["added_by"]))
    return found


def add_custodian(context: "Context", name: str, recipient_text: str, *, actor: str) -> Custodian:
    """Register a custodian by their age public key (`age1...`); audited."""
    if not CUSTODIAN_NAME.match(name or ""):
        raise KeyStoreError(f"custodian name {name!r} is not allowed: use letters, digits, '.', '_', '@', '-' "
                            "(up to 64, starting with a letter or digit)")
    try:
        recipient = parse_recipient(recipient_text)
    except AgeError as error:
        raise KeyStoreError(f"{recipient_text!r} is not an age public key ({error}); the custodian makes one with "
                            "`bubble-manager keys custodian-new --out FILE` or `age-keygen`") from None
    if not isinstance(recipient, (X25519Recipient, HybridRecipient)):
        raise KeyStoreError("custodian keys must be age X25519 (age1...) or hybrid (age1pq1...) recipients")
    home = context.home
    with locked(_lock_path(home)):
        existing = list_custodians(home)
        for other in existing:
            if other.name == name:
                raise KeyStoreError(f"custodian {name} is already registered; remove them first with "
                                    f"`bubble-manager keys custodians remove {name}`")
            if other.recipient == recipient.to_string():
                raise KeyStoreError(f"this public key is already registered as custodian {other.name}: "
                                    "each custodian needs an identity of their own")
        if len(existing) >= MAX_CUSTODIANS:
            raise KeyStoreError(f"at most {MAX_CUSTODIANS} custodians can hold shares; remove one first")
        custodian = Custodian(name, recipient.to_string(), clock.isoformat(clock.utcnow()), actor)
        folder = private_dir(custodians_dir(home))
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="keys.custodian-added",
                                 detail={"custodian": name, "recipient": custodian.recipient})
            write_atomic(folder / f"{name}.json", json.dumps(custodian.as_dict(), indent=2).encode(), 0o600)
    return custodian


def remove_custodian(context: "Context", name: str, *, actor: str) -> list[str]:
    """Stop giving shares to `name`; return the studies whose existing shares they still hold."""
    home = context.home
    path = custodians_dir(home) / f"{name}.json"
    if not CUSTODIAN_NAME.match(name or "") or not path.exists():
        raise KeyStoreError(f"no custodian {name!r}; `bubble-manager keys custodians list` shows them")
    holding = [keys.slug for keys in _all_study_keys(home) if name in keys.custodians]
    with locked(_lock_path(home)):
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="keys.custodian-removed",
                                 detail={"custodian": name, "still_holds_shares_of": holding})
            path.unlink()
            fsync_dir(path.parent)
    return holding


def quorum(settings: ArchiveSettings, registered: int) -> tuple[int, int]:
    """(k, n) for a new study, or KeyStoreError saying what to configure or register."""
    k = settings.custodian_threshold
    n = settings.custodian_count or registered
    if n > MAX_CUSTODIANS:
        raise KeyStoreError(f"custodian_count is {n}; at most {MAX_CUSTODIANS} custodians can hold shares")
    if k < 1 or (k < 2 and not settings.allow_weak_quorum):
        raise KeyStoreError(f"custodian_threshold is {k}: at least 2 custodians must be needed to open an archive "
                            "(set c.ArchiveSettings.allow_weak_quorum = True only for tests and demos)")
    if k > n:
        raise KeyStoreError(f"custodian_threshold k={k} is more than the n={n} custodians who would hold shares: "
                            "lower c.ArchiveSettings.custodian_threshold or register custodians with "
                            "`bubble-manager keys custodians add NAME AGE_PUBLIC_KEY`")
    if registered < n:
        raise KeyStoreError(f"{registered} custodian(s) registered, {n} needed to split a study's archive key "
                            f"{k}-of-{n}: register more with `bubble-manager keys custodians add NAME AGE_PUBLIC_KEY`")
    return k, n


# --- study keys ----------------------------------------------------------------------------------

def ensure_study_keys(context: "Context", slug: str, *, actor: str = SYSTEM_ACTOR) -> StudyKeys:
    """The study's keys, created once (archive key split to custodians, live key on disk); audited."""
    home = context.home
    existing = load_study_keys(home, slug)
    if existing is not None:
        return existing
    _require_study(context, slug)
    with locked(_lock_path(home)):
        existing = load_study_keys(home, slug)
        if existing is not None:
            return existing
        _remove_unfinished(home)
        settings = ArchiveSettings(config=context.settings.config)
        custodians = list_custodians(home)
        k, n = quorum(settings, len(custodians))
        holders = custodians[:n]
        key_type = archive_key_type(context)
        private_dir(keys_root(home))
        staging = private_dir(private_dir(keys_root(home) / "studies") / f".new-{slug}-{secrets.token_hex(4)}")
        try:
            keys = _write_new_study_keys(staging, slug, holders, k, key_type)
            target = study_keys_dir(home, slug)
            with context.store.transaction() as session:
                context.audit.append(session, actor=actor, action="keys.study-created", study=slug,
                                     detail={**keys.as_dict(), "custodians": [c.name for c in holders]})
                os.rename(staging, target)
            fsync_dir(target.parent)
        except BaseException:
            shred_tree(staging)
            raise
    return keys


def archive_key_type(context: "Context") -> str:
    """The key type of new study keys (`c.PostQuantumSettings.archive_key_type`, hybrid by default)."""
    from .rotate import PostQuantumSettings  # rotate.py imports this module

    return PostQuantumSettings(config=context.settings.config).archive_key_type


def _write_new_study_keys(folder: Path, slug: str, holders: list[Custodian], k: int, key_type: str) -> StudyKeys:
    now = clock.isoformat(clock.utcnow())
    archive_identity = new_identity(key_type)
    archive_recipient = archive_identity.recipient()
    mnemonics = split_identity(archive_identity, k, len(holders))
    del archive_identity
    shares_folder = private_dir(folder / "shares")
    share_records = []
    for index, (custodian, mnemonic) in enumerate(zip(holders, mnemonics), start=1):
        document = ShareDocument(study=slug, index=index, threshold=k, count=len(holders),
                                 archive_recipient=archive_recipient.to_string(), custodian=custodian.name,
                                 created=now, mnemonic=mnemonic)
        name = f"{index}-{custodian.name}.age"
        _write_encrypted(shares_folder / name, document.to_text().encode("utf-8"),
                         parse_recipient(custodian.recipient))
        share_records.append({"index": index, "custodian": custodian.name, "custodian_recipient": custodian.recipient,
                              "file": f"shares/{name}"})
    live_identity = new_identity(key_type)  # one file never mixes hybrid and X25519 recipients
    write_new(folder / LIVE_KEY_NAME, f"# live key of study {slug}\n{live_identity.to_string()}\n".encode(), 0o600)
    keys = StudyKeys(slug=slug, archive_recipient=archive_recipient, live_recipient=live_identity.recipient(),
                     threshold=k, count=len(holders), custodians=tuple(c.name for c in holders), created_at=now)
    record = {"format": "bubble-manager-study-keys/1", **keys.as_dict(), "shares": share_records}
    write_new(folder / RECORD_NAME, json.dumps(record, indent=2).encode(), 0o600)
    fsync_dir(shares_folder)
    fsync_dir(folder)
    return keys


def _write_encrypted(path: Path, plaintext: bytes, recipient: AgeRecipient) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        with AgeWriter(out, [recipient]) as writer:
            writer.write(plaintext)
        out.flush()
        os.fsync(out.fileno())


def load_study_keys(home: Path, slug: str) -> StudyKeys | None:
    """The study's public key record, or None if its keys were never made (or were purged)."""
    path = study_keys_dir(home, slug) / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return _keys_from_record(data)


def require_study_keys(home: Path, slug: str) -> StudyKeys:
    keys = load_study_keys(home, slug)
    if keys is None:
        raise KeyStoreError(f"study {slug} has no keys (never created, or purged); they are created when its "
                            "extract is built or its first archive is made")
    return keys


def study_share_files(home: Path, slug: str) -> list[dict[str, object]]:
    """Which custodian holds which encrypted share file (paths absolute)."""
    folder = study_keys_dir(home, slug)
    data = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    return [{**share, "path": str(folder / share["file"])} for share in data["shares"]]


def _keys_from_record(data: dict) -> StudyKeys:
    return StudyKeys(slug=data["study"], archive_recipient=parse_recipient(data["archive_recipient"]),
                     live_recipient=parse_recipient(data["live_recipient"]),
                     threshold=int(data["threshold"]), count=int(data["count"]),
                     custodians=tuple(data["custodians"]), created_at=data["created_at"],
                     live_key_destroyed_at=data.get("live_key_destroyed_at"))


def _all_study_keys(home: Path) -> list[StudyKeys]:
    folder = keys_root(home) / "studies"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*/{RECORD_NAME}")):
        found.append(_keys_from_record(json.loads(path.read_text(encoding="utf-8"))))
    return found


def study_recipients(context: "Context", slug: str) -> list[AgeRecipient]:
    """Both recipients of the study's vault: the live key (rebuilds) and the archive key (quorum)."""
    keys = require_study_keys(context.home, slug)
    if keys.live_key_destroyed:
        raise KeyStoreError(f"the live key of study {slug} was destroyed on {keys.live_key_destroyed_at} when it was "
                            "archived; nothing new may be encrypted for a closed study")
    return [keys.live_recipient, keys.archive_recipient]


def load_live_identity(context: "Context", slug: str, *, actor: str = SYSTEM_ACTOR,
                       purpose: str = "rebuild") -> ArchiveIdentity:
    """The study's live identity, to read its vault while it runs; audited."""
    keys = require_study_keys(context.home, slug)
    path = study_keys_dir(context.home, slug) / LIVE_KEY_NAME
    if keys.live_key_destroyed or not path.exists():
        context.audit.record(actor=actor, action="keys.live-refused", study=slug,
                             detail={"purpose": purpose, "rule": "live-key-destroyed"})
        raise KeyStoreError(f"the live key of study {slug} was destroyed when it was archived "
                            f"({keys.live_key_destroyed_at or 'file missing'}); only a quorum of custodians can "
                            f"open its vault now (`bubble-manager keys recover {slug} --share ...`)")
    identities = parse_identity_file(_read_nofollow(path).decode("ascii"))
    identity = identities[0]
    if identity.recipient().to_string() != keys.live_recipient.to_string():
        raise KeyStoreError(f"{path} does not hold the live key recorded for study {slug}; the key store was altered")
    context.audit.record(actor=actor, action="keys.live-used", study=slug, detail={"purpose": purpose})
    return identity


def destroy_live_key(context: "Context", slug: str, *, actor: str = SYSTEM_ACTOR) -> bool:
    """Shred the study's live key (at archiving); idempotent; True if a key was destroyed now."""
    home = context.home
    with locked(_lock_path(home)):
        keys = require_study_keys(home, slug)
        folder = study_keys_dir(home, slug)
        if keys.live_key_destroyed and not (folder / LIVE_KEY_NAME).exists():
            return False
        record_path = folder / RECORD_NAME
        record = json.loads(record_path.read_text(encoding="utf-8"))
        record["live_key_destroyed_at"] = clock.isoformat(clock.utcnow())
        with context.store.transaction() as session:
            context.audit.append(session, actor=actor, action="keys.live-destroyed", study=slug,
                                 detail={"live_recipient": keys.live_recipient.to_string()})
            write_atomic(record_path, json.dumps(record, indent=2).encode(), 0o600)
            shred_file(folder / LIVE_KEY_NAME)
            fsync_dir(folder)
    return True


def destroy_study_keys(context: "Context", slug: str) -> list[str]:
    """Shred every key file of the study (shares, live key, record): crypto-shredding at purge.

    The caller (purge) audits; returns the names of the files destroyed.
    """
    with locked(_lock_path(context.home)):
        return shred_tree(study_keys_dir(context.home, slug))


# --- custodian side: decrypting a share, recovering the identity ---------------------------------

def decrypt_share(share_path: Path, identity_path: Path) -> ShareDocument:
    """Decrypt a share file with a custodian's identity file (no hub needed)."""
    try:
        identities = parse_identity_file(Path(identity_path).read_text(encoding="ascii"))
    except (AgeError, UnicodeDecodeError) as error:
        raise KeyStoreError(f"{identity_path} is not an age identity file ({error})") from None
    try:
        with open(share_path, "rb") as source, AgeReader(source, identities) as reader:
            plaintext = reader.read()
    except AgeError as error:
        raise KeyStoreError(f"cannot decrypt {share_path} with {identity_path}: {error} (is it your share, "
                            "and your identity?)") from None
    try:
        return ShareDocument.parse(plaintext.decode("utf-8"), source=str(share_path))
    except UnicodeDecodeError:
        raise KeyStoreError(f"{share_path} decrypts to something that is not a share") from None


def recover_archive_identity(context: "Context | None", slug: str, decrypted_share_texts: Iterable[str], *,
                             actor: str = SYSTEM_ACTOR, reason: str = "") -> ArchiveIdentity:
    """Rebuild the study's archive identity from k decrypted shares; audited when a context is given.

    With a context, the result must also match the archive recipient in the key store, so a set
    of self-consistent shares forged for another key is refused.
    """
    texts = list(decrypted_share_texts)
    try:
        documents = [ShareDocument.parse(text, source=f"share #{number}") for number, text in
                     enumerate(texts, start=1)]
        identity = combine_shares(documents, slug)
        if context is not None:
            keys = load_study_keys(context.home, slug)
            if keys is not None and identity.recipient().to_string() != keys.archive_recipient.to_string():
                raise ShareError(f"the shares rebuild a key that is not study {slug}'s recorded archive key: "
                                 "they are forged")
    except ShareError as error:
        if context is not None:
            context.audit.record(actor=actor, action="keys.recover-refused", study=_existing(context, slug),
                                 detail={"slug": slug, "shares_given": len(texts), "reason": reason,
                                         "problem": str(error)[:300]})
        raise
    if context is not None:
        context.audit.record(actor=actor, action="keys.recovered", study=_existing(context, slug),
                             detail={"shares": sorted({(d.index, d.custodian) for d in documents}),
                                     "reason": reason})
    return identity


def write_identity_file(identity: ArchiveIdentity, out: Path, comment: str) -> None:
    """Write an age identity file (0600, never overwrites an existing file)."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{out} already exists; choose another --out")
    text = f"# {comment}\n# public key: {identity.recipient().to_string()}\n{identity.to_string()}\n"
    write_new(out, text.encode("ascii"), 0o600)


# --- helpers -------------------------------------------------------------------------------------

def _require_study(context: "Context", slug: str) -> None:
    _check_slug(slug)
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None:
        raise KeyStoreError(f"no study {slug!r}; keys are made only for studies in the store")
    if study.state is State.purged:
        raise KeyStoreError(f"study {slug} is purged: its keys were destroyed for good and are never remade")


def _existing(context: "Context", slug: str) -> str | None:
    if not SLUG_PATTERN.match(slug or ""):
        return None
    with context.store.transaction() as session:
        return slug if load_study(session, slug) is not None else None


def _remove_unfinished(home: Path) -> None:
    """Shred what a crashed `ensure_study_keys` left (a `.new-*` folder never renamed into place)."""
    folder = keys_root(home) / "studies"
    if folder.is_dir():
        for leftover in folder.glob(".new-*"):
            shred_tree(leftover)


def _read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        return file.read()

