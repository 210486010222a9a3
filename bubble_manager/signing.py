"""The hub's Ed25519 signing key: signs audit checkpoints, extract manifests and archive envelopes.

`bubble-manager keys init` creates it under `$BUBBLE_MANAGER_HOME/keys/` (private key mode 0600,
in a folder mode 0700). Only its public half is needed to verify; give it to auditors.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "hub-signing.key"
PUBLIC_NAME = "hub-signing.pub"


class SigningKeyError(RuntimeError):
    """The hub signing key is missing, unreadable or already exists."""


@dataclass(frozen=True)
class Verifier:
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        """Short fingerprint that names the key in signed documents."""
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, signature_b64: str, message: bytes) -> bool:
        try:
            self.public_key.verify(base64.b64decode(signature_b64, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_pem(cls, pem: bytes) -> "Verifier":
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("the hub public key is not an Ed25519 key")
        return cls(key)


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private_key.public_key())

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode("ascii")


def keys_dir(home: Path) -> Path:
    return Path(home) / "keys"


def init_signing_key(home: Path) -> Path:
    """Create the hub signing key; refuse to replace one (it would orphan every signature)."""
    folder = keys_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    private_path, public_path = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    if private_path.exists():
        raise SigningKeyError(f"{private_path} already exists; the hub signing key is created once "
                              "(move it away yourself only if you mean to start a new key history)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new(private_path, pem, 0o600)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(public_path, public_pem, 0o644)
    return private_path


def load_signer(home: Path) -> Signer:
    path = keys_dir(home) / PRIVATE_NAME
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"no hub signing key at {path}; run `bubble-manager keys init` first") from None
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return Signer(key)


def load_verifier(home: Path) -> Verifier:
    path = keys_dir(home) / PUBLIC_NAME
    try:
        return Verifier.from_pem(path.read_bytes())
    except FileNotFoundError:
        raise SigningKeyError(f"no hub public key at {path}; run `bubble-manager keys init` first") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` exclusively with `mode`, write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
