"""Custodian shares of a study's archive key: Shamir splitting (SLIP-39) and the share document.

A study's archive identity (an age private key: an X25519 key or the seed of a hybrid
ML-KEM-768 + X25519 key, 32 bytes either way) is split with `shamir-mnemonic`
(SLIP-39) so that any k of n custodians rebuild it. Each custodian holds one SLIP-39 *group* of a
single share and the group threshold is k: this expresses every k from 1 to 16 (a plain k-of-n
member split cannot express k = 1), and SLIP-39's checksums and digest still catch a mistyped or
forged share.

A share document is short, self-describing text (study, share number, k, n, the archive's public
recipient, the custodian, the mnemonic words). It is stored only encrypted with age to its
custodian's public key, so `age -d -i custodian.key share.age` prints it with the standard CLI.
Pure functions only; the key store is `keys.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import shamir_mnemonic
from shamir_mnemonic.share import Share

from .age import AgeKeyError, HybridIdentity, X25519Identity, parse_recipient
from .settings import MAX_CUSTODIANS

SHARE_FORMAT = "bubble-manager-archive-key-share/1"
_FIELDS = ("format", "study", "share", "threshold", "shares", "archive-recipient", "custodian", "created", "mnemonic")
_LINE = re.compile(r"^([a-z-]+): (.+)$")


class ShareError(ValueError):
    """A share is unreadable, forged, of another study, or there are too few of them."""


@dataclass(frozen=True)
class ShareDocument:
    """One custodian's share of one study's archive key (the decrypted text)."""

    study: str
    index: int
    threshold: int
    count: int
    archive_recipient: str
    custodian: str
    created: str
    mnemonic: str

    def to_text(self) -> str:
        others = self.threshold - 1
        lines = [
            "# bubble-manager archive key share (secret: keep it offline, never e-mail it)",
            f"# Share {self.index} of {self.count} of study {self.study}; with {others} other share(s) it rebuilds "
            "the study's archive key:",
            f"#   bubble-manager keys recover {self.study} --share FILE --share FILE ...",
            f"format: {SHARE_FORMAT}",
            f"study: {self.study}",
            f"share: {self.index}",
            f"threshold: {self.threshold}",
            f"shares: {self.count}",
            f"archive-recipient: {self.archive_recipient}",
            f"custodian: {self.custodian}",
            f"created: {self.created}",
            f"mnemonic: {self.mnemonic}",
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, *, source: str = "share") -> "ShareDocument":
        """Parse a decrypted share strictly: every field exactly once, nothing unknown."""
        if text.startswith("age-encryption.org/"):
            raise ShareError(f"{source} is still encrypted: its custodian decrypts it first with "
                             "`bubble-manager keys decrypt-share --identity FILE SHARE` (or `age -d -i FILE`)")
        values: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if not match or match.group(1) not in _FIELDS:
                raise ShareError(f"{source} line {number} is not a share field; is this a bubble-manager share?")
            if match.group(1) in values:
                raise ShareError(f"{source} repeats the field {match.group(1)!r} on line {number}")
            values[match.group(1)] = match.group(2).strip()
        missing = [name for name in _FIELDS if name not in values]
        if missing:
            raise ShareError(f"{source} is not a complete share: missing {', '.join(missing)}")
        if values["format"] != SHARE_FORMAT:
            raise ShareError(f"{source} has format {values['format']!r}; this version reads {SHARE_FORMAT}")
        try:
            index, threshold, count = int(values["share"]), int(values["threshold"]), int(values["shares"])
        except ValueError:
            raise ShareError(f"{source}: share, threshold and shares must be whole numbers") from None
        if not (1 <= threshold <= count <= MAX_CUSTODIANS and 1 <= index <= count):
            raise ShareError(f"{source}: share {index}, threshold {threshold} of {count} is impossible")
        try:
            parse_recipient(values["archive-recipient"])
        except AgeKeyError as error:
            raise ShareError(f"{source}: archive-recipient is not an age recipient ({error})") from None
        return cls(study=values["study"], index=index, threshold=threshold, count=count,
                   archive_recipient=values["archive-recipient"], custodian=values["custodian"],
                   created=values["created"], mnemonic=" ".join(values["mnemonic"].split()))


ArchiveIdentity = X25519Identity | HybridIdentity


def identity_from_secret(secret: bytes, archive_recipient: str) -> ArchiveIdentity:
    """The identity of the type the study's archive recipient names (`age1pq1...` is hybrid)."""
    return HybridIdentity(secret) if archive_recipient.startswith("age1pq1") else X25519Identity(secret)


