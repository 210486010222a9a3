"""The age v1 header: errors, stanzas, strict parsing and encoding, header MAC.

Implements the "Header" section of the age specification (https://c2sp.org/age,
also published as https://age-encryption.org/v1). The parser accepts exactly the
ABNF of the spec and nothing else::

    header     = v1-line 1*stanza end
    v1-line    = %s"age-encryption.org/v1" LF
    end        = "--- " 43base64char LF
    stanza     = arg-line *full-line final-line
    arg-line   = "-> " argument *(SP argument) LF
    argument   = 1*VCHAR
    full-line  = 64base64char LF
    final-line = *63base64char LF

Base64 is RFC 4648 without padding and must be canonical (no ``=``, zero unused bits).
Because the accepted encoding of a header is unique, the MAC is checked over the bytes
as read, which equals the re-encoding the spec describes.

Recipient types plug in through two duck-typed protocols, :class:`Recipient`
(``wrap(file_key) -> list[Stanza]``) and :class:`Identity`
(``unwrap(stanzas) -> file_key | None``).
"""

from __future__ import annotations

import binascii
import hmac
from dataclasses import dataclass, field
from hashlib import sha256
from typing import BinaryIO, Iterable, Protocol, Sequence, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION_LINE = b"age-encryption.org/v1"
VERSION_PREFIX = b"age-encryption.org/"
FILE_KEY_SIZE = 16
MAC_SIZE = 32
BODY_COLUMNS = 64
MAX_HEADER_SIZE = 1 << 20
"""Headers larger than this are refused, so a hostile file cannot exhaust memory."""

_READ_BLOCK = 4096
_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"


class AgeError(Exception):
    """Base class of every error raised by the age implementation."""


class AgeKeyError(AgeError):
    """A recipient, identity or identity file is malformed or of an unsupported type."""


class AgeHeaderError(AgeError):
    """The header is malformed, uses an unsupported feature, or its MAC does not verify."""


class AgePayloadError(AgeError):
    """The payload is truncated, tampered with, reordered or followed by trailing data.

    ``chunk_index`` is the 0-based index of the chunk that failed, when one did.
    """

    def __init__(self, message: str, chunk_index: int | None = None) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index


class NoIdentityMatched(AgeError):
    """None of the given identities can unwrap any recipient stanza of the file."""


def _is_vchar_string(text: str) -> bool:
    return bool(text) and all(33 <= ord(char) <= 126 for char in text)


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: ``-> type args...`` followed by a binary body.

    ``args`` excludes the type (the spec counts the type as the first argument).
    Type and arguments must be non-empty strings of printable ASCII without spaces.
    """

    type: str
    args: tuple[str, ...] = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "body", bytes(self.body))
        for value in (self.type, *self.args):
            if not isinstance(value, str) or not _is_vchar_string(value):
                raise AgeHeaderError(
                    f"age header: stanza argument {value!r} is not a non-empty string"
                    " of printable ASCII (VCHAR)"
                )


@runtime_checkable
class Recipient(Protocol):
    """Something a file key can be encrypted to (the public side of a key pair)."""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Return the stanza(s) that carry ``file_key`` for this recipient."""
        ...


@runtime_checkable
class Identity(Protocol):
    """Something that can recover a file key from stanzas (the private side)."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key if a stanza is addressed to this identity, else None.

        Must ignore stanzas of other types, and raise :class:`AgeHeaderError` for a
        malformed stanza of its own type.
        """
        ...


@dataclass(frozen=True)
class Header:
    """A parsed age v1 header; ``raw`` holds its exact bytes including the final LF."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    raw: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Number of bytes before the payload (the payload nonce starts here)."""
        return len(self.raw)

    @property
    def mac_input(self) -> bytes:
        """The bytes the MAC covers: everything up to and including ``---``."""
        return self.raw[: self.raw.rindex(b"\n---") + 4]


# --- base64 ---------------------------------------------------------------------------


def b64encode_unpadded(data: bytes) -> str:
    """Standard base64 without ``=`` padding, as everywhere in age headers."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def b64decode_canonical(text: str | bytes, what: str) -> bytes:
    """Decode unpadded base64, rejecting padding, foreign characters and stray bits.

    ``what`` names the field in the error message (e.g. ``"X25519 share"``).
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not _BASE64_ALPHABET.issuperset(raw):
        bad = next(chr(b) if b < 128 else f"\\x{b:02x}" for b in raw if b not in _BASE64_ALPHABET)
        padding_hint = " (padding is not allowed)" if bad == "=" else ""
        raise AgeHeaderError(f"age header: {what}: invalid base64 character {bad!r}{padding_hint}")
    if len(raw) % 4 == 1:
        raise AgeHeaderError(f"age header: {what}: base64 length {len(raw)} is impossible")
    decoded = binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    if b64encode_unpadded(decoded).encode("ascii") != raw:
        raise AgeHeaderError(f"age header: {what}: non-canonical base64 (unused bits are not zero)")
    return decoded


