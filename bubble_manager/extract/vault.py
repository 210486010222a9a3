"""The vault: a study's pseudonym -> person map and date offsets, only ever age-encrypted.

`studies/<slug>/vault.age` is encrypted to two recipients: the study's live key (hub-held, used
only inside rebuilds, destroyed when the study is archived) and its archive key (whose private
half exists only as custodians' shares). The plaintext never touches the disk, the store or a
log: it is built in memory and streamed through the age writer into a temporary file that is
fsynced and renamed. Purging the study shreds the file and the keys (`destroy_vault`).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import clock
from ..archive.age import AgeError, AgeReader, AgeWriter, Identity, Recipient
from ..archive.fsutil import fsync_dir, shred_file

FORMAT = "bubble-manager-vault/1"


class VaultError(RuntimeError):
    """The vault cannot be read or does not belong to this study."""


@dataclass(frozen=True)
class Vault:
    """Columnar: person i has pseudonym `pseudonyms[i]` and date offset `offsets[i]` (days)."""

    slug: str
    person_ids: np.ndarray
    pseudonyms: list[str]
    offsets: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.person_ids) == len(self.pseudonyms) == len(self.offsets):
            raise VaultError("vault columns of different lengths")

    def __len__(self) -> int:
        return len(self.pseudonyms)

    def lookup(self, pseudonyms: Iterable[str]) -> dict[str, int | None]:
        """person id of each pseudonym (None when the pseudonym is not in this study)."""
        index = {p: i for i, p in enumerate(self.pseudonyms)}
        return {p: (int(self.person_ids[index[p]]) if p in index else None) for p in pseudonyms}

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "study": self.slug, "written_at": clock.isoformat(clock.utcnow()),
                "person_ids": self.person_ids.astype(np.int64).tolist(), "pseudonyms": list(self.pseudonyms),
                "offsets": self.offsets.astype(np.int64).tolist()}
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, slug: str) -> "Vault":
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VaultError(f"the vault of study {slug} decrypts to something that is not a vault") from None
        if body.get("format") != FORMAT:
            raise VaultError(f"the vault of study {slug} has format {body.get('format')!r}, expected {FORMAT}")
        if body.get("study") != slug:
            raise VaultError(f"this vault belongs to study {body.get('study')!r}, not {slug}: files were swapped")
        return cls(slug, np.asarray(body["person_ids"], dtype=np.int64), list(body["pseudonyms"]),
                   np.asarray(body["offsets"], dtype=np.int32))


def write_vault(path: Path, vault: Vault, recipients: list[Recipient]) -> None:
    """Encrypt `vault` to `recipients` into `path` atomically (0600)."""
    commit_vault(stage_vault(path, vault, recipients), path)


def stage_vault(path: Path, vault: Vault, recipients: list[Recipient]) -> Path:
    """Encrypt `vault` into a fsynced temporary file beside `path` (0600); `commit_vault` puts it
    in place. A staged file that is never committed is a leftover the next build removes."""
    if len(recipients) < 2:
        raise VaultError("a vault is encrypted to the study's live key and its archive key; got fewer recipients")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            with AgeWriter(file, recipients) as writer:
                writer.write(vault.to_bytes())
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def commit_vault(staged: Path, path: Path) -> None:
    try:
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(path.parent)


def read_vault(path: Path, slug: str, identities: list[Identity]) -> Vault:
    """Decrypt and parse the vault, in memory only."""
    try:
        with open(path, "rb") as source, AgeReader(source, identities) as reader:
            data = reader.read()
    except FileNotFoundError:
        raise VaultError(f"study {slug} has no vault at {path}; build its extract first") from None
    except AgeError as error:
        raise VaultError(f"cannot open the vault of study {slug}: {error}") from None
    return Vault.from_bytes(data, slug)


def destroy_vault(path: Path) -> bool:
    """Shred the vault file (purge); True if there was one."""
    return shred_file(path)
