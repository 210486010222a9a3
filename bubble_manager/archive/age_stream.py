"""Streaming age v1 payload: :class:`AgeWriter` and :class:`AgeReader` file objects.

Implements the "Payload" section of https://c2sp.org/age: after the header come a
16-byte random nonce and the plaintext in 64 KiB chunks, each sealed with
ChaCha20-Poly1305 under ``HKDF-SHA-256(ikm=file key, salt=nonce, info="payload")``
and the 12-byte nonce ``11-byte big-endian chunk counter || last-chunk flag``. The
final chunk may be short but is empty only when the whole plaintext is empty; a
plaintext that fills its last chunk exactly is *not* followed by an empty chunk.

Both classes work in constant memory (one chunk of buffers each).

Release of plaintext: :class:`AgeReader` hands out a chunk's plaintext only after that
chunk's tag verified, but plaintext of earlier chunks is already released when a later
chunk fails (truncation, tampering). Callers that need all-or-nothing must stage the
output and commit only once the reader reached its end without error (see
``decrypt_file_verified`` in :mod:`bubble_manager.archive.age`). A consumer that stops
reading early (``tarfile`` stops at the end-of-archive blocks) has not verified the
rest of the stream: call :meth:`AgeReader.verify_to_end` afterwards.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .age_format import (
    FILE_KEY_SIZE,
    AgeHeaderError,
    AgePayloadError,
    Header,
    Identity,
    Recipient,
    encode_header,
    hkdf_sha256,
    parse_header,
    read_header_bytes,
    unwrap_file_key,
    wrap_file_key,
)

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
PAYLOAD_NONCE_SIZE = 16
_LAST_FLAG = (b"\x00", b"\x01")


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The ChaCha20-Poly1305 key of the payload: HKDF(file key, salt=nonce, "payload")."""
    return hkdf_sha256(file_key, nonce, b"payload")


def chunk_nonce(index: int, last: bool) -> bytes:
    """The 12-byte STREAM nonce of chunk ``index``."""
    return index.to_bytes(11, "big") + _LAST_FLAG[last]


def _write_all(dst: BinaryIO, data: memoryview) -> None:
    # Raw (unbuffered) files may write less than asked.
    while data:
        written = dst.write(data)
        if written is None or written >= len(data):
            return
        data = data[written:]


class AgeWriter(io.BufferedIOBase):
    """A write-only file object that encrypts to ``recipients`` into ``dst``.

    The header is written at construction, chunks as they fill, and the final chunk
    by :meth:`close`. ``dst`` is flushed, not closed, on close. Usable as the
    ``fileobj`` of ``tarfile`` or ``zstandard`` streams.

    Only an explicit :meth:`close` (or leaving a ``with`` block normally) seals the
    stream. Leaving a ``with`` block by an exception, calling :meth:`abort`, a failed
    write to ``dst``, or dropping the object unclosed leaves the output without a
    final chunk, so any reader rejects it as truncated rather than accepting a
    partial plaintext. Wrappers that close their inner file on error would seal it:
    give ``zstandard`` writers ``closefd=False`` and keep the ``AgeWriter`` as the
    outermost ``with``.
    """

    def __init__(self, dst: BinaryIO, recipients: Iterable[Recipient]) -> None:
        super().__init__()
        self._dst = dst
        self._sealed_or_aborted = False
        file_key = os.urandom(FILE_KEY_SIZE)
        header = encode_header(wrap_file_key(recipients, file_key), file_key)
        nonce = os.urandom(PAYLOAD_NONCE_SIZE)
        self._aead = ChaCha20Poly1305(payload_key(file_key, nonce))
        self._chunk_index = 0
        self._plaintext = bytearray(CHUNK_SIZE)
        self._filled = 0
        self._ciphertext = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
        _write_all(dst, memoryview(header + nonce))

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        """Buffer ``data``, emitting every chunk that is full and known not to be last."""
        if self.closed:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data).cast("B")
        total, position = len(view), 0
        while position < total:
            if self._filled == CHUNK_SIZE:
                # More data is coming, so the buffered full chunk is not the last one.
                self._emit(memoryview(self._plaintext), last=False)
                self._filled = 0
            remaining = total - position
            if self._filled == 0 and remaining > CHUNK_SIZE:
                self._emit(view[position : position + CHUNK_SIZE], last=False)
                position += CHUNK_SIZE
                continue
            take = min(CHUNK_SIZE - self._filled, remaining)
            self._plaintext[self._filled : self._filled + take] = view[position : position + take]
            self._filled += take
            position += take
        return total

    def _emit(self, plaintext: memoryview, last: bool) -> None:
        size = len(plaintext) + TAG_SIZE
        out = self._ciphertext[:size]
        self._aead.encrypt_into(chunk_nonce(self._chunk_index, last), plaintext, None, out)
        try:
            _write_all(self._dst, out)
        except BaseException:
            # The output now misses data: never seal it, even if close() is called.
            self._sealed_or_aborted = True
            raise
        self._chunk_index += 1

    def flush(self) -> None:
        """Flush ``dst``; a partly filled chunk stays buffered until it fills or closes."""
        # io.IOBase.close() flushes too, also when abort() runs after the caller closed ``dst``.
        if not self.closed and hasattr(self._dst, "flush") and not getattr(self._dst, "closed", False):
            self._dst.flush()

    def close(self) -> None:
        """Write the final chunk, flush ``dst`` and close this writer (not ``dst``)."""
        if self.closed:
            return
        try:
            if not self._sealed_or_aborted:
                self._sealed_or_aborted = True
                self._emit(memoryview(self._plaintext)[: self._filled], last=True)
                if hasattr(self._dst, "flush"):
                    self._dst.flush()
        finally:
            super().close()

    def abort(self) -> None:
        """Close without the final chunk: the output then reads as truncated."""
        self._sealed_or_aborted = True
        super().close()

    def __exit__(self, exc_type, exc_value, traceback) -> None:  # type: ignore[override]
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # io.IOBase.__del__ would call close() and seal a possibly incomplete stream.
        if hasattr(self, "_sealed_or_aborted") and not self.closed:
            self.abort()


