"""age v1 file encryption (https://age-encryption.org/v1, specified at https://c2sp.org/age).

Built only on ``cryptography``: X25519 and hybrid post-quantum MLKEM768-X25519
(``age1pq1...``) recipients, HKDF-SHA-256, an HMAC-SHA-256 header MAC and a
ChaCha20-Poly1305 STREAM payload in 64 KiB chunks. Files are interoperable with the
``age`` / ``age-keygen`` command-line tools (hybrid keys need age 1.3 or later; binary
format; ASCII armor, passphrases (scrypt), SSH keys and plugins are not supported).

This module is the public face; the work is split over

* :mod:`.age_format` - errors, :class:`Stanza`, strict header parsing and encoding;
* :mod:`.age_x25519` - the X25519 recipient and identity types;
* :mod:`.age_mlkem` - the hybrid post-quantum ``mlkem768x25519`` types (``age1pq1...``);
* :mod:`.age_stream` - :class:`AgeWriter` and :class:`AgeReader`.

Adding a recipient type (such as the post-quantum ``mlkem768x25519``) means a
recipient class with ``wrap(file_key) -> list[Stanza]`` (and ``post_quantum = True``
where it applies), an identity class with ``unwrap(stanzas) -> bytes | None``, and
one entry each in :data:`RECIPIENT_PARSERS` and :data:`IDENTITY_PARSERS`, keyed by the
Bech32 human-readable prefix.

Streaming and partial output: a reader releases a chunk's plaintext only after its
tag verified, yet earlier chunks are already out when a later one fails. Use
:func:`decrypt_file_verified` (or stage output yourself) for all-or-nothing results.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from . import bech32
from .age_format import (
    FILE_KEY_SIZE,
    MAX_HEADER_SIZE,
    AgeError,
    AgeHeaderError,
    AgeKeyError,
    AgePayloadError,
    Header,
    Identity,
    NoIdentityMatched,
    Recipient,
    Stanza,
    encode_header,
    parse_header,
    read_header,
    read_header_bytes,
    unwrap_file_key,
    wrap_file_key,
)
from .age_mlkem import HybridIdentity, HybridRecipient
from .age_stream import CHUNK_SIZE, AgeReader, AgeWriter
from .age_x25519 import X25519Identity, X25519Recipient

__all__ = [
    "CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "IDENTITY_PARSERS",
    "MAX_HEADER_SIZE",
    "RECIPIENT_PARSERS",
    "AgeError",
    "AgeHeaderError",
    "AgeKeyError",
    "AgePayloadError",
    "AgeReader",
    "AgeWriter",
    "Header",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "NoIdentityMatched",
    "Recipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt_file_verified",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
    "parse_identity",
    "parse_identity_file",
    "parse_recipient",
    "read_header",
    "rewrite_header",
]

_COPY_BUFFER_SIZE = 1 << 20
StrPath = str | os.PathLike[str]

RECIPIENT_PARSERS: dict[str, Callable[[str], Recipient]] = {
    "age": X25519Recipient.from_string,
    "age1pq": HybridRecipient.from_string,
}
"""Recipient parsers keyed by Bech32 prefix (``age1pq1...`` would be ``"age1pq"``)."""

IDENTITY_PARSERS: dict[str, Callable[[str], Identity]] = {
    "AGE-SECRET-KEY-": X25519Identity.from_string,
    "AGE-SECRET-KEY-PQ-": HybridIdentity.from_string,
}
"""Identity parsers keyed by Bech32 prefix (``AGE-SECRET-KEY-PQ-1...`` would be
``"AGE-SECRET-KEY-PQ-"``)."""


# --- keys -----------------------------------------------------------------------------


def _bech32_prefix(text: str, what: str) -> str:
    try:
        prefix, _data = bech32.decode(text)
    except bech32.Bech32Error as error:
        raise AgeKeyError(f"malformed {what}: {error}") from None
    return prefix


def parse_recipient(text: str) -> Recipient:
    """Parse a recipient string such as ``age1...``."""
    text = text.strip()
    prefix = _bech32_prefix(text, "recipient")
    parser = RECIPIENT_PARSERS.get(prefix)
    if parser is None:
        raise AgeKeyError(f"unsupported recipient type {prefix!r}")
    return parser(text)


def parse_identity(text: str) -> Identity:
    """Parse one identity string such as ``AGE-SECRET-KEY-1...``."""
    text = text.strip()
    prefix = _bech32_prefix(text, "identity")
    parser = IDENTITY_PARSERS.get(prefix)
    if parser is None:
        hint = " (age plugins are not supported)" if prefix.startswith("AGE-PLUGIN-") else ""
        raise AgeKeyError(f"unsupported identity type {prefix!r}{hint}")
    return parser(text)


def parse_identity_file(text: str) -> list[Identity]:
    """Parse an identity file as ``age-keygen`` writes it.

    One key per line; blank lines and lines starting with ``#`` are skipped; CRLF
    line ends are accepted. Errors name the line but never echo its content, which
    may be a secret key.
    """
    identities: list[Identity] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except AgeKeyError as error:
            raise AgeKeyError(f"identity file line {line_no}: {error}") from None
    if not identities:
        raise AgeKeyError("identity file holds no identities")
    return identities


# --- whole streams and files ----------------------------------------------------------


def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipients: Iterable[Recipient]) -> None:
    """Encrypt everything read from ``src`` to ``recipients``, writing to ``dst``.

    Constant memory. If reading ``src`` fails the output is left without a final
    chunk, so it can never be mistaken for a complete file.
    """
    buffer = memoryview(bytearray(_COPY_BUFFER_SIZE))
    with AgeWriter(dst, recipients) as writer:
        while True:
            count = _readinto(src, buffer)
            if not count:
                break
            writer.write(buffer[:count])


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Iterable[Identity]) -> None:
    """Decrypt the age file read from ``src`` into ``dst``.

    Streams: when a chunk fails, ``dst`` may already hold verified plaintext of the
    chunks before it (never of the failing one). Use :func:`decrypt_file_verified`
    when partial output must not survive.
    """
    buffer = memoryview(bytearray(_COPY_BUFFER_SIZE))
    with AgeReader(src, identities) as reader:
        while True:
            count = reader.readinto(buffer)
            if not count:
                break
            dst.write(buffer[:count])


def encrypt_file(path_in: StrPath, path_out: StrPath, recipients: Iterable[Recipient]) -> None:
    """Encrypt a file into ``path_out`` atomically (temporary file, fsync, rename)."""
    with open(path_in, "rb") as src, _atomic_output(path_out) as dst:
        encrypt_stream(src, dst, recipients)


def decrypt_file_verified(
    path_in: StrPath, path_out: StrPath, identities: Iterable[Identity]
) -> None:
    """Decrypt to ``path_out`` only if the whole file decrypts and verifies.

    Plaintext goes to a temporary file (mode 0600) in the same folder, which is
    fsynced and renamed over ``path_out`` on success, and removed on any failure:
    ``path_out`` never holds partial or unverified plaintext.
    """
    with open(path_in, "rb") as src, _atomic_output(path_out) as dst:
        decrypt_stream(src, dst, identities)


def rewrite_header(
    src_path: StrPath,
    dst_path: StrPath,
    identities: Iterable[Identity],
    new_recipients: Iterable[Recipient],
    *,
    verify_payload: bool = True,
) -> None:
    """Re-encrypt the file key of ``src_path`` to ``new_recipients`` (key rotation).

    The file key is unwrapped with ``identities`` and the header MAC verified; a new
    header for ``new_recipients`` is followed by the unchanged payload bytes, streamed
    into ``dst_path`` atomically (``dst_path`` may equal ``src_path``). With
    ``verify_payload`` (the default) every chunk is authenticated while copying, so a
    damaged archive is reported instead of re-keyed; the cost is one decryption pass.

    The file key and payload stay the same, so anyone who ever held an old identity
    and a copy of the old file, or learned the file key, keeps access: this rotates
    who can open the file from now on, it does not revoke a compromised key (that
    needs a full re-encryption, which draws a fresh file key and nonce).
    """
    with open(src_path, "rb") as src:
        header_bytes, leftover = read_header_bytes(src)
        file_key = unwrap_file_key(parse_header(header_bytes), identities)
        new_header = encode_header(wrap_file_key(new_recipients, file_key), file_key)
        with _atomic_output(dst_path) as dst:
            dst.write(new_header)
            if verify_payload:
                tee = _TeeReader(leftover, src, dst)
                AgeReader.from_file_key(tee, file_key).verify_to_end()
            else:
                dst.write(leftover)
                shutil.copyfileobj(src, dst, _COPY_BUFFER_SIZE)


# --- helpers --------------------------------------------------------------------------


def _readinto(src: BinaryIO, buffer: memoryview) -> int:
    readinto = getattr(src, "readinto", None)
    if readinto is not None:
        return readinto(buffer) or 0
    data = src.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)


class _TeeReader:
    """Reads ``prefix`` then ``src``, copying every byte read into ``copy_to``."""

    def __init__(self, prefix: bytes, src: BinaryIO, copy_to: BinaryIO) -> None:
        self._prefix = prefix
        self._src = src
        self._copy_to = copy_to

    def readinto(self, buffer: memoryview) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
        else:
            count = _readinto(self._src, buffer)
        self._copy_to.write(buffer[:count])
        return count


@contextlib.contextmanager
def _atomic_output(path: StrPath) -> Iterator[BinaryIO]:
    """A temporary file (mode 0600) next to ``path``, fsynced and renamed over it on
    success, removed on failure."""
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp_path = Path(temp_name)
    committed = False
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
        committed = True
        _fsync_directory(path.parent)
    finally:
        if not committed:
            temp_path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