# --- key derivation and MAC -----------------------------------------------------------


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 with a 32-byte output, the only KDF use in age."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    """HMAC-SHA-256 of the header with key HKDF(file key, salt="", info="header")."""
    return hmac.new(hkdf_sha256(file_key, b"", b"header"), mac_input, sha256).digest()


# --- encoding -------------------------------------------------------------------------


def encode_stanza(stanza: Stanza) -> bytes:
    """Serialize a stanza: argument line, then body wrapped at 64 columns.

    The body always ends with a line shorter than 64 columns, empty if need be.
    """
    body = b64encode_unpadded(stanza.body)
    lines = [" ".join(("->", stanza.type, *stanza.args))]
    lines += [body[i : i + BODY_COLUMNS] for i in range(0, len(body), BODY_COLUMNS)]
    if len(body) % BODY_COLUMNS == 0:
        lines.append("")
    return ("\n".join(lines) + "\n").encode("ascii")


def encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    """Serialize a complete header, MAC included, for ``stanzas`` wrapping ``file_key``."""
    if not stanzas:
        raise AgeError("an age header needs at least one recipient stanza")
    mac_input = VERSION_LINE + b"\n" + b"".join(encode_stanza(s) for s in stanzas) + b"---"
    mac = header_mac(file_key, mac_input)
    return mac_input + b" " + b64encode_unpadded(mac).encode("ascii") + b"\n"


def wrap_file_key(recipients: Iterable[Recipient], file_key: bytes) -> list[Stanza]:
    """Collect the stanzas of every recipient for ``file_key``.

    Refuses an empty recipient list and mixing post-quantum recipients (those with a
    true ``post_quantum`` attribute) with classical ones: the spec says a file
    encrypted to a post-quantum recipient should not also be encrypted to a
    classical one, which would void the post-quantum protection.
    """
    recipients = list(recipients)
    if not recipients:
        raise AgeError("no recipients: an age file needs at least one")
    kinds = {bool(getattr(r, "post_quantum", False)) for r in recipients}
    if len(kinds) > 1:
        raise AgeError("refusing to mix post-quantum and classical recipients in one file")
    stanzas: list[Stanza] = []
    for recipient in recipients:
        produced = recipient.wrap(file_key)
        if not produced or not all(isinstance(s, Stanza) for s in produced):
            raise AgeError(f"recipient {recipient!r} returned no stanza or a non-Stanza")
        stanzas.extend(produced)
    return stanzas


# --- reading and parsing --------------------------------------------------------------


def read_header_bytes(src: BinaryIO) -> tuple[bytes, bytes]:
    """Read from ``src`` until the end of the header line ``--- <mac>``.

    Returns ``(header_bytes, leftover)`` where ``leftover`` holds the bytes read past
    the header (the start of the payload). Reads at most :data:`MAX_HEADER_SIZE`
    plus one block.
    """
    buffer = bytearray()
    search_from = 0
    while True:
        block = src.read(_READ_BLOCK)
        if not block:
            if not buffer:
                raise AgeHeaderError("age header: the input is empty, not an age file")
            raise AgeHeaderError("age header: input ends before the '--- ' MAC line")
        buffer += block
        _reject_foreign_start(buffer)
        end, search_from = _find_header_end(buffer, search_from)
        if (end or len(buffer)) > MAX_HEADER_SIZE:
            raise AgeHeaderError(f"age header: larger than {MAX_HEADER_SIZE} bytes, refusing")
        if end is not None:
            return bytes(buffer[:end]), bytes(buffer[end:])


def _reject_foreign_start(buffer: bytearray) -> None:
    prefix = bytes(buffer[: len(VERSION_PREFIX)])
    if VERSION_PREFIX.startswith(prefix):
        return
    if _ARMOR_BEGIN.startswith(bytes(buffer[: len(_ARMOR_BEGIN)])):
        raise AgeHeaderError("age header: ASCII-armored age files are not supported; use binary")
    raise AgeHeaderError("age header: not an age file (missing 'age-encryption.org/' version line)")


def _find_header_end(buffer: bytearray, search_from: int) -> tuple[int | None, int]:
    """Return (end of header or None, where the next search should start)."""
    # The MAC line is the first line starting with "---": stanza lines start with
    # "->" and body lines are base64, which has no "-".
    marker = buffer.find(b"\n---", search_from)
    if marker < 0:
        return None, max(0, len(buffer) - 3)
    newline = buffer.find(b"\n", marker + 1)
    return (None if newline < 0 else newline + 1), marker


def parse_header(data: bytes) -> Header:
    """Parse a complete header (as returned by :func:`read_header_bytes`) strictly."""
    lines = data.split(b"\n")
    if lines.pop() != b"" or len(lines) < 2 or not lines[-1].startswith(b"---"):
        raise AgeHeaderError("age header: truncated, it must end with the '--- ' MAC line")
    for line_no, line in enumerate(lines, start=1):
        if line.endswith(b"\r"):
            raise AgeHeaderError(f"age header: line {line_no} ends with CR; only LF is allowed")
    _check_version_line(lines[0])
    stanzas: list[Stanza] = []
    index = 1
    while not lines[index].startswith(b"---"):
        stanza, index = _parse_stanza(lines, index)
        stanzas.append(stanza)
    if index != len(lines) - 1:
        raise AgeHeaderError(f"age header: line {index + 1}: data after the MAC line")
    if not stanzas:
        raise AgeHeaderError("age header: no recipient stanzas")
    mac = _parse_mac_line(lines[index], index + 1)
    return Header(stanzas=tuple(stanzas), mac=mac, raw=bytes(data))


def _check_version_line(line: bytes) -> None:
    if line == VERSION_LINE:
        return
    if line.startswith(VERSION_PREFIX):
        version = line[len(VERSION_PREFIX) :].decode("ascii", "replace")
        raise AgeHeaderError(f"age header: unsupported version {version!r}, expected 'v1'")
    raise AgeHeaderError("age header: first line is not 'age-encryption.org/v1'")


def _parse_stanza(lines: list[bytes], index: int) -> tuple[Stanza, int]:
    """Parse the stanza starting at ``lines[index]``; return it and the next line index."""
    line_no = index + 1
    arg_line = lines[index]
    if arg_line == b"->":
        raise AgeHeaderError(f"age header: line {line_no}: stanza without a type")
    if not arg_line.startswith(b"-> "):
        raise AgeHeaderError(
            f"age header: line {line_no}: expected a stanza ('-> ') or the MAC line ('--- ')"
        )
    words = arg_line[3:].split(b" ")
    for word in words:
        if not word or any(not 33 <= byte <= 126 for byte in word):
            raise AgeHeaderError(
                f"age header: line {line_no}: empty stanza argument or one with"
                " characters outside printable ASCII"
            )
    stanza_type, *args = (word.decode("ascii") for word in words)
    body_lines: list[bytes] = []
    index += 1
    while True:
        line = lines[index]
        if line.startswith(b"---") or line.startswith(b"->"):
            raise AgeHeaderError(
                f"age header: stanza {stanza_type} (line {line_no}): body does not end"
                " with a line shorter than 64 columns"
            )
        if len(line) > BODY_COLUMNS:
            raise AgeHeaderError(
                f"age header: line {index + 1}: body line longer than {BODY_COLUMNS} columns"
            )
        body_lines.append(line)
        index += 1
        if len(line) < BODY_COLUMNS:
            break
    body = b64decode_canonical(b"".join(body_lines), f"stanza {stanza_type} body (line {line_no})")
    return Stanza(stanza_type, tuple(args), body), index


def _parse_mac_line(line: bytes, line_no: int) -> bytes:
    if not line.startswith(b"--- "):
        raise AgeHeaderError(f"age header: line {line_no}: MAC line must start with '--- '")
    mac = b64decode_canonical(line[4:], "header MAC")
    if len(mac) != MAC_SIZE:
        raise AgeHeaderError(f"age header: MAC is {len(mac)} bytes, expected {MAC_SIZE}")
    return mac


def read_header(src: BinaryIO) -> Header:
    """Read and parse the header at the start of ``src``.

    ``src`` is read past the header in blocks; seek to ``header.size`` to reach the
    payload on a seekable stream.
    """
    data, _leftover = read_header_bytes(src)
    return parse_header(data)


def unwrap_file_key(header: Header, identities: Iterable[Identity]) -> bytes:
    """Recover the file key with the first identity that matches, then check the MAC."""
    identities = list(identities)
    if not identities:
        raise NoIdentityMatched("no identities given to decrypt with")
    _check_scrypt_alone(header.stanzas)
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            break
    else:
        types = ", ".join(sorted({s.type for s in header.stanzas}))
        raise NoIdentityMatched(
            f"none of the {len(identities)} identities matches a recipient of this file"
            f" (stanza types: {types})"
        )
    if len(file_key) != FILE_KEY_SIZE:
        raise AgeHeaderError(
            f"age header: unwrapped file key is {len(file_key)} bytes, expected {FILE_KEY_SIZE}"
        )
    if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
        raise AgeHeaderError("age header: MAC mismatch, the header was modified")
    return file_key


def _check_scrypt_alone(stanzas: Sequence[Stanza]) -> None:
    # The spec requires a passphrase-encrypted file to hold a single scrypt stanza.
    if len(stanzas) > 1 and any(s.type == "scrypt" for s in stanzas):
        raise AgeHeaderError("age header: an scrypt stanza must be the only stanza")