def split_identity(identity: ArchiveIdentity, threshold: int, count: int) -> list[str]:
    """SLIP-39 mnemonics, one per custodian, any `threshold` of which rebuild `identity`."""
    if not 1 <= threshold <= count <= MAX_CUSTODIANS:
        raise ValueError(f"cannot split a key {threshold}-of-{count}: need 1 <= k <= n <= {MAX_CUSTODIANS}")
    secret = _identity_bytes(identity)
    groups = shamir_mnemonic.generate_mnemonics(group_threshold=threshold, groups=[(1, 1)] * count,
                                                master_secret=secret, extendable=False)
    return [group[0] for group in groups]


def combine_shares(documents: Iterable[ShareDocument], slug: str) -> ArchiveIdentity:
    """Rebuild the archive identity of study `slug` from at least k distinct shares.

    Raises ShareError naming the problem: a share of another study or split, fewer than k
    distinct shares, a mistyped or forged mnemonic, or a result that is not the study's key.
    """
    documents = list(documents)
    if not documents:
        raise ShareError(f"no shares given: pass at least k decrypted shares of study {slug} with --share")
    first = documents[0]
    for document in documents:
        if document.study != slug:
            raise ShareError(f"share {document.index} (custodian {document.custodian}) belongs to study "
                             f"{document.study}, not {slug}")
        if (document.archive_recipient, document.threshold, document.count) != (
                first.archive_recipient, first.threshold, first.count):
            raise ShareError(f"share {document.index} (custodian {document.custodian}) comes from another split "
                             f"of study {slug}'s key than share {first.index}: its header differs")
    distinct: dict[int, ShareDocument] = {}
    for document in documents:
        decoded = _decode(document)
        distinct.setdefault(decoded.group_index, document)
    if len(distinct) < first.threshold:
        raise ShareError(f"{len(distinct)} distinct share(s) of study {slug} given, {first.threshold} needed: "
                         f"ask {first.threshold - len(distinct)} more custodian(s) to decrypt theirs")
    chosen = [distinct[i].mnemonic for i in sorted(distinct)[: first.threshold]]
    try:
        secret = shamir_mnemonic.combine_mnemonics(chosen)
    except shamir_mnemonic.MnemonicError as error:
        raise ShareError(f"the shares of study {slug} do not combine ({error}): one of them is forged or "
                         "belongs to another split") from None
    identity = identity_from_secret(secret, first.archive_recipient)
    if identity.recipient().to_string() != first.archive_recipient:
        raise ShareError(f"the shares combine into a key that is not study {slug}'s archive key: "
                         "a share is forged")
    return identity


def _decode(document: ShareDocument) -> Share:
    try:
        share = Share.from_mnemonic(document.mnemonic)
    except shamir_mnemonic.MnemonicError as error:
        raise ShareError(f"share {document.index} (custodian {document.custodian}) has an invalid mnemonic "
                         f"({error}): mistyped or forged") from None
    if share.group_index + 1 != document.index or share.group_threshold != document.threshold \
            or share.group_count != document.count:
        raise ShareError(f"share {document.index} (custodian {document.custodian}): its header and its mnemonic "
                         "disagree on the share number or quorum; it was altered")
    return share


def _identity_bytes(identity: ArchiveIdentity) -> bytes:
    from . import bech32

    _prefix, data = bech32.decode(identity.to_string())
    return data
