"""The hybrid post-quantum recipient type of age, ``mlkem768x25519`` (X-Wing).

Specified in https://c2sp.org/age ("The MLKEM768-X25519 (i.e. X-Wing) hybrid
post-quantum recipient type") and implemented by age 1.3 (``age1pq1...`` keys) and
typage 0.3. A file key is sealed with HPKE (RFC 9180) base mode:

* KEM: MLKEM768-X25519 of draft-ietf-hpke-pq-03 / https://filippo.io/hpke-pq
  (KEM id 0x647a; shared secret ``SHA3-256(ss_PQ || ss_T || ct_T || ek_T || "\\.//^\\")``),
* KDF: HKDF-SHA256, AEAD: ChaCha20-Poly1305,
* ``info = "age-encryption.org/mlkem768x25519"``, empty AAD.

``cryptography`` ships that exact KEM (``hpke.KEM.MLKEM768_X25519``; the tests check
it against the hpke-pq and C2SP age vectors). The HPKE private key is a 32-byte seed,
expanded as ``SHAKE256(seed, 96)`` into the 64-byte ML-KEM-768 seed (d || z) and the
32-byte X25519 private key. Encodings:

* identity: the seed, Bech32 with HRP ``AGE-SECRET-KEY-PQ-`` (upper case);
* recipient: ML-KEM-768 encapsulation key (1184 bytes) || X25519 public key (32 bytes),
  Bech32 with HRP ``age1pq`` (longer than BIP 173 allows, as age specifies);
* stanza: ``-> mlkem768x25519 <base64 enc (1120 bytes)>`` with the 32-byte HPKE
  ciphertext of the file key as body.

The hybrid stays confidential as long as either ML-KEM-768 or X25519 does. Files
encrypted to it must not also be encrypted to classical recipients (the writer refuses
to mix them, see ``post_quantum``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from . import bech32
from .age_format import (
    FILE_KEY_SIZE,
    AgeError,
    AgeHeaderError,
    AgeKeyError,
    Stanza,
    b64decode_canonical,
    b64encode_unpadded,
)

RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
STANZA_TYPE = "mlkem768x25519"
SEED_SIZE = 32
MLKEM_ENCAPSULATION_KEY_SIZE = 1184
MLKEM_CIPHERTEXT_SIZE = 1088
X25519_KEY_SIZE = 32
RECIPIENT_SIZE = MLKEM_ENCAPSULATION_KEY_SIZE + X25519_KEY_SIZE  # 1216
ENC_SIZE = MLKEM_CIPHERTEXT_SIZE + X25519_KEY_SIZE  # 1120
WRAPPED_KEY_SIZE = FILE_KEY_SIZE + 16  # ChaCha20-Poly1305 tag
HPKE_INFO = b"age-encryption.org/mlkem768x25519"
_MLKEM_SEED_SIZE = 64
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def expand_seed(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, X25519PrivateKey]:
    """``expandKey`` of hpke-pq: SHAKE256(seed, 64 + 32) -> (ML-KEM-768 key, X25519 key)."""
    if len(seed) != SEED_SIZE:
        raise AgeKeyError(f"MLKEM768-X25519 private key is {len(seed)} bytes, expected {SEED_SIZE}")
    expanded = hashlib.shake_256(seed).digest(_MLKEM_SEED_SIZE + X25519_KEY_SIZE)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:_MLKEM_SEED_SIZE]),
        X25519PrivateKey.from_private_bytes(expanded[_MLKEM_SEED_SIZE:]),
    )


def _decode_key(text: str, expected_hrp: str, size: int, what: str) -> bytes:
    try:
        hrp, data = bech32.decode(text)
    except bech32.Bech32Error as error:
        raise AgeKeyError(f"malformed {what}: {error}") from None
    if hrp != expected_hrp:
        case_hint = " (wrong case?)" if hrp.lower() == expected_hrp.lower() else ""
        raise AgeKeyError(f"malformed {what}: prefix {hrp!r}, expected {expected_hrp!r}{case_hint}")
    if len(data) != size:
        raise AgeKeyError(f"malformed {what}: {len(data)} key bytes, expected {size}")
    return data


class HybridRecipient:
    """An ``age1pq1...`` public key (MLKEM768-X25519 encapsulation key).

    ``post_quantum`` is true: the writer refuses to add classical recipients to the
    same file, which would let a quantum adversary open it through them.
    """

    post_quantum = True

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != RECIPIENT_SIZE:
            raise AgeKeyError(
                f"MLKEM768-X25519 public key is {len(public_bytes)} bytes, expected {RECIPIENT_SIZE}"
            )
        self.public_bytes = bytes(public_bytes)
        try:
            mlkem_key = mlkem.MLKEM768PublicKey.from_public_bytes(
                self.public_bytes[:MLKEM_ENCAPSULATION_KEY_SIZE]
            )
        except ValueError:
            raise AgeKeyError(
                "MLKEM768-X25519 public key: the ML-KEM-768 part is not a valid encapsulation"
                " key (coefficient out of range); check the age1pq1... string was copied whole"
            ) from None
        x25519_key = X25519PublicKey.from_public_bytes(self.public_bytes[MLKEM_ENCAPSULATION_KEY_SIZE:])
        self._hpke_key = hpke.MLKEM768X25519PublicKey(mlkem_key, x25519_key)

    @classmethod
    def from_string(cls, text: str) -> HybridRecipient:
        """Parse ``age1pq1...`` (lower case, as age 1.3 prints it)."""
        return cls(_decode_key(text.strip(), RECIPIENT_HRP, RECIPIENT_SIZE, "MLKEM768-X25519 recipient"))

    def to_string(self) -> str:
        """The ``age1pq1...`` Bech32 encoding (about 1960 characters)."""
        return bech32.encode(RECIPIENT_HRP, self.public_bytes)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Seal ``file_key`` with HPKE SealBase to this recipient (fresh encapsulation)."""
        try:
            sealed = _SUITE.encrypt(file_key, self._hpke_key, info=HPKE_INFO)
        except ValueError:
            # OpenSSL refuses the all-zero X25519 result of a low-order public key.
            raise AgeError(
                f"cannot encrypt to {self.to_string()[:24]}...: its X25519 part is a low-order point"
            ) from None
        enc, body = sealed[:ENC_SIZE], sealed[ENC_SIZE:]
        return [Stanza(STANZA_TYPE, (b64encode_unpadded(enc),), body)]

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"HybridRecipient({self.to_string()[:24]}...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        return hash((HybridRecipient, self.public_bytes))


