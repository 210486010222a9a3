"""The native X25519 recipient type of age (https://c2sp.org/age, "The X25519 recipient type").

Recipients are ``age1...`` Bech32 strings (HRP ``age``), identities are
``AGE-SECRET-KEY-1...`` (HRP ``AGE-SECRET-KEY-``, upper case as ``age-keygen`` writes
them). A stanza is ``-> X25519 <base64 ephemeral share>`` with a 32-byte body, the file
key sealed with ChaCha20-Poly1305 under
``HKDF-SHA-256(ikm=shared secret, salt=share || recipient, info="age-encryption.org/v1/X25519")``.
"""

from __future__ import annotations

import hmac
from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import bech32
from .age_format import (
    FILE_KEY_SIZE,
    AgeError,
    AgeHeaderError,
    AgeKeyError,
    Stanza,
    b64decode_canonical,
    b64encode_unpadded,
    hkdf_sha256,
)

RECIPIENT_HRP = "age"
IDENTITY_HRP = "AGE-SECRET-KEY-"
STANZA_TYPE = "X25519"
KEY_SIZE = 32
_WRAP_INFO = b"age-encryption.org/v1/X25519"
_WRAP_NONCE = bytes(12)
_WRAPPED_KEY_SIZE = FILE_KEY_SIZE + 16


def _decode_key(text: str, expected_hrp: str, what: str) -> bytes:
    try:
        hrp, data = bech32.decode(text)
    except bech32.Bech32Error as error:
        raise AgeKeyError(f"malformed {what}: {error}") from None
    if hrp != expected_hrp:
        case_hint = " (wrong case?)" if hrp.lower() == expected_hrp.lower() else ""
        raise AgeKeyError(f"malformed {what}: prefix {hrp!r}, expected {expected_hrp!r}{case_hint}")
    if len(data) != KEY_SIZE:
        raise AgeKeyError(f"malformed {what}: {len(data)} key bytes, expected {KEY_SIZE}")
    return data


def _wrap_key(shared_secret: bytes, share: bytes, recipient: bytes) -> ChaCha20Poly1305:
    if hmac.compare_digest(shared_secret, bytes(KEY_SIZE)):
        raise AgeHeaderError("age header: X25519 shared secret is all zero (low-order point)")
    return ChaCha20Poly1305(hkdf_sha256(shared_secret, share + recipient, _WRAP_INFO))


def _exchange(private_key: X25519PrivateKey, public_bytes: bytes, what: str) -> bytes:
    try:
        return private_key.exchange(X25519PublicKey.from_public_bytes(public_bytes))
    except ValueError:
        # OpenSSL refuses an all-zero result, i.e. a low-order point.
        raise AgeHeaderError(
            f"age header: {what} is a low-order point (zero shared secret)"
        ) from None


class X25519Recipient:
    """An ``age1...`` public key; files encrypted to it open with the matching identity."""

    post_quantum = False

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != KEY_SIZE:
            raise AgeKeyError(f"X25519 public key is {len(public_bytes)} bytes, expected 32")
        self.public_bytes = bytes(public_bytes)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        """Parse ``age1...`` (lower case, as the age CLI prints it)."""
        return cls(_decode_key(text.strip(), RECIPIENT_HRP, "X25519 recipient"))

    def to_string(self) -> str:
        """The ``age1...`` Bech32 encoding."""
        return bech32.encode(RECIPIENT_HRP, self.public_bytes)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Seal ``file_key`` to this recipient with a fresh ephemeral key."""
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        try:
            shared_secret = _exchange(ephemeral, self.public_bytes, "recipient public key")
            wrap_key = _wrap_key(shared_secret, share, self.public_bytes)
        except AgeHeaderError as error:
            raise AgeError(f"cannot encrypt to {self.to_string()}: {error}") from None
        body = wrap_key.encrypt(_WRAP_NONCE, file_key, None)
        return [Stanza(STANZA_TYPE, (b64encode_unpadded(share),), body)]

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"X25519Recipient({self.to_string()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        return hash((X25519Recipient, self.public_bytes))


class X25519Identity:
    """An ``AGE-SECRET-KEY-1...`` private key. Its ``repr`` never shows the secret."""

    def __init__(self, private_bytes: bytes) -> None:
        if len(private_bytes) != KEY_SIZE:
            raise AgeKeyError(f"X25519 private key is {len(private_bytes)} bytes, expected 32")
        self._private_bytes = bytes(private_bytes)
        self._private_key = X25519PrivateKey.from_private_bytes(self._private_bytes)
        self._public_bytes = self._private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> X25519Identity:
        """A new random identity (32 bytes from the OS CSPRNG)."""
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        """Parse ``AGE-SECRET-KEY-1...`` (upper case, as ``age-keygen`` writes it)."""
        return cls(_decode_key(text.strip(), IDENTITY_HRP, "X25519 identity"))

    def to_string(self) -> str:
        """The ``AGE-SECRET-KEY-1...`` Bech32 encoding (secret: handle with care)."""
        return bech32.encode(IDENTITY_HRP, self._private_bytes)

    def recipient(self) -> X25519Recipient:
        """The public key files must be encrypted to for this identity to open them."""
        return X25519Recipient(self._public_bytes)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key from the first X25519 stanza addressed to us, else None.

        Malformed X25519 stanzas raise :class:`AgeHeaderError` (the spec says reject,
        not skip); stanzas of other types are ignored.
        """
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            share = _check_stanza(stanza)
            shared_secret = _exchange(self._private_key, share, "X25519 stanza share")
            wrap_key = _wrap_key(shared_secret, share, self._public_bytes)
            try:
                return wrap_key.decrypt(_WRAP_NONCE, stanza.body, None)
            except InvalidTag:
                continue
        return None

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={self.recipient().to_string()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Identity) and hmac.compare_digest(
            other._private_bytes, self._private_bytes
        )

    def __hash__(self) -> int:
        return hash((X25519Identity, self._public_bytes))


def _check_stanza(stanza: Stanza) -> bytes:
    """Validate an X25519 stanza's shape and return its decoded ephemeral share."""
    if len(stanza.args) != 1:
        raise AgeHeaderError(
            f"age header: stanza X25519 has {len(stanza.args)} arguments, expected 1"
        )
    share = b64decode_canonical(stanza.args[0], "X25519 share")
    if len(share) != KEY_SIZE:
        raise AgeHeaderError(f"age header: X25519 share is {len(share)} bytes, expected 32")
    # Checked before decrypting, to avoid partitioning-oracle attacks (spec requirement).
    if len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise AgeHeaderError(
            f"age header: X25519 stanza body is {len(stanza.body)} bytes, expected 32"
        )
    return share