class _PrefixedSource:
    """Serves ``prefix`` (bytes already read past the header) before ``src``."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._src = src
        self._readinto = getattr(src, "readinto", None)

    def readinto(self, buffer: memoryview) -> int:
        if self._prefix:
            taken = min(len(buffer), len(self._prefix))
            buffer[:taken] = self._prefix[:taken]
            self._prefix = self._prefix[taken:]
            return taken
        if self._readinto is not None:
            return self._readinto(buffer) or 0
        data = self._src.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read_exactly(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at end of input."""
        buffer = bytearray(size)
        filled = 0
        while filled < size:
            got = self.readinto(memoryview(buffer)[filled:])
            if not got:
                break
            filled += got
        return bytes(buffer[:filled])


class AgeReader(io.BufferedIOBase):
    """A read-only file object that decrypts the age file read from ``src``.

    The header is parsed, the file key unwrapped with ``identities`` and the header
    MAC verified at construction (raising :class:`AgeHeaderError` or
    :class:`NoIdentityMatched`). Reading raises :class:`AgePayloadError` naming the
    failing chunk. ``src`` is not closed on close.

    Plaintext of a chunk is released only after its tag verified, but earlier chunks
    are already released when a later one fails: stage the output if you need
    all-or-nothing, and call :meth:`verify_to_end` if you stop reading early.
    """

    header: Header | None
    """The parsed header (None for readers made with :meth:`from_file_key`)."""

    def __init__(self, src: BinaryIO, identities: Iterable[Identity]) -> None:
        header_bytes, leftover = read_header_bytes(src)
        header = parse_header(header_bytes)
        file_key = unwrap_file_key(header, identities)
        self._init_payload(_PrefixedSource(leftover, src), file_key)
        self.header = header

    @classmethod
    def from_file_key(cls, payload: BinaryIO, file_key: bytes) -> AgeReader:
        """Decrypt a payload (nonce and chunks) whose header was already handled.

        ``payload`` must be positioned right after the header. Used to verify a
        payload while copying it, e.g. when rewriting a header.
        """
        reader = cls.__new__(cls)
        reader._init_payload(_PrefixedSource(b"", payload), file_key)
        reader.header = None
        return reader

    def _init_payload(self, source: _PrefixedSource, file_key: bytes) -> None:
        super().__init__()
        self._source = source
        nonce = source.read_exactly(PAYLOAD_NONCE_SIZE)
        if len(nonce) != PAYLOAD_NONCE_SIZE:
            # The reference implementation reads the nonce with the header.
            raise AgeHeaderError(
                f"age header: truncated, {len(nonce)} of the 16 payload nonce bytes present"
            )
        self._aead = ChaCha20Poly1305(payload_key(file_key, nonce))
        self._chunk_index = 0
        self._finished = False
        # One spare byte of lookahead tells a full chunk followed by more data
        # (not last) from a full chunk at the end of input (last).
        self._ciphertext = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE + 1))
        self._ciphertext_filled = 0
        self._plaintext = memoryview(bytearray(CHUNK_SIZE))
        self._plain_start = 0
        self._plain_end = 0

    def readable(self) -> bool:
        return True

    @property
    def finished(self) -> bool:
        """True once the final chunk has been read and verified."""
        return self._finished

    def _fill_ciphertext(self) -> int:
        while self._ciphertext_filled < len(self._ciphertext):
            got = self._source.readinto(self._ciphertext[self._ciphertext_filled :])
            if not got:
                break
            self._ciphertext_filled += got
        return self._ciphertext_filled

    def _decrypt_next_chunk(self) -> None:
        index = self._chunk_index
        available = self._fill_ciphertext()
        last = available <= ENCRYPTED_CHUNK_SIZE
        size = available if last else ENCRYPTED_CHUNK_SIZE
        self._check_chunk_size(index, size, last)
        ciphertext = self._ciphertext[:size]
        plaintext = self._plaintext[: size - TAG_SIZE]
        try:
            self._aead.decrypt_into(chunk_nonce(index, last), ciphertext, None, plaintext)
        except InvalidTag:
            plaintext[:] = bytes(len(plaintext))  # drop the unverified plaintext
            raise self._explain_failure(index, ciphertext, last) from None
        if last:
            self._finished = True
            self._ciphertext_filled = 0
        else:
            self._ciphertext[0] = self._ciphertext[ENCRYPTED_CHUNK_SIZE]
            self._ciphertext_filled = 1
        self._chunk_index += 1
        self._plain_start, self._plain_end = 0, len(plaintext)

    @staticmethod
    def _check_chunk_size(index: int, size: int, last: bool) -> None:
        # After a non-final chunk one lookahead byte is always held, so only the
        # first chunk can be missing entirely.
        if size == 0:
            raise AgePayloadError("age payload: truncated, no chunk after the nonce", 0)
        if size < TAG_SIZE:
            raise AgePayloadError(
                f"age payload: chunk {index} truncated, {size} bytes is shorter than its tag",
                index,
            )
        if last and size == TAG_SIZE and index > 0:
            raise AgePayloadError(
                f"age payload: final chunk {index} is empty, only allowed when the whole"
                " plaintext is empty",
                index,
            )

    def _explain_failure(self, index: int, ciphertext: memoryview, last: bool) -> AgePayloadError:
        """Name the most likely cause; the other flag is tried for diagnosis only."""
        scratch = bytearray(len(ciphertext) - TAG_SIZE)
        try:
            self._aead.decrypt_into(chunk_nonce(index, not last), ciphertext, None, scratch)
        except InvalidTag:
            return AgePayloadError(
                f"age payload: chunk {index} failed authentication (corrupted, truncated,"
                " reordered, or followed by trailing data)",
                index,
            )
        finally:
            scratch[:] = bytes(len(scratch))
        if last:
            return AgePayloadError(
                f"age payload: truncated, input ends after chunk {index} which is not"
                " marked final",
                index,
            )
        return AgePayloadError(f"age payload: trailing data after the final chunk {index}", index)

    def _ensure_plaintext(self) -> bool:
        """Make buffered plaintext available; False at the verified end of the stream."""
        while self._plain_start == self._plain_end:
            if self._finished:
                return False
            self._decrypt_next_chunk()
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        """Fill ``buffer`` with verified plaintext; fewer bytes only at the end."""
        self._check_open()
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._ensure_plaintext():
            take = min(len(out) - written, self._plain_end - self._plain_start)
            out[written : written + take] = self._plaintext[
                self._plain_start : self._plain_start + take
            ]
            self._plain_start += take
            written += take
        return written

    def readinto1(self, buffer) -> int:  # type: ignore[override]
        """Like :meth:`readinto` but from at most one chunk."""
        self._check_open()
        out = memoryview(buffer).cast("B")
        if not out or not self._ensure_plaintext():
            return 0
        take = min(len(out), self._plain_end - self._plain_start)
        out[:take] = self._plaintext[self._plain_start : self._plain_start + take]
        self._plain_start += take
        return take

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of verified plaintext (all the rest if negative)."""
        self._check_open()
        parts: list[bytes] = []
        wanted = -1 if size is None or size < 0 else size
        while wanted != 0 and self._ensure_plaintext():
            available = self._plain_end - self._plain_start
            take = available if wanted < 0 else min(wanted, available)
            parts.append(bytes(self._plaintext[self._plain_start : self._plain_start + take]))
            self._plain_start += take
            if wanted > 0:
                wanted -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from at most one chunk."""
        self._check_open()
        if size == 0 or not self._ensure_plaintext():
            return b""
        available = self._plain_end - self._plain_start
        take = available if size < 0 else min(size, available)
        data = bytes(self._plaintext[self._plain_start : self._plain_start + take])
        self._plain_start += take
        return data

    def verify_to_end(self) -> int:
        """Authenticate every remaining chunk, discarding its plaintext.

        Returns the number of plaintext bytes skipped. Call this when a consumer
        (``tarfile``, a decompressor) stops before the end of the stream, to make sure
        the file is complete and untampered.
        """
        self._check_open()
        skipped = 0
        while self._ensure_plaintext():
            skipped += self._plain_end - self._plain_start
            self._plain_start = self._plain_end
        return skipped

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed AgeReader")