class HybridIdentity:
    """An ``AGE-SECRET-KEY-PQ-1...`` private key (a 32-byte seed). ``repr`` hides it."""

    def __init__(self, seed: bytes) -> None:
        mlkem_key, x25519_key = expand_seed(bytes(seed))
        self._seed = bytes(seed)
        self._x25519_key = x25519_key
        self._hpke_key = hpke.MLKEM768X25519PrivateKey(mlkem_key, x25519_key)
        self._public_bytes = (
            mlkem_key.public_key().public_bytes_raw() + x25519_key.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> HybridIdentity:
        """A new random identity (32 bytes from the OS CSPRNG)."""
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def from_string(cls, text: str) -> HybridIdentity:
        """Parse ``AGE-SECRET-KEY-PQ-1...`` (upper case, as ``age-keygen -pq`` writes it)."""
        return cls(_decode_key(text.strip(), IDENTITY_HRP, SEED_SIZE, "MLKEM768-X25519 identity"))

    def to_string(self) -> str:
        """The ``AGE-SECRET-KEY-PQ-1...`` Bech32 encoding (secret: handle with care)."""
        return bech32.encode(IDENTITY_HRP, self._seed)

    def recipient(self) -> HybridRecipient:
        """The public key files must be encrypted to for this identity to open them."""
        return HybridRecipient(self._public_bytes)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key from the first ``mlkem768x25519`` stanza that opens.

        Malformed stanzas of this type raise :class:`AgeHeaderError` (wrong argument
        count, non-canonical base64, enc not 1120 bytes, body not 32 bytes, X25519
        part of enc a low-order point); stanzas of other types are ignored.
        """
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            enc = _check_stanza(stanza)
            self._check_x25519_share(enc[MLKEM_CIPHERTEXT_SIZE:])
            try:
                return _SUITE.decrypt(enc + stanza.body, self._hpke_key, info=HPKE_INFO)
            except InvalidTag:
                # ML-KEM rejects implicitly: a stanza for another key fails here.
                continue
        return None

    def _check_x25519_share(self, share: bytes) -> None:
        # HPKE's OpenSSL path folds an all-zero X25519 result into InvalidTag; the spec
        # makes it a header error, so compute it once more to tell the two apart.
        try:
            self._x25519_key.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            raise AgeHeaderError(
                "age header: the X25519 part of the mlkem768x25519 stanza is a low-order point"
                " (zero shared secret)"
            ) from None

    def __repr__(self) -> str:
        return f"HybridIdentity(recipient={self.recipient().to_string()[:24]}...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridIdentity) and hmac.compare_digest(other._seed, self._seed)

    def __hash__(self) -> int:
        return hash((HybridIdentity, self._public_bytes))


def _check_stanza(stanza: Stanza) -> bytes:
    """Validate an ``mlkem768x25519`` stanza's shape and return its decoded enc."""
    if len(stanza.args) != 1:
        raise AgeHeaderError(
            f"age header: stanza {STANZA_TYPE} has {len(stanza.args)} arguments, expected 1"
        )
    enc = b64decode_canonical(stanza.args[0], f"{STANZA_TYPE} enc")
    if len(enc) != ENC_SIZE:
        raise AgeHeaderError(
            f"age header: {STANZA_TYPE} enc is {len(enc)} bytes, expected {ENC_SIZE}"
        )
    # Checked before decrypting, against partitioning-oracle attacks (spec requirement).
    if len(stanza.body) != WRAPPED_KEY_SIZE:
        raise AgeHeaderError(
            f"age header: {STANZA_TYPE} stanza body is {len(stanza.body)} bytes,"
            f" expected {WRAPPED_KEY_SIZE}"
        )
    return enc
