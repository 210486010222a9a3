"""Tests for the age v1 implementation in bubble_manager.archive.age.

Covers round trips, tampering, strict header parsing, header rewriting, the C2SP test
kit (vectors embedded at the end of this file) and interoperability with the real
``age`` / ``age-keygen`` CLI.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard

from bubble_manager.archive import bech32
from bubble_manager.archive.age import (
    CHUNK_SIZE,
    MAX_HEADER_SIZE,
    AgeError,
    AgeHeaderError,
    AgeKeyError,
    AgePayloadError,
    AgeReader,
    AgeWriter,
    NoIdentityMatched,
    Stanza,
    X25519Identity,
    X25519Recipient,
    decrypt_file_verified,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    parse_identity,
    parse_identity_file,
    parse_recipient,
    read_header,
    rewrite_header,
)
from bubble_manager.archive.age_format import encode_header, parse_header

ENCRYPTED_CHUNK = CHUNK_SIZE + 16
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


def encrypt_bytes(data: bytes, recipients) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, recipients)
    return out.getvalue()


def decrypt_bytes(ciphertext: bytes, identities) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(ciphertext), out, identities)
    return out.getvalue()


def payload_offset(ciphertext: bytes) -> int:
    """Offset of the first chunk (after header and 16-byte nonce)."""
    return read_header(io.BytesIO(ciphertext)).size + 16


# --- keys and Bech32 ------------------------------------------------------------------


def test_spec_example_identity_gives_spec_example_recipient():
    identity = X25519Identity.from_string(SPEC_IDENTITY)
    assert identity.recipient().to_string() == SPEC_RECIPIENT
    assert identity.to_string() == SPEC_IDENTITY
    assert X25519Recipient.from_string(SPEC_RECIPIENT) == identity.recipient()


def test_generated_identity_round_trips_and_repr_hides_secret(identity):
    text = identity.to_string()
    assert text.startswith("AGE-SECRET-KEY-1") and text == text.upper()
    assert X25519Identity.from_string(text) == identity
    assert parse_identity(text) == identity
    assert parse_recipient(identity.recipient().to_string()) == identity.recipient()
    assert text not in repr(identity) and text[16:] not in repr(identity)


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC_RECIPIENT.upper(), "wrong case"),
        (SPEC_RECIPIENT[:10] + SPEC_RECIPIENT[10:].upper(), "mixed case"),
        (SPEC_RECIPIENT[:-1] + ("q" if SPEC_RECIPIENT[-1] != "q" else "p"), "checksum"),
        (SPEC_IDENTITY, "expected 'age'"),
        (bech32.encode("age", bytes(31)), "31 key bytes"),
    ],
)
def test_malformed_recipients_are_rejected(text, message):
    with pytest.raises(AgeKeyError, match=message):
        X25519Recipient.from_string(text)


def test_identity_must_be_upper_case_and_of_a_known_type():
    with pytest.raises(AgeKeyError, match="wrong case"):
        X25519Identity.from_string(SPEC_IDENTITY.lower())
    with pytest.raises(AgeKeyError, match="unsupported identity type"):
        parse_identity(bech32.encode("AGE-PLUGIN-YUBIKEY-", b"x" * 10))
    with pytest.raises(AgeKeyError, match="unsupported recipient type"):
        parse_recipient(bech32.encode("age1tag", b"x" * 40))  # hardware-key type, not supported


def test_parse_identity_file_as_age_keygen_writes_it(identity):
    other = X25519Identity.generate()
    text = (
        "# created: 2024-01-01T00:00:00Z\r\n"
        f"# public key: {identity.recipient()}\r\n"
        f"{identity.to_string()}\r\n"
        "\n"
        f"{other.to_string()}\n"
    )
    assert parse_identity_file(text) == [identity, other]


def test_parse_identity_file_errors_name_the_line_but_not_the_key():
    secret = SPEC_IDENTITY[:-1] + "Q"  # bad checksum
    with pytest.raises(AgeKeyError, match="line 2") as raised:
        parse_identity_file(f"# comment\n{secret}\n")
    assert secret not in str(raised.value)
    with pytest.raises(AgeKeyError, match="no identities"):
        parse_identity_file("# only a comment\n\n")


@pytest.mark.parametrize(
    "valid",
    [
        "A12UEL5L",
        "a12uel5l",
        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    ],
)
def test_bech32_accepts_bip173_valid_strings(valid):
    bech32.decode(valid)


@pytest.mark.parametrize(
    "invalid",
    ["A1G7SGD8", "10a06t8", "1qzzfhee", "a12UEL5L", "x1b4n0q5v", "li1dgmt3", "de1lg7wt\xff"],
)
def test_bech32_rejects_bip173_invalid_strings(invalid):
    with pytest.raises(bech32.Bech32Error):
        bech32.decode(invalid)


def test_bech32_has_no_length_limit():
    data = os.urandom(1200)
    text = bech32.encode("age1pq", data)
    assert len(text) > 90
    assert bech32.decode(text) == ("age1pq", data)
    assert bech32.decode(bech32.encode("AGE-SECRET-KEY-PQ-", data)) == ("AGE-SECRET-KEY-PQ-", data)


# --- round trips ----------------------------------------------------------------------


def expected_ciphertext_size(header_size: int, plaintext_size: int) -> int:
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return header_size + 16 + plaintext_size + 16 * chunks


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_000])
def test_round_trip(identity, size):
    data = os.urandom(size)
    ciphertext = encrypt_bytes(data, [identity.recipient()])
    # A plaintext filling its last chunk exactly gets no extra empty chunk.
    assert len(ciphertext) == expected_ciphertext_size(payload_offset(ciphertext) - 16, size)
    assert decrypt_bytes(ciphertext, [identity]) == data


def test_writer_with_uneven_writes_matches_reader_with_uneven_reads(identity):
    data = os.urandom(5 * CHUNK_SIZE + 123)
    out = io.BytesIO()
    with AgeWriter(out, [identity.recipient()]) as writer:
        position = 0
        for step in [1, 65535, 65536, 200_000, 7, 3 * 65536]:
            piece = data[position : position + step]
            assert writer.write(piece) == len(piece)
            position += step
        writer.write(memoryview(data)[position:])
    with AgeReader(io.BytesIO(out.getvalue()), [identity]) as reader:
        pieces = [reader.read(1), reader.read1(100_000), reader.read(70_000)]
        buffer = bytearray(50_000)
        pieces.append(bytes(buffer[: reader.readinto(buffer)]))
        pieces.append(reader.read())
        assert reader.read(10) == b"" and reader.finished
    assert b"".join(pieces) == data
    with pytest.raises(ValueError):
        reader.read(1)


class Trickle(io.RawIOBase):
    """A source that returns 1 to 7 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._step = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._step = self._step % 7 + 1
        count = min(len(buffer), self._step, len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


@pytest.mark.parametrize("size", [0, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_reader_copes_with_short_reads_everywhere(identity, size):
    data = os.urandom(size)
    ciphertext = encrypt_bytes(data, [identity.recipient()])
    assert AgeReader(Trickle(ciphertext), [identity]).read() == data
    with pytest.raises(AgePayloadError):
        AgeReader(Trickle(ciphertext + b"!"), [identity]).read()


def test_multiple_recipients_each_decrypt(identity):
    others = [X25519Identity.generate() for _ in range(3)]
    recipients = [identity.recipient()] + [o.recipient() for o in others]
    ciphertext = encrypt_bytes(b"shared secret", recipients)
    assert len(read_header(io.BytesIO(ciphertext)).stanzas) == 4
    for each in [identity, *others]:
        assert decrypt_bytes(ciphertext, [each]) == b"shared secret"


def test_wrong_identity_raises_no_identity_matched(identity):
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    with pytest.raises(NoIdentityMatched, match="none of the 2 identities"):
        decrypt_bytes(ciphertext, [X25519Identity.generate(), X25519Identity.generate()])
    with pytest.raises(NoIdentityMatched):
        decrypt_bytes(ciphertext, [])


def test_tar_zstd_age_pipeline_streams(identity, tmp_path):
    files = {"a.txt": b"hello\n", "big.bin": os.urandom(300_000), "empty": b""}
    out = io.BytesIO()
    with AgeWriter(out, [identity.recipient()]) as age_writer:
        with zstandard.ZstdCompressor().stream_writer(age_writer, closefd=False) as zstd_writer:
            with tarfile.open(fileobj=zstd_writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, content in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
    with AgeReader(io.BytesIO(out.getvalue()), [identity]) as age_reader:
        zstd_reader = zstandard.ZstdDecompressor().stream_reader(age_reader, closefd=False)
        with tarfile.open(fileobj=zstd_reader, mode="r|") as tar:
            got = {m.name: tar.extractfile(m).read() for m in tar}
        age_reader.verify_to_end()
        assert age_reader.finished
    assert got == files


def test_writer_left_by_exception_is_not_sealed(identity):
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with AgeWriter(out, [identity.recipient()]) as writer:
            writer.write(b"x" * 100_000)
            raise RuntimeError("tar failed half way")
    with pytest.raises(AgePayloadError, match="not marked final"):
        decrypt_bytes(out.getvalue(), [identity])


def test_writer_dropped_without_close_is_not_sealed(identity):
    out = io.BytesIO()
    writer = AgeWriter(out, [identity.recipient()])
    writer.write(b"partial")
    del writer
    with pytest.raises(AgePayloadError, match="no chunk"):
        decrypt_bytes(out.getvalue(), [identity])


def test_encrypt_file_and_decrypt_file_verified(identity, tmp_path):
    source = tmp_path / "plain"
    source.write_bytes(os.urandom(150_000))
    encrypt_file(source, tmp_path / "x.age", [identity.recipient()])
    decrypt_file_verified(tmp_path / "x.age", tmp_path / "out", [identity])
    assert (tmp_path / "out").read_bytes() == source.read_bytes()
    assert (tmp_path / "out").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "plain", "x.age"]


# --- tampering ------------------------------------------------------------------------


def flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def replace_header_line(ciphertext: bytes, line_index: int, new_line: bytes) -> bytes:
    header = read_header(io.BytesIO(ciphertext))
    lines = header.raw.split(b"\n")
    lines[line_index] = new_line
    return b"\n".join(lines) + ciphertext[header.size :]


def swap_base64_char(line: bytes, position: int) -> bytes:
    char = line[position : position + 1]
    return line[:position] + (b"A" if char != b"A" else b"B") + line[position + 1 :]


def chunk_start(ciphertext: bytes, index: int) -> int:
    return payload_offset(ciphertext) + index * ENCRYPTED_CHUNK


def tamper_cases():
    """(name, tamper function, expected error, message fragment) on a 3.5-chunk file."""

    def swap_chunks(ct: bytes) -> bytes:
        a, b = chunk_start(ct, 0), chunk_start(ct, 1)
        return ct[:a] + ct[b : b + ENCRYPTED_CHUNK] + ct[a:b] + ct[b + ENCRYPTED_CHUNK :]

    def insert_stanza(ct: bytes) -> bytes:
        header = read_header(io.BytesIO(ct))
        at = header.raw.index(b"\n---") + 1
        return ct[:at] + b"-> example.com/extra\n\n" + ct[at:]

    return [
        ("version line", lambda ct: flip_byte(ct, 3), AgeHeaderError, "version line"),
        ("inserted stanza", insert_stanza, AgeHeaderError, "MAC mismatch"),
        ("x25519 body", lambda ct: replace_header_line(ct, 2, swap_base64_char(
            read_header(io.BytesIO(ct)).raw.split(b"\n")[2], 5)), NoIdentityMatched, "none of"),
        ("mac", lambda ct: replace_header_line(ct, 3, swap_base64_char(
            read_header(io.BytesIO(ct)).raw.split(b"\n")[3], 10)), AgeHeaderError, "MAC mismatch"),
        ("chunk body", lambda ct: flip_byte(ct, chunk_start(ct, 1) + 9), AgePayloadError, "chunk 1"),
        ("chunk tag", lambda ct: flip_byte(ct, chunk_start(ct, 2) - 3), AgePayloadError, "chunk 1"),
        ("nonce", lambda ct: flip_byte(ct, payload_offset(ct) - 1), AgePayloadError, "chunk 0"),
        ("drop last chunk", lambda ct: ct[: chunk_start(ct, 3)], AgePayloadError, "after chunk 2"),
        ("truncate mid chunk", lambda ct: ct[: chunk_start(ct, 2) + 99], AgePayloadError, "chunk 2"),
        ("truncate in last", lambda ct: ct[:-1], AgePayloadError, "chunk 3"),
        ("trailing bytes", lambda ct: ct + b"\x00" * 5, AgePayloadError, "chunk 3"),
        ("swap chunks", swap_chunks, AgePayloadError, "chunk 0"),
        ("header only", lambda ct: ct[: payload_offset(ct)], AgePayloadError, "no chunk"),
    ]


@pytest.fixture(scope="module")
def three_and_a_half_chunks(identity):
    data = os.urandom(3 * CHUNK_SIZE + CHUNK_SIZE // 2)
    return data, encrypt_bytes(data, [identity.recipient()])


@pytest.mark.parametrize(
    "name, tamper, error, message", tamper_cases(), ids=[c[0] for c in tamper_cases()]
)
def test_tampering_is_detected_and_leaves_no_output(
    identity, three_and_a_half_chunks, tmp_path, name, tamper, error, message
):
    _data, ciphertext = three_and_a_half_chunks
    tampered = tamper(ciphertext)
    assert tampered != ciphertext
    with pytest.raises(error, match=message):
        decrypt_bytes(tampered, [identity])
    (tmp_path / "in.age").write_bytes(tampered)
    with pytest.raises(error):
        decrypt_file_verified(tmp_path / "in.age", tmp_path / "out", [identity])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.age"]


def test_decrypt_file_verified_keeps_existing_output_on_failure(
    identity, three_and_a_half_chunks, tmp_path
):
    _data, ciphertext = three_and_a_half_chunks
    (tmp_path / "in.age").write_bytes(ciphertext[:-1])
    (tmp_path / "out").write_bytes(b"previous")
    with pytest.raises(AgePayloadError):
        decrypt_file_verified(tmp_path / "in.age", tmp_path / "out", [identity])
    assert (tmp_path / "out").read_bytes() == b"previous"


@pytest.mark.parametrize("size", [CHUNK_SIZE, 2 * CHUNK_SIZE])
def test_trailing_data_after_full_final_chunk_is_named(identity, size):
    ciphertext = encrypt_bytes(os.urandom(size), [identity.recipient()])
    final_index = size // CHUNK_SIZE - 1
    with pytest.raises(AgePayloadError, match=f"trailing data after the final chunk {final_index}"):
        decrypt_bytes(ciphertext + b"x", [identity])


def test_earlier_verified_chunks_are_released_before_a_later_failure(
    identity, three_and_a_half_chunks
):
    data, ciphertext = three_and_a_half_chunks
    tampered = flip_byte(ciphertext, chunk_start(ciphertext, 2) + 5)
    reader = AgeReader(io.BytesIO(tampered), [identity])
    # Documented behaviour: chunks 0 and 1 come out, nothing of chunk 2 ever does.
    assert reader.read(CHUNK_SIZE) == data[:CHUNK_SIZE]
    assert reader.read(CHUNK_SIZE) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
    with pytest.raises(AgePayloadError, match="chunk 2") as raised:
        reader.read(1)
    assert raised.value.chunk_index == 2


# --- strict header parsing ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_file(identity) -> bytes:
    return encrypt_bytes(b"payload", [identity.recipient()])


def stanza_lines(ciphertext: bytes) -> tuple[bytes, bytes]:
    lines = read_header(io.BytesIO(ciphertext)).raw.split(b"\n")
    return lines[1], lines[2]


def with_stanza(ciphertext: bytes, arg_line: bytes, body_lines: list[bytes]) -> bytes:
    """Replace the single stanza of ``ciphertext`` (the MAC is then wrong, which is fine
    for errors raised before the MAC check)."""
    header = read_header(io.BytesIO(ciphertext))
    lines = header.raw.split(b"\n")
    new = [lines[0], arg_line, *body_lines, *lines[3:]]
    return b"\n".join(new) + ciphertext[header.size :]


def noncanonical(b64: bytes) -> bytes:
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-1:])
    return b64[:-1] + alphabet[last ^ 1 : (last ^ 1) + 1]


def test_strict_parsing_cases(identity, small_file):
    arg_line, body_line = stanza_lines(small_file)
    share = arg_line.split(b" ")[2]
    b64 = lambda data: base64.b64encode(data).rstrip(b"=")  # noqa: E731
    cases = [
        ("padded body", arg_line, [body_line + b"="], "padding is not allowed"),
        ("non-canonical body", arg_line, [noncanonical(body_line)], "non-canonical"),
        ("non-canonical share", b"-> X25519 " + noncanonical(share), [body_line], "non-canonical"),
        ("non-base64 char", arg_line, [body_line[:-1] + b"*"], "invalid base64 character"),
        ("64-column last body line", arg_line, [b64(bytes(48))], "shorter than 64"),
        ("extra argument", arg_line + b" extra", [body_line], "has 2 arguments, expected 1"),
        ("short argument", b"-> X25519 " + b64(os.urandom(31)), [body_line], "31 bytes"),
        ("wrong body length", arg_line, [b64(os.urandom(33))], "body is 33 bytes, expected 32"),
        ("zero share", b"-> X25519 " + b64(bytes(32)), [body_line], "low-order"),
        ("double space", b"-> X25519  " + share, [body_line], "empty stanza argument"),
        ("non-ascii argument", b"-> X25519 \xc3\xa9", [body_line], "printable ASCII"),
        ("malformed unknown stanza", b"-> example.com/x", [b64(bytes(48))], "shorter than 64"),
        ("crlf", arg_line + b"\r", [body_line], "CR"),
    ]
    for name, new_arg_line, body_lines, message in cases:
        with pytest.raises(AgeHeaderError, match=message):
            decrypt_bytes(with_stanza(small_file, new_arg_line, body_lines), [identity])


def test_unknown_well_formed_stanzas_are_skipped_and_lowercase_type_does_not_match(identity):
    file_key = os.urandom(16)
    stanzas = [
        Stanza("example.com/grease", ("a", "b!~"), os.urandom(48)),
        *identity.recipient().wrap(file_key),
    ]
    header = encode_header(stanzas, file_key)
    assert parse_header(header).stanzas == tuple(stanzas)
    x25519 = stanzas[1]
    lowercase = Stanza("x25519", x25519.args, x25519.body)
    assert identity.unwrap([lowercase]) is None


@pytest.mark.parametrize("body_size", [0, 1, 47, 48, 49, 96, 500])
def test_stanza_bodies_wrap_at_64_columns_and_round_trip(body_size):
    stanza = Stanza("example.com/t", ("arg",), os.urandom(body_size))
    header = encode_header([stanza], os.urandom(16))
    body_lines = header.split(b"\n")[2:-2]
    assert all(len(line) == 64 for line in body_lines[:-1]) and len(body_lines[-1]) < 64
    assert parse_header(header).stanzas == (stanza,)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "armored"),
        (b"PK\x03\x04 not an age file", "not an age file"),
        (b"age-encryption.org/v2\n-> X\n\n--- " + b"A" * 43 + b"\n", "unsupported version 'v2'"),
        (b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n", "no recipient stanzas"),
        (b"age-encryption.org/v1\n-> X\n\n", "before the '--- ' MAC line"),
        (b"age-encryption.org/v1\n-> X\n\n---  " + b"A" * 43 + b"\n", "invalid base64"),
    ],
)
def test_malformed_headers(identity, data, message):
    with pytest.raises(AgeHeaderError, match=message):
        AgeReader(io.BytesIO(data), [identity])


def test_header_size_is_capped(identity):
    line = b"-> example.com/big\n" + b"A" * 63 + b"\n"
    hostile = b"age-encryption.org/v1\n" + line * (MAX_HEADER_SIZE // len(line) + 100)
    with pytest.raises(AgeHeaderError, match="larger than"):
        AgeReader(io.BytesIO(hostile + b"--- x\n"), [identity])


class EndlessHeader(io.RawIOBase):
    """A hostile stream: a version line, then stanza lines forever."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = (b"age-encryption.org/v1\n" if self.served == 0 else b"") + b"-> x\n\n" * 1000
        count = min(len(buffer), len(chunk))
        buffer[:count] = chunk[:count]
        self.served += count
        return count


def test_endless_header_is_not_read_to_the_end(identity):
    stream = EndlessHeader()
    with pytest.raises(AgeHeaderError, match="larger than"):
        AgeReader(stream, [identity])
    assert stream.served < MAX_HEADER_SIZE + 10_000


def test_stanza_rejects_invalid_arguments():
    with pytest.raises(AgeHeaderError):
        Stanza("two words", (), b"")
    with pytest.raises(AgeHeaderError):
        Stanza("ok", ("",), b"")


# --- extensibility --------------------------------------------------------------------


class ToyRecipient:
    """A deliberately insecure recipient type, to show how new types plug in."""

    post_quantum = False

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def wrap(self, file_key: bytes) -> list[Stanza]:
        body = bytes(a ^ b for a, b in zip(file_key, self.secret))
        return [Stanza("example.com/toy", ("v1",), body)]


class ToyIdentity(ToyRecipient):
    def unwrap(self, stanzas):
        for stanza in stanzas:
            if stanza.type == "example.com/toy":
                return bytes(a ^ b for a, b in zip(stanza.body, self.secret))
        return None


def test_new_recipient_types_plug_in(identity):
    toy = ToyIdentity(os.urandom(16))
    ciphertext = encrypt_bytes(b"toy data", [ToyRecipient(toy.secret), identity.recipient()])
    assert decrypt_bytes(ciphertext, [toy]) == b"toy data"
    assert decrypt_bytes(ciphertext, [identity]) == b"toy data"


def test_post_quantum_and_classical_recipients_do_not_mix(identity):
    quantum = ToyRecipient(os.urandom(16))
    quantum.post_quantum = True
    with pytest.raises(AgeError, match="post-quantum"):
        encrypt_bytes(b"x", [quantum, identity.recipient()])
    with pytest.raises(AgeError, match="no recipients"):
        encrypt_bytes(b"x", [])


# --- header rewriting -----------------------------------------------------------------


def test_rewrite_header_rekeys_without_touching_the_payload(identity, tmp_path):
    new_identity = X25519Identity.generate()
    data = os.urandom(2 * CHUNK_SIZE + 10)
    (tmp_path / "old.age").write_bytes(encrypt_bytes(data, [identity.recipient()]))
    old_path, new_path = tmp_path / "old.age", tmp_path / "new.age"
    rewrite_header(old_path, new_path, [identity], [new_identity.recipient()])
    old, new = (tmp_path / "old.age").read_bytes(), (tmp_path / "new.age").read_bytes()
    assert old[read_header(io.BytesIO(old)).size :] == new[read_header(io.BytesIO(new)).size :]
    assert decrypt_bytes(new, [new_identity]) == data
    with pytest.raises(NoIdentityMatched):
        decrypt_bytes(new, [identity])
    rewrite_header(new_path, new_path, [new_identity], [identity.recipient()], verify_payload=False)
    assert decrypt_bytes(new_path.read_bytes(), [identity]) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.age", "old.age"]


def test_rewrite_header_refuses_a_damaged_payload(identity, three_and_a_half_chunks, tmp_path):
    _data, ciphertext = three_and_a_half_chunks
    (tmp_path / "bad.age").write_bytes(ciphertext[: chunk_start(ciphertext, 3)])
    bad, out = tmp_path / "bad.age", tmp_path / "out.age"
    with pytest.raises(AgePayloadError, match="not marked final"):
        rewrite_header(bad, out, [identity], [identity.recipient()])
    with pytest.raises(NoIdentityMatched):
        rewrite_header(bad, out, [X25519Identity.generate()], [identity.recipient()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.age"]


# --- C2SP test kit --------------------------------------------------------------------


@functools.cache
def load_testkit() -> dict[str, bytes]:
    archive = lzma.decompress(base64.b64decode(CCTV_AGE_TESTKIT_TAR_XZ_B64))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def pytest_generate_tests(metafunc):
    # A hook rather than a decorator: the vectors are defined at the end of the module.
    if "testkit_vector" in metafunc.fixturenames:
        metafunc.parametrize("testkit_vector", sorted(load_testkit()))


def parse_vector(content: bytes) -> tuple[dict[str, list[str]], bytes]:
    fields: dict[str, list[str]] = {}
    while True:
        line, content = content.split(b"\n", 1)
        if not line:
            break
        key, value = line.decode().split(": ", 1)
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        content = zlib.decompress(content)
    return fields, content


EXPECTED_ERRORS = {
    "header failure": AgeHeaderError,
    "HMAC failure": AgeHeaderError,
    "payload failure": AgePayloadError,
    "no match": NoIdentityMatched,
}


def test_testkit_is_embedded():
    assert len(load_testkit()) == 69


def test_c2sp_testkit_vector(testkit_vector):
    fields, age_file = parse_vector(load_testkit()[testkit_vector])
    # Only X25519 identities are supported; vectors without one use a fresh identity.
    x25519_keys = [v for v in fields.get("identity", []) if v.startswith("AGE-SECRET-KEY-1")]
    identities = [parse_identity(v) for v in x25519_keys] or [X25519Identity.generate()]
    expect = fields["expect"][0]
    if expect == "success":
        plaintext = decrypt_bytes(age_file, identities)
        assert hashlib.sha256(plaintext).hexdigest() == fields["payload"][0]
    else:
        with pytest.raises(EXPECTED_ERRORS[expect]) as raised:
            decrypt_bytes(age_file, identities)
        assert ("MAC mismatch" in str(raised.value)) == (expect == "HMAC failure")


# --- interoperability with the age CLI ------------------------------------------------

needs_age_cli = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None,
    reason="age CLI not installed (apt-get install age)",
)
INTEROP_SIZES = [0, 1000, 3 * CHUNK_SIZE + 17]


def run(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(args, input=stdin, capture_output=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def cli_key(tmp_path_factory) -> Path:
    key = tmp_path_factory.mktemp("cli") / "key.txt"
    run("age-keygen", "-o", str(key))
    return key


@needs_age_cli
def test_age_keygen_file_parses_and_matches_its_public_key(cli_key):
    (identity,) = parse_identity_file(cli_key.read_text())
    public_key = run("age-keygen", "-y", str(cli_key)).decode().strip()
    assert identity.recipient().to_string() == public_key


@needs_age_cli
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_our_file_and_our_identity_work_with_age_cli(tmp_path, size):
    identity = X25519Identity.generate()
    data = os.urandom(size)
    key = tmp_path / "ours.txt"
    key.write_text(f"# public key: {identity.recipient()}\n{identity.to_string()}\n")
    encrypted = tmp_path / "x.age"
    recipients = [X25519Identity.generate().recipient(), identity.recipient()]
    encrypted.write_bytes(encrypt_bytes(data, recipients))
    assert run("age", "-d", "-i", str(key), str(encrypted)) == data


@needs_age_cli
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_age_cli_files_decrypt_with_our_reader(cli_key, tmp_path, size):
    identities = parse_identity_file(cli_key.read_text())
    data = os.urandom(size)
    recipient = identities[0].recipient().to_string()
    other = X25519Identity.generate().recipient().to_string()
    to_recipient = run("age", "-r", recipient, "-r", other, stdin=data)
    to_identity = run("age", "-e", "-i", str(cli_key), stdin=data)
    for ciphertext in (to_recipient, to_identity):
        source = tmp_path / "cli.age"
        source.write_bytes(ciphertext)
        decrypt_file_verified(source, tmp_path / "out", identities)
        assert (tmp_path / "out").read_bytes() == data


@needs_age_cli
def test_rewritten_header_decrypts_with_age_cli(cli_key, identity, tmp_path):
    data = os.urandom(CHUNK_SIZE + 5)
    (tmp_path / "a.age").write_bytes(encrypt_bytes(data, [identity.recipient()]))
    new_recipient = parse_identity_file(cli_key.read_text())[0].recipient()
    rewrite_header(tmp_path / "a.age", tmp_path / "b.age", [identity], [new_recipient])
    assert run("age", "-d", "-i", str(cli_key), str(tmp_path / "b.age")) == data


@needs_age_cli
def test_age_cli_rejects_our_truncated_file(cli_key, tmp_path):
    recipient = parse_identity_file(cli_key.read_text())[0].recipient()
    ciphertext = encrypt_bytes(os.urandom(2 * CHUNK_SIZE + 1), [recipient])
    (tmp_path / "t.age").write_bytes(ciphertext[: chunk_start(ciphertext, 2)])
    with pytest.raises(subprocess.CalledProcessError):
        run("age", "-d", "-i", str(cli_key), str(tmp_path / "t.age"))


# The age vectors of the C2SP test kit (https://github.com/C2SP/CCTV, age/testdata,
# commit 1e3d2860d46e94e777e1b17c7a6f2436387e3ecc; 0BSD licence), limited to binary files
# usable with X25519 identities: tar, xz-compressed, base64-encoded.
CCTV_AGE_TESTKIT_TAR_XZ_B64 = """
/Td6WFoAAATm1rRGAgAhARwAAAAQz1jM4lf/Q+tdADKbSmgkA4fGSjkXct2WUN7WC+djpmYIFNZi
JFSxO9GufvD9bjSuB/omU5vmGuz77ahAogzXckPpwbSo7CoYTMueqJhe2XhLkRJORZf2Bxc0R54W
7Pn/K/DgdqSQqLDpoAr11pENPJaqudHGt6j4583PjY45TzMClNPA8f03Z1rGoNi3iC/0hsJ1FG/6
RlJVQfLBg54pDto/ijX0Cj9GirYpivFnDKMu/6Zs754a/VYJBVxtNP3nW/ONL52TeH4NvG0rbELE
+R/l7rfmnbielOMIjhTboiNuPaBZzRVfO0NK0XgAhn1ZkOm7dlkvjEaAI1DLujHZQqMgpNuXZABQ
gaaYDQ5T7faUdotaCl3Ubq8xrs3yaVgffkb0qVlaKmkZcVguKHNuydcVdfdst21k25bgOksUWnph
KMhDtO/OHtP0uQWpn5hdoSHiZXfOaoWiygGFHnYeVc9ox+XGIEWoLiQG/CwqIQYdPqzg/XYtI0n6
XEuYfEXVjAPxj4Wu6E9lU49fM7GlE/ELhYlTCzAzsefcYQq1PqjukwarMuCgEZk/k9JCAQNGqou4
OeidrvTSl6EsHWf0NdY9aTojue+cy2tT76QGD8ibhImYSRIuIDnOMimUYVEoJvTjMq7XPVzX2GzO
ChLT8208DIZJvNftrN+R8wGzaYgFfYd2mh4pzbpavHwQ5fZsnzQSwEU4ev9dVt59VG66Wt+6Bw5F
HxWyASR5rmVm53sWHsiXd75lCHVV2uVIXMtbNbwJgqulU32iWyXqdbpEYBD8G2QA7svBQ5DdPgw9
SUGMlEAaSFbJwQHSbZN5dIYk2qeHIH/k35y/Jy6ZgAKKHxXAwU99dghaxJThGMqqOXl355gMUiF5
kSNfqznPsek6njJkvwr9ohQstEk8zZ/flQTd03vJSosOudDWJ9daV+x2pn8Ul8AcSt7ufky7lIm7
VVlJSjfEDqwXvANq6oKT3zWxNWkYY7HN65r7Qfx5NlZr71/yKDkgjtI+8aznQQCZcPMpVGDu3EBy
SgrBkuzwcjb9u/k+Lg7Vn6Rx2t3Bi2jUqog74o8RgS5SoxEem3aL4bmEv3sXWg1UnoqCiSOEks7t
jm7ThmHfCucLo1NynWNi9fxjvg/RGSlo4sjCo9t/5Emsl8i2DIaWEVWS5Q9PIJyLD/kDZL1KDyRC
T3YTiD6wSYm88JejX8zF9Mc8P57jUG5bmjy101K4h5iPdLiMgx/VLgktu8+C8AbdaCIGGLTSP3xA
+P+0fC3oASGhQF5r8VW5Qyj2OX0nF8tG8X1IUjS/yURVEIZJY/y64QGr7U5aI8l6ES8AYdYXZJdY
O1uroY3+Jsbq8UjbqXGe1BNe88PkUBo79p13+91hoLFkwudyIk1OyskwV5NdZB7DO1iw5F1vys2p
O8op+XNm1bqyUSOHZnJJ2kpGuiqjfDUJ9QXT6qDByquUvbG0B0vldzKXETjevngStIiokilx/1yl
yvzGXJRTxjaD1hVxOVb10CRyGjtU+ASHxj92Tvn8eZzB0zyVMMgOnLkUrjLv1rikaJmG35xH/xer
n0tMqKdsm7Y8zMIZ7Pdi4LzUy7gFe1c1HxBEbnJWKjU0NLHvRSsCCVO+r9xy3Y/5nBPBvdaQcDeB
2fgK1B9QLT4kLPo6lGR34UOmxt/NAHW+DrxG+smurg2LfwKmuoe/Ba1KQ+mGlHDlf3BC1EkxNftb
MGY5w00nGSN4MJk8tov7zA9xC0qUUHDHUWYT5WTRdH3c6GkNzmtNdD1y0OR7Q1ZQ/4UvA7R9173I
1TBzYfN6XipWYfkr5PUosGhmFgkPCjETYgH9kcl6suMTFpSGAjawsdY+tytnRcMCvfj1tInjdcbq
4z+iGNPYIyx+M5UevxeK8olRbc2ujulp59Q8uhiqIL3yZSXV8dX85dXdiktlwywXWbscVRoO4jxn
igRXeEPyDtxW1mgjaaV4BCmitvYor9ziGhBPILhVexa/By09Tuvy7mbsO8ekfq+4s+F32yWoggSK
tmRunQHY4YjYeNUJa3UT1iloAO6Jb3aZkDZedXOdx1CRa15FyMMmpSgJyzkBMApU4Ma1iKJ/P5D7
ax9ISGiiWLTrfgVCM+0XO9kK8Zdu3GcI9i/jhfpj273NndTZrhtsF020QSTarJk7Wia6nmDDrz5v
Gb8UPrujpezrJiywjcxvdzM+DtbzwqdHdk7021rja+ycY4NaI3DIqtRCnFNmla3fe16Mo4NOynvh
KkQIU8k0pHqOMFdgMknN6RNBnS3wte/L00ku5OLcvwl2htAnmbR0misskU/WgQoY2eF2DdPck0rK
qK3djUEMFoGPe86aYHne935zLYq+Jk4Gdz/n/6eUd4jNpcDJCpjbg6wSV/oGldMCVA3Q6L3dDGx8
F/xwoYk8q3X/UcKDyKsK12QwxJ54EvAY2jZs9zIarWLGa/tExmo17COZhKI0loNAKzpq3oxhPdPF
UatZNKLcXUSnDvykWK9XV/nF3OJnapat7JelrmQymQ+BAw9ZrLx3z3MXldH9TPn4uP6OPG0Hzvuk
WMRMuY0ZnMMVp7V1xr2giCU0IYVVYZqmSpmvemoUvA3iI/1J9z2j1EJE7vHC0WJ+hwYX+qSgqA5/
y80JvrR+SfcjV06ROGJ+b7KMY0KkAvmr10Pl6xtntLaffPwLygXwZyUrV96svFnKgv5jWUUEx/3c
3jiZ7QFozrP4pBYgnYf4EwYIePzn7ZKzNHy8oH8+fCCiv7THAZN5EKCcwLjOOej5yt9J9bSYlagr
CXEl/pFtVsGyLgVU2j8C5rccBHGmMkj5AXL2c56jb9l0sQt4O0amD4x3BJUxuL3NhAm++pLdeRr3
Q8H6w++XjIVkuDKspHXv0OW2zRbkc4og2Qm+XS1+pPlo78H8uPeq/vIebyJtPJY2lNgcVY6cyn8r
Tu8KqVT5I0nN0GzcAja6JMmfci6MWt4qjIZ6Cmcy9lhstOCV2MyTWOCP35k1AnaG81mmvFV4hOJw
Ul4DQs9ze3ml1UaMRaAwyvbBPDaMk9lgRrv/9piJSgcliNd0SawNsW5RGjP0UZaXoepYM0/8zx9Z
K7bQyW1FYGY0Ux+TH45/zxYjijzpGM17BVBKK4yf2cLojwp0u8o5v3OJtctC3zuUv3u2rsGFQrTP
B4fM9hqANedmJgUFd4ivGokzgtUnK8H4O6eeUON8LBL3lAFnK5YPPDKS+0xPZ3M3PTq3LqyCC82S
66jLMjhjF/wisKZfZccQS59tTZBy+JzoynK+4EWBkOCZsrFJMd59rMIVoVfWmIFPPh6pQ9rpH4yA
+jBZAhH/U2j98/tDhyt9Ss3dJzLMoOIpnDxXk9LaVZnVmz4z9Rrepbyo0UH9f8GChh4NhVpCJm/B
zhFqYxyLqhmtiwLl8fpEPfcvwHUs6b0YcpJ+ItpByQvZkBhj9c6w3qfKdnGLp+mGkDo3dwOzwoYM
vhtJEylwPl87aiqFkNg7/O+SNw/0jEoN6Ydko31pOVJUDgwFWKFDMX+vqBmWHGddkotuJneyITCf
EvrSdEB+1oKpkhowKI4oxa1wl0OSQnpIGd7iFawpFfsq81PmiJPp2cR/VafNPzFmF4FNp1+EX+4h
EvXAKI0dYUDsSZzvewPefwC9URxpwm+pYCEGKcjXJEPzbS2k6BMYtBfM6Hv3UuBVk+eHgufJ8Dj6
dcpkLTQpKv6PJN3G8tEpZzWExVmvW0TsJsRH9Ya/fks91ycFNRbLnlbM21HL55bCd3sJfr6L+OWR
EDKpEssqNtDnFiSduhPVE1GGnx3l3qSLmSd/RhSHvT+6s10QL6E3KvEuBUUpxsy50vdAwpE+/7Xf
m2PzIlgS6n3UEk0y8GU7qBfViGLyHmAqaA46bbRH2vt5Q9fgC/fKK10sh+JCnwmi7RmSx6LNz89t
VoYrOobp+QgZaCl3U1FmWXhyvv/Ou1/vQzE/6afds/1//TiIPe6O7dOcTZ33ySwN+wuL4xFyHgF7
NbXVOm3F0N4E2/IPzWr4S/S55bkXi78+EqbTwpYz3jjghE+o4xxZ1Un4EaS87RDwcE6Kd0IVVDOs
0u5j323EWrFZLOMUZeldUmEYuWbpdINZnqfDgGnzh2BVLQeG1EwmEBkSg0EIeNQtewDA61BwEhFz
WWrOKbpEBZqPBS1FpdZP/gRIIH4ycU+HO7DGa19Ft8/nwWFG9/7L+TSwFJR7nCPXef18VFbJXfH4
vhN+5MCdxGNnHs0Htc297JFvDkDztJ4qC5Yyk4yjN2f8MfxjyO+b3jF5Zeah9y9+KQyuJU77L9IR
dy/WcFz2rldCAwoAarVwR7BPjp3Gbzp4/XInm4eULxPici7Pfwsdp4KajwF61ytmxVIFtUeDg1p7
Dhhjb3sl+0k9xU2HuuSdRbQjDM4ukb3a4BLDy53quCumbg/Ya7Y4bUIKUDeQUXNW/xxbWIINFGUL
ar4QBB9bFl7ZDWeRYWKc+KzcKOoUwFOMS2iqJbSIZJMEWmk20MqXXiJYrFbRuwL38RF8DuPYYLmm
hHGZC4FcAqoSGHWV5XAglEcbAYAl/cO72/W9bumTECamHLaTEPaXH1QMnhk0YayVkQPJYUShUnWv
nkWDOO2au3N51GRfgP3zHrpOF2HvT9HBipNWgT4TOr3oVMwfYzQ3MGaBdDWd1kbGmxoXDEx/8qBr
klQvCR7BvzGmP1WNJD2I2c02Pz/yn6d7T5DWGrTGZLUz6mCqKzeVcfHL658wpEnFQ3VyWqG+R279
Oo2ccmf3XSk45/neO26FauCa5romCnuZoiR5QkgQVMtC2oKA0HfgeGF1exTF9UbSkn8KzuJ7PAf/
vbQbDfyc3AKXi71bwzzcwTr0CtSg23S73MipWATIHnRFx0RQGZrdXVvONV6aqbVn8GJQ9GwyjbSG
EZ5IAWuH7UGKYtMIZQWhQr6BLGq9lyBMbV5W5ybY0xMt/V4/n084t96wOr4uDWtssCphKkauwfpu
uClapfVHRxLNybC8kPoEcTVvbTzLNhhiVA4hiKELS3YshQurZitZGyeLikY6XeJAvZovvPI0X9Et
DXfJlrcOyp6MQC6YYugHW843KRtuXGT6I7xtQcZ7JU/Ff+BUOVtErJ2bAasCjOq4Y2AN3i9rPWLv
N+nEcIZu6Rd/7xrQ6u3acHdivWjTQu2SMZ4RY4qI+i7drROZMerAn3iYvAByRdEs7+OzIfxzwLhc
os6pyUoUSYfbHBzdzUnXXJ56LlXNJ4FCwgbECfFvm6Sij+GYIR4BDXNsf03I3ovrDeiwWufXs46v
rd7Mqre9IFWP50QsmDQOBnz/EKOtUadoBs18ye7tt3ePuqQ2mMxMTi5VSwnEJPU7wI9nw6FymjXc
a0cBPLGXDGhjrdrCtldnpeQS0wfx4gvg4P8Uevwo34yJPprJV7j8e5zlYtI8kMHAju5m7vc5pJ/n
paLwLMm+fQWEf06QJF88H1Wb8rxoZFltcjGGwgkhF1toQIb7Q5bbR7Q0IaAl6fE5FkQSOqUuLxbu
tO74JUU2AFgx8G2JzjslQq8hNGriD1kiqEbV8tH8PnBt3Nc3fqOU8ShZ+o3UwQOkHHqghxgGCSCk
bQcGTJnpoVpIUi6t8svOqxQKScrIr8S6OEDERazBKmr9pSi8x0yqoMqAp5x8wbYXWvNWrz9yu35N
ZxWJ5fq0u0k4nTAexF9Ac/+NfwN6pvdt5U5XDUB9acAkxyYzTgv07y3dDLVXrdSx8rTxqmhn6A+B
8Gont5f0yHZrAZw7Rt/jnhTQx8mmz8us2yqpCIy4ItLsbXrXk3Bmknth//Wt+TghoXjQ4pcUHNMu
rzc0VGhr3Y5n9gk0xFSHxgZDOjgNWl2ySRkG+SF5+Zlqmty5/tD391AjmGM+9UUMVTIm+dq7RpEj
YeeELYLHjk3GqCnOZtnSxnvU1qLou95+bsAeQpoh0QqmgQ+TD2GSMo2thPAWLhEEI8F38l/+X2jn
RDzDIT0/3XU6of1ZwgoizVTD+EFe8dhkJNFxA8+vG0tjR5eLFQykAOHx5uEpt8QtUO8ry9ovZBt+
fw8fopnZhtuwvEXHF56PU+1bQkxC1q7oTW+zwCvvPJddfItzvOtb3F12kEkqKbIyzv/n+0sc5Bz8
t3JAbN5AVtTyb7J6nHxloYfuTMizD08ziDyBhEfp/VKEMjzCFFVTVBqD0eKuPdPglUhX4KzeT2Py
C46lHxJgnhDED4hABokJnuvf9xFmIRodGrNc+TGTzBgLKdNWrVZarxsWaD9e5NEiyXJOGr1ar7Rs
RK/b+bn0Q85hm7ERVMUX6U+NmwTrO8vokedvzFGPK+mxuZmSwfHdpdC8khR3xQ+rNQMKpfaNOQZA
uYwOZrd2TP+34L+zu7lAvdj/M0g0khQgJyzF2l3EhwWg5nXp6ju9xwOrr32D0ZpbgT2vc7owyZN3
qK7anlF94VJdZ5tiXiavktSbIE704bmJQnVNKYU7csfn+wdWJDKZw13gJdmgsDxKlMxkOWcD2O9z
huotu6emSzFInIWFW73mhLEWmAf2hmlWUya3luTEbiy6y9PV9yQz/BnmVX8dgJUNYZZnF3/pJbvM
e+JQfE1wUJHOAYRw48NUUnY3qkQBdxDCF5qKS1dUy8MbgRl1s7NCb8bqSJ8kUwPRiooOJ9n5t7Pf
1q8kemxWVHqxZVyYuYwGbsmmqO5uWWDmpivxeVDii6fwhNJIdwiZFyGDg4HrJqUlkrLBXq2G7LLw
aw7C5rcSbSqgL8PwsBEWiWzJN/GMzlKQpWB4mbrxnjSLUEvcxH1SLZ8EpAnM/7yos4q/PyVV529F
gbpIj72HGjgCok5LictgeP0MCi/AdQYMONyYLS+lCHkyG6ikCgP4iEkc/TuWyOAjje/P3qQlGd4v
HuExi1x4Y0EsCesbszBOBzOBBbwTGMd4iUvaTEQmOA9pvG/2Q7i+7BG9Wi/h+610Oxefp2HAkfG9
eYOOEPg7YxRpVEjzUhNoIlvwLIbYyeyZVE2y7GrOi0qKC14uF0vcq2lgi9Hi1M051zODOwG/sQo5
iVoQhHRy0dJCUy4cDeVnPkOoQqbBL2+V9rKzoZYDddFXRNYAiPUvqg0AFpwhtmVr7jv4W79Qn/Z6
NLIHCE+nTvU5i0J8Zm1aao5jN0BMebCdE22xYOHNzG5QYRx5K5rTG+1J7GGhX22AMnAzW8blwNl6
eIR1MFey7nCKwQBxEdqDeo8NmD/DujyJewe1xCspa5FE5ZfqG6IFDi+4t2lM4p8NO0b/qZR1Q75M
FchieVFJxKhn4tX8yDyRVhzb1gFThOw5t5kXpsnrbd2ja0RAFyE+TREB1L6P82LJLgd+1OTwAnyZ
+KqgrThpt49iJBHlqiFwgosT8+L0QcP88NB0v6Bo8WYq3QyPC0FCMcRxE8Muhd0l6c64c6Rx2IE/
No5mnYT4SJHtqtpZg0Qjb6aX6rEdkrmpacZA9v+uOTlLPCoz5zAcebhAZQcFp/JPnrmIE3XZ9/l4
yHXaQljnDyC4MrrWLsawBv69J7LfReQYf1XQ04tGt2oQG/MxGpp33e0UABPMygsWdGUv/GdSOhh5
xGXVbpR6f7ckLPHh5DdKSG0Man5e+TIw031/EP0wL5OEWQ5qyXIK3R9NvO8rYYly0DA9i6dxu9Iq
lbLNV4KVT6S3/mwbAX1n7+2RSA0/1367YjWxiGOnptdbZud7Ja7WHF17RNqv1bAj+dBepfvmtu5p
wDIJ5gfquptyDcZigt4/4Izy0oZbC8/v6rBImvegkYi39+Z4idEMZ5vlUX85jmJv2V1q34J/UzGz
GTlKCtOLvQlCCRPgr8U7OQT+/8CnbZVezmzueVdpkbKqPEhd/7/KJRE9EVzTsVmLu0uPFtAv8rTm
QLDCO9VbsVSdU9lD+QUWZpsDUAHFfnze1/Ij0ofXqthRjsAFEoQZWCxsMc7TZeOR3LfuX/9jxb6K
U7RMkbbUfGj4RRdeKthTSSoFCrxAR9KyvqePeapL7wkxAHuWLRVoF5PZEGLJdmTw8UD/e9WnyGC/
zIboOldpVS+z/rfI5c1lQ3m92e+PMMJtnsXe6wflZOJ4+Y9sD5FOZZptSkWvbp4m8/h2kf9fObSt
Oz7ZfZbT71VVx+fugKftH7z777CcZSMx5yv8fTCTZjCF4KPVplWrS7vbLsfXlHB4OxUvXXTGZoL5
JrKEICyfle5SjOcFMBRA/4sKIDY0zU7J4qzf10F5P0TrD4c5ZGto7aRkDH93YFVXnE9IS2WJX8hy
VnAWedSB1X6ogfy36Bm4vsXa6TqnSmejPXoGkhuFraT0Wj3wnoG5UmpAk3zplF+/59BcPdo9fAYH
ouDlfasot9jQt36cq79/Ty6wtQA1Zmbub1ODRfUquI1Y3u+NtxLKiRPrUiT23PMsTOG4V+pbuJbe
ekxAu2ElBzOkwJ1W0yiQCScmjypi64esc/AWFWjRfTncahqMSKMypng5GvZPieU6oOZzLvopqn5H
gUYuofg4yt/4OBRGydkT5FlgJlr8EWRHUM/3jt44vTWhI8KTwsrJEr72GYnDoTVif7iepBiDoR64
sp9SPrYTz6PvsYqM55q9XhdckzXp2+DnEkrKzI+8Vg3Rce7/tfyopHwTSUPY1orlSWVI8MUd/0mm
s7HUMkcxpXWuyMSXGEaI/PNSprxsggdAGuPWmPKGMtlF/lFktWhFq8ow2kY5P+szup7A5Y5wNLAp
nqXrfwjsPv1PgZ1DGM2a8GAqsYjcRGMFjxFjdJtZQGihrleTPCFY3hSUD1qw0rKYccs5vO00XJcr
hUtAIcG4Cnaqi3Ydag+QGtVkN7Y+s0BcaUKcZ6ktwKs+j5Kj+DfRtqRy2JGiBKHBABuKbc3JgizP
4aO9dzfctgj6kEbO9Pp1QFesu6IceK0ej6I/UFGKF5l1gT6e3DShopuHIX2vH4rPJ6pDifmXtmek
aXAAyLNuqW3KoY3DZgGdxvOt1iZBQNhQ5Y4kA5sE7gHIceac03+0E2EM6wKhIJfMWsCjMoidvIRr
YcmKZHwJRzEMJVpNVSJ3Xs+SNQgPQoKPPLus3TUVK3ynwz9HINeE2lbrVJLjy5aq/vyYxryxLOhl
JlJojz13/57iZ9HfNbQ3S0imvxeH+DMecMgWo4k7/8Wz0i6iWjt83AFLV20ls0g10F2Btxo3WffG
h8MEG5COFlBVNq8puHj7zXjMH5F3jYMboU3o9+zJ/1S188TRy/oAED4zySjyDkv64OkMU9O4EQAS
yMKfxcBu1S/M18aTf2dg/9Ccnl9W8WaRY7D0Ni9lG8cUkjuZryO0oi3v9SMg+8Vwtrx4eIt3tglX
nudMNAYP6WeV9VytzSj+DVcVFlY6pJGJqKscIFkSHBzleVt5KvEl0MJv75C/Mur9wgC9fYZbcSvh
UPCxz3kPpPtmG2mhCZ7cbQaAyQknvmUXV2MMoY+qgUUieP0R0IRoE15Rbr1hKU2HOJEz36dNfq4Y
bYPQ3PsbHzOgSlxsvM+bW9muDpNegM7QyrjPI9ImLEkwrmdavMermZpSDykNe0xSPIsp5OJkm9Y8
6spSByiz6CkcKf8+oWCFH/W0ue+7K8JHjYKt+9tX6CObF6sD/NYV8Js/ekuB3xjl/PlbK+kH5lKl
ahx8OHhOCqOUxXv+JSxEyO0zH5jQ/0Y2SgatTJEBPyQz/QKZizgpqyFo61+zsIYF24DtZXDXHuy5
hHPE1Z03BZkgaKk0eZwBniMSp3x5l23Ct16VOLDoWsBCYnkiogmbZqzgPJxNd8FpTAMCJ/2D7Quz
E9jWSD8wQGncL1/JL1jEhqiOwaTi0+ZxVOixM2dRg6oUNdCYAV4iFhKz17h7YlBtIkP66el3HYjf
Dwv94doTZli4yLoWnjJM+4GBcTlhN703pnYFuBS/KHrWnzNYz+JuW+0hc5+EOaYrWSArvWO4GQ3P
2Iogw+tYRQiXDN72J11CeijWiK6Zx54Ulad+6CD+pmEnm24hlqF9dCrnpWBQBZSoixsdsxluk1wc
e7+0b1/e83AyDK3v2lwun+ubLltdtlUEhwU4l1LDM9RjNgx4pbuS1ZU1ZYz3Ldx5/mVsxCefkzJG
SmkDapNxgwo7kRyzJvnPvP4GeRVn0KYL4h+WKgDhQ4lI7H+6GrxnwQZcYwfgz9bSUT5ba+r3duwI
OT1XUQWQr6X4BX1mSKtpaycd3/M52bsFY/D5RRe9AF1IhXyNvp37AnmXDBGq5GNw+g/G4yQj7+88
Cy+7mLMrt7oeDOQZGi75KbijHX7fIXhxIbv7dr80bIizb+MX6rfodIhnRAPmHP93CZhcWTpUlPmY
Sw4MkuMg3Dz0iLr9mS4ROCPWG6LI09Rz6Kmk8HQQHPzw42uyno5tEc0TNkKGbIzQw4OCeOHv7tHx
KQQe9u+h2gfqRnDicFpG4jBoVQmCZwS5y89A8sIZJdnrwpjWOTQdce2pTlM4uf4/aLsIKSA0x1im
4vs2Wc1Hi05X1FDCso20vDXgdJtHoihIRkHLQyYHqgGgdPqq0DonqdOdSouCKar7R6GO2R5eD0di
+tPWgVdERz5pzLp6O5RCY/DKnUzzuC75OoLBzjNJxNzorGCwbjZWMjQWGql/6p+ivATMRUxkJBLG
lvPx5UgAiJgu6fpEBAyK9vr6uXTtkVwTu5Jcy9V18GV2khu5Lq2jKwOrQQXgTKgb1VId478ZCg/3
ayqDeYfpZUQ03vtQTLQsSsxXSyFHznm/RwNrkll/7qqrtrf64lTJ7D7fWmsbZRbrlNCHzA0RcBp+
7sKIIheA0kuZLwfpbqfLgqWUbtZoZSt1NlUD1cunanxgABYixW/GBwHrFFT0tgq6jV0JhRiL8q/i
YFrFeAHqxcofHcn6L+3dhI8soZy+iiNaGmMbTAZSLBkoTFgu/RNxwnhVultCQEQiD1+dR/iqNAc5
PZ7IRRn7LEhVxJiRvlmtvqY/uF5rglbipKyevkxNsiOFOy7pYuPfbG01JyDVIE35cEehlHY26Hk1
CZiFN/JUJB54P5GrOuys5Y6Jt2espoguCfImzjvTbi58/u5muB4vaRa2wyu8Z1db/mNkg42XjN5h
1xEsbNgi7d/Aj9UbFiezVNrsYWJgnq7hRxjvHGtT1WNYBEcQsiYE+6jvkg3vrH0iDGZ/dgmegmMg
X08K0DcwSUp58FiG7j9Y93KHjI1FEzuZ7qMlCKpvt8Lb3oJDlwTsuQuf2p+Vw0VsyLyNHY8eGY7U
WoQWFrP/fW1dYWfdUkX5mcUMGTtUQQt4sOgxGi3jIJq/eHIlNRF9WMManN9v4x0dOHYTyizSeeep
ZTutRvZv45uyQqg7BbXAGZSeXKY4XMnhsC9dIApDU8saFqLlSs6hS577VNfzMhgGoPXUvm0v8pmV
yAGxgYo1WMx4JXtN03FdzWRyBchwGKZES2/ctfHl+yjSnXAUyLrCJ1klyWMlokLoLRaFERQx87bp
47/1uwEKXDnYO3Tt2r3g+SLJsSFKfYJz+FyYtD87OsSmIqqWlVcPHy1U7sgumirCMTEdVGb7lZ/l
a/pZECNy29vl+xDAp11gEGDCMcyf45EU+KhTZB485RjbnwewgqcmX8KU6L5kAiP/mBYujKyMMmsU
4xl2PvvcyEaYQSnKiW2PudCle6A42P7e0mvgrTE46em5wf4jHakSTBFIReTNvJpGQL/v9DIKmw9r
ZPEq0w1v5+qVveSQABIH3DFfBE7o6RhXF8UZ4OKk1JLUP/lm9CskyhreY+MBZ4bbaQSUA2FmlrGs
zzIyHjRK9pJFkIKCiHFRvl6+ohKoKBVJ2yvQX53SmxWmI27pnd9NvO33dELksKcvhYPaQICwaV3U
HUeW9D0b3IB+4F1PP1SelygxHuyAEuAg2HSs/2F7MuKeVVNGH+Tno38PNXDrPlJWKbqH1cWaTjeG
yY1EWgiK9YlebM+5Y3yYw3js497nFtt0mAwLUVZzM7qDPK3wi3UO/OBdKrCdIuUzTTC8YK8hSLNI
mj5xmvJ1/e+snTHmC7MPNoKq2k1QwXLanMRL3D9kJ+UMJo5NwMahy6Lca4hNSRDnOq7ODZlTdcA2
UYd3WXVPsRHOvmbVM/BMnpvUtep14upJzbhfySHHC+YLlmEcLAhxPaUTVEfuysol03qTmlp/OWA8
VAlYXhrR+OuOOtvkIBBIVuptBD4VZOuvaZvN8NXcYpX0LLXPJHWK5a70baEqZoJuVSh4UnJt+ZQj
xPY1fo0znjpTfDTHv8qNkfDnlFcmTqfK0QFxc9vFEs7u+CnJ+VIe5YYhcIFx2GfoV3DtU5gOZLHu
9ZNcQz+nvxAHFgfWqsu6VFDPiqi9UgRz22W31PJ3ZFjry5TUcilnt69BFteRyOeWGgaQ4ptjVr1L
fEPi8bndjNVjxAEWJyBmlesU02jD6mpgOauAEcHqmsWGjean3Qsilt3RwFuXVorQd5KJTTOJddH3
zEJ3Q9gK53Ls0tw8H15UDSj4kEJVQ/qP0UkK/cGfFI+vkJd11RuKT0jWCgfOjrhwD7alLWENuvEm
K2nuvub8msJRFXK+J5MVmvksxkWSQRvyDZ4csUF1Liy8FlHg28AESQ4KsVaLOi6rUTadjEvjAgBi
nI8+INkdqzqkH7MXO0Vsik+WSAa3vHB2RWvmWyCDSKZAUQ4O465yBTlSYH7pbdoxE3rYXMyC0Sra
lFAxjVv1uXE+xnvBw4yCYnDAB5INYBjphgbhN5824VbEvQmapeJrVi9SFYXKtGq1mdyIEW0f55ma
rChdbrnPhnPMSM8hKWDs0qTuME6/t6D2Zit5nrBfxrZX4f0LZNcinCy/uzS4+nQ57jC+msIue9MH
pAqsT4ouXz/0Ai4syoUkA8JWBQOLPlFizIwUzO5axORKDGkhzfzpGnKCFHnXyDuKXKfKwmTbryNn
42hW1hvu4XWA0z1djUdh/FP4SHPx2jog5nJ86R7e85PXeQXI9V/Nnj5R8ngq39ixx52RN6W1O+v5
73xoP5TOOQq0M/3RIswMOvSpwLk6VL+IUA/99HItELqbzyKzdKyKIX5BHCckThgWzuc3QpwOXAd6
BEblZb4fCU89HCgupH7+cTHWYvlvtgC8zaxvUQfPxSsrthsooK6ba7cevUNch55rzBRtaV/iaIn9
tnng0xre2wyEkNfYpJlrqNki+Fr52QvGDPLV2yhWh89mjAlGFB/mAR6FO48nEfGwR/wnQzHiM7P3
xGHvc0gLq5aEKxOqkZqNHQp35JQhFx1uCuKoydNC4bWePY+ex0Rc8A0fRURJQi3Bi7jAutQXJmQ1
uoY8vPs+XvbH+JHPyTERVYfvNs25r/Z+/xdgdmaNNc1HRtzB33fYmU6O4WjiJTe/MbBjp0a2N6s9
n1H2zm6mcGoS/3BZscBgvVQ0STIPvF1l2SaggvikeFcNYb393ra0P/yOM8L4labyCXmWfesuXjHV
tPZtQNILvD/4XIQ2fwn8iuxALpuK9/rnyDs1ko25xErMUTOm1crnlaCQ4IxLiSyU7NJA9sRZLz+5
JJXpijn3WCpc6XTDaAUS6iWCl9GGtlN7+w5G4WrU4rWirpPaQ7e1/C4WPVUibKJ1oPwltosP22WZ
38P+AOxlYbVCRsLT3KpLNLj9qIWrF3wEInD2NxfWy0meE8yg5G+aSfepruhEWeVMOm2MPk46urws
8tnMkEF1gdLzUon8+z8zG53//+zausQ+yAQz9uWSvKoVIlPtVXe5RmSM4uWFtaxfu0BmzlvjIcaY
lJSQbYa8fd3Ow5GbnhxEVR+cM5ktsXRGe46DftW9OETYY2t/t2Z3NQfqBk5uuL9oWJwnuiC1NEiH
pz6QrUrhfEv1lXu01brmKAtPUfiI7UAesKiM6CtjlUwAIhWA6bz7lM65/RMxDoMP7+l5gClRKars
wW3mfeTSRLppP5DTEeQJUIaD1FggYPglR4rLlLk8tOa+luM7YT+9L+LuAgQlC64GdYrHgp+0oPR7
ZsG2E9fI8ONNHCfngk7SMnYD1IPlMP6+PWN2G9TIwENUNB9EUVZGXp+bsJixOs+Olq+Wfbu7MYuW
prwLpER/rJm2eeCgIkO0xCUM/hXu7VMBr0xntPqPrW5r/Ze0lUOSXnWknHbokKhRV3so1RvuuBs2
BS/75jwlpczDuj6+PSkxefEGF2/nMil5zaf5qK0k9VJY84N9W69YuPMzW+VPTJ5AeK4jcGHsv4zN
PoJnZZrWbLM2COjLgT4bNE9AGO2YbfY2IWsgA6f5rV2QFclnCQgk8WSwn4MVLJsPzy2OnzBrzg9p
LTe3NYZ8Ma5cPtcQZMD9728kuU4cYkeNu6+DcBrrx6hOMEwdAWymIOFAlBQ9+4wp8o7c8S6A6PS8
ti2iWiL18tZRFwzmv8G969Zygw/aS8sjr5ekpbLUScih8RIYEMVG84RM6+9y6mTlFTE9qCq958Gf
hPYeGKztiScZBmfN54TKxNxjUpv2a5RehmqHYG5LME6jCQ7TeGulde7vV//Vdi/9UPSGKcACkZ8o
xozmtJkUh1jPaIwOshwxJcY4glsmv8jQBDYupWkI/WqlKnDYHLCOXxne0J/xe1dlKtE0tihZrMjj
ojRAOs7ckBumzYFXmY1VIyGApOvkWMNePOxcanXi8G97wJgp2p+fzJgET8CVa8wmmZclLkM5X70F
x3sCw+kKdOMBvTBIAjg1LlxLyhxIZ6reIBUIl7qeKIXhe9LFiaDk0WFKxOVvwEf/+U8Lg83JizLU
Yh/wzSk7SKnXDB/jn5A2TqXbc9sziD9ln22Dx84DijJ8WuYEg/QtlW7wAhgq6XIpV6Z4RRFONeNZ
08rt3bmszUJyml5TLWGMZsAozjegSWBpUy447nsxx/361XCCVrrQFya1r0Gx5FccjqHbgC5yoiOs
oz04SUdIJee9kY5rAueHqMek9ztSK8E6d6QwLx1E3KbFUmLECQzTyRijSlyrLjSNZYN6REcHiyLW
zceHjT9UOzzxhUCykrBUwWTr8OIlEnE/uybCGODfs1pS2mnfvapQVJf4vF/s0HZEctAg5Z82eqyx
muEMI5aeBHjNrM0HlKS6fuWr7FcF+TUOcPQL+bcmWpQWkEZbx9scQoTFwoUoXYC5q2wEdm3Xc1wR
zyXxPiXJrhgPTv5FHAJpGx0B5AqZLhHlY3GYTHQ8uNWxFbw5nvuEaohoMCV9p26/zTnH/8Ov73YU
UWpPdsgafV6Lu9nvAMoOOW1pW5XTpHcb+h+0ifNQl084rDjha2hzNOHmhiXPBjMiWhYqiHXV1Ns6
JGeI/G6+R2cdo7tOSSPrBm7j5IPijcKw/3o7Hn6iGEuyiVOJrFDxgg8Zoi1QRSQuupH1QmsVYlPd
MmFXnEF9JWlEM0+0aN3wJYEnpo+DGSSM8rhSPRwWQYejv8eeCaiG9w+6UMk0R6STGlrnsGUJXMyJ
HZbGgU7l4FniNtO+P2LGMhWf+SqbKT0ukxOiYjm9frRmzZOVGL6iqthyPTIWHtMIFkv28TXT89fM
9RG9HZyCSKwvSGGGmOhcJC1qM4qGBu/DOCrJbdqc6uGLVEHYPOZ3bUPUUcJxtj7k6YK2vkabY0Ob
olILRcsjxhI8KjRfEfyv4JU8Z73XpLkJsvSdhS/V3UknBMxpPUyNxkBUGEiVy7M6mUuoCeOUNzBt
4nWDsIvme9pYB1Zv9fK27LMdKYxQ7eakiTvf26ovK/XqDvPykTj8B5HHeWYQI0Mii/NlewMkVYR8
lwbwn36NTkBU1fWgx+hIgE9QkBe8MVtJmCMZaUcKkrxFszoWcPMB5FaMJIF6LD+v+c9LBy80uRBz
4DUw+y/5zlUbHK4+kzxmVJQCclBdf4rc19oNSEplIwvVFQfoPXO6GTpWS+COH/5Djb2LsckYx8fn
LIA4hhItmX/NInkCwbUwrnbVQE7S8NLtUzWQYDXAGAq0XdpOyo+JhLaSxbN1bd4IXnjMlKTngzet
mTNwY1UzZtsFUO64UiX6uvNeBHWKFdHG9aV5j64zUJrcLoT9W21YHuuG8lQxlQvYAZMKMLVUt1JM
517vuP8DME9qI6pQ+1uXA5SmvUMrr5AjB+ukeuCBDAkE6tgPglCgbabUWpY/zLD0EdDA3FbIUK/j
wuGavSPHPewqZmRHIuT5YYITCA7NQUj/hEI7j7OTHHJGNLhE1fWaeN4ksKOwnRO2fceBNdl2t22B
QI4DJEKyIPm5OfXZgK5Do1ilxH7CShnHekgTVGddCs4YI5gZKFQxPp1dnIlGKCpB37F1yzQpgCq4
0tYmXouon7MCvyvp3g2VnnBFkSKn6nWAszKC5aSeIUsPu9FWhBistIcl0vUr+DtAHTt0hYAbNXSJ
Esyuigh3hznYPIyXgTdPi8FsUET6qGYdRK6cFu8uZKZyE5935DunZwjyysgU/ACwzGdSmk594p9M
0E8tRaZjBykX3eiwMcDRjFVhhMXC4/d+e8KWXfwbVsaUmPB8FrpKBxxO4R/3qjeLCD8XC1dEJkwH
dZ9+GZuLjbuRCCYMgX+Q7NOi4UxfU8GUq9FIoSml5xWm4FDcfxBjZDtVHMn0CpQ9ORUoU1Yo+hFE
zgwZ8f35qLqT0pqf6skFpdcLBpOJQEf3l8aNnVMv6mbJvHCwcNGakjk/XG7m79Jo32rNf2F1brvp
kLoQh7OCa26PS2E1oETpDbkl0ULjZ+fKEGRzz32nvcmH+x6EUz+0sGdqfhqWRLBRd70L16krLcZQ
7y0xqJaWjyslfcz4w/Kc5/s4Vh0El/nqQmeMM9CT441zFWmxHzQKQkeC1ar0lvw10UO/J6jXF+P5
RA+BaCYF3PmwqcdaSAkJrt/8lGJtMr7pIlWtd8tuDvoFHYL7cvfDkSXaqPEoK+0w2CdGAI1rWiZR
lAjMlWUhJm0XNqsBugK0VWBU5ToGoapEwdzurYdPEvdA83RtHfBIHYRFS2JMzsBJEoImWjFxvVHe
nUSAjt6m2uMEkt5j6PywOaHA1wMFDZjnUhaZAEIg80ycJb7Ikpl5Qisy9JC2C6BF18DmcJAINJtD
BLE8T6mBAm/KsfVLuAbQ1fix9IPAkkL/AEkxrory2RtCxBwzo0Fmv/Oq9Jk+1/sQYrm69kiElRTH
SmbEO2PloFuRRKO6WuEFmeHHcE5vLb3JCBcS0lBpsb2Zy/Q034qh0jMUSQp3dEIVThZ7sSAGqPt1
xvZdiG9gyZeZ7OjVyv3PNiulOfQC9Du/vZ6yFWYdhmp3fPFiZ2csGsNLgyn4Wct0yue9gVu3AKF2
SdSqMG/wfXkFCGBBqJpZsShpxZZhgyX8se1oK8BWxRLuujRLIWZtvIfWDLtp3GEv/izm+uNpgcru
prd/o6mwj5ZIpWxoWojSuFam3wjvxib2hm0FZKW/h7EEulj+L+EhK2r0/eLpXxitiqsSduOkdpn6
kFRRjbdPmqJGYInUnVo/wuqP+iK3dMrTkh32bf/GvEti4tfxLpDc/ePIovrisiXURk8z6vnI3viF
vlf3FD32n+beMirk4UDGJxMf38mHgd+h8HUGxZEXvYEnAAqLptiTOj+kCplLxoSAlVbAm4m2feUi
g0zIw/3VUL36DQV7Cc6mlKW/sLG5qPAwHcgHg0Zh+5qF9+x8NZCEwyN9qwsbSSdvKkymKt44T5VD
L9xfSvtdRiEtNlBKd1BgoUeHzZlQ5F3Sq2/oQNz7+vcKgwODrsf4ImJKZGtTXfs4pAZa47BR6ZXF
uGYjxNe408yAimMnj/oOA6u2r0s6tLUZdCzKyHjYutgRHOdIyFoDoVMbIdmWSy+3T3PvB1JksoNM
IF8UIy8p8Q9Wvd6jA3rN0Gs9hG6I30g5oNCQ8PzzLsgSUB49+bKnlWSeMHI4py2u18xTjeAvlcrE
xh0EgWiw06xgYA5cECy0rbFdcnAbiIERXDCoSnCoFOGzEWI0PVNouD4K++EC2tOhEpKdDVo4gqDg
IZQGhMU0iWLVPrQ5d0pjwRhB+O7vsMkpfIXs3mnmcJC1HX9yu8YgFMVDrFv2Jki5dFkiKzGdqaV/
Zomd+ug5lvsFotqxlCKxLEkjszWSBeGM2nu7uoIZ6BEbmR6wwmbVUAe0u8s9p+UQCjrnjfAiEQsF
lmMFvwdCjtI8n5I6rpj2if6OWBJnrNKZdwCJ1vpB4g8WJIvWPTvRLFIsnyPoPoiHjhs4oaQBUHj1
tSeWYdd9zDEmEHcOGW8g701eQh5zSMkhEGPK5AoQeF9QU2qGvSw63NGKfYfHdhcuAA0md93pum6k
R4fGH7B3cPrezDYOVo6mZFL1nS9QbL64eHHk0HNoYS74hmgh2VjZa60EI4f5ixQN7fwD86yQu3Hw
zKCRcSgUf9vsOjJkwQxT79PzDq8fuZZsKY9bydQatGYzEc+d/HMN533+j8g+qmAG2vx7iOVsQIYR
nZ7EwPJQ0UnsCPCp6BpsRoqCNe4ocSr8uxJrCxIM2JMIuBxQzpqmZJnxtkiec1Ht9Kyjw/2xq32a
yPzDdedfH9y+/x3MmT+sD4x7VwgnCwjF2fKO0MFUsiVDdOCDllI5mk2XLvpQIJp1kcxTLusc9zpO
wG9w9ok8P2XwiRVzfYYvyubp8Oah9HIG+A/yxzAkvxW9fmxewDUcSV2dc7B11pR7rbXtYlgt3eh3
6pryMf4+7VWKT+5x08Hl2wBxOjx/ek93UxcXTEJZrhn+z2xjiyxL3WBEPqvzHxC2KZm5muvdBlRm
bNXxQ0N8Bp5rCqiZ8CyaS8u4/645N9qWN2j0zU3Y4Aw0rshvs7AAqs34MxD2sTjRy+wCn54uqBdJ
HJXC3jNYLWFeok/81cx9mTyF7wvh8EGa1Hly5UMyyH9tgh73NlpEOVYvGUMbc4+OqU6fiHqKJ/TT
YZir5L7gzxc8Yw/NIDexmTRzI4zjpo7pZ6/xPC1KfBia8K8yH497L01wgjc/5HcK8AsWw6zNLDHE
AXmYaBuDiQuI1Z/ztocpIINC8r/Lup2UUnuJWcJyBANcbjTK0v1VOgkgSqxwYPVXWxsKgEgGalnE
Gd5PZNwG6b9Y9UufCNhLkfmp29Xg1BsdoFMoKbxXrSJrr4CdhZteKzy3//21nyKBw1FNSJ7NAnM+
u2EGIi/+dDBEmswzVfRAYkveksF/QvTB2bhHkwx9A8MxdVEFBDFyKSjDotQoIzMe/p1g6L385shT
3asp4yFD/c+3ZvSs+RvIwFWssIHkVNoJxf01HhkZw7+l90P2dhmpDloo7GxGrU33bCPP/CX8LfEX
Ug8MnvdoCXWcPi0m2txcSMCWq0j79ZUo5PJZCJG6ocX2BLdUw1Mjx0jr6fYDK5krtMq8EIpDs+YY
tVJxcuvRWHhizwYcYJ8paaMnCQYzn3UhgxqJ2G2JFg+3VHNnADEXsgahgmjEfZ4jkVAONDevytb1
Cbp+I5JDsYQvAJzFhMhiOYHKzXj4ZeZ/Um5+Fb7gup8oZ+umZ96zmkp8aaK+c9y1nQwF+Hynr1as
lwg3W1AEjR7ZI9SXKEkch4Oh5A0cIN7B/aAZGUbPZn9lsEqMUO6LVG74hOYB8/ROTi3Mc4RT94G6
bTGzKECxynZ8BR/AcVz7Ux5BkwCoMuv/A8iKVEpBaAGZpMQi61UBWwHpNdoR8eOtdMAaDUPdI8Ko
6OXVCKpNCfcNF/A+mmj/udc7by8n4/cIzk0b2PREodJCLx0WiNIuYDwh1q4llsEJKoGPzUqaneEW
fdEFOzkx9DNWtO4PB7WL9/ZpwZsUhqNKZGG9Kjba1m/ARcUGbNNqxwQ9yJOfHoexO09cP5B31Obj
fS1Syh/3ClZiqgX4HvX2HkPAHdgE1R5TyEGvHLC7SFaItLG1JApHUknWgL3F2vRVSf0p1cAPA10A
bZu99FcW3TY2sadL33VPecZPqeDICT/uvAqDFwlia9SSREVo7XI22kqCThVk9AlBVMZEi3EotR3L
RA576az81fFQif2EFZU7rFlUt4avbaV1HwHl1sVuAgDBgKR4vj/BQpjRpRB3CWuN9CJmw2O7ttrA
KG/fPheMMjYCHl53tbRcO7wKKUOlGMWY5RURg2mzUm0EZRvkJA2YRTRmQ36h9pablqP59M2+wQON
7MglFvYyIXm8TjilumIGDKdNaE2qhxeEpMAxAwDV+edwG1jq3z7V+CIV/yGqsvKIthEKR8T72le+
mytIu1o6JMrWO1NfA+B0FMLa0Q4C/fs1X8uI24Oa2N7n0RQSkghj9+eJxPrXqYh6M4wEXaGX9WCL
6NOM5cHU+8mVwGZYHXCDugMawj7/2e9lHyXdZzuQhQbPprpGvpgpPZ6O1/WgEbdNLwF1ypZNMOBO
3zvz4eixNNXk9pcuS+5rlTDVC1P8kBjvpcV2Dw1oN8WstE9PZajdoxRASQXmr1Ec125ymF3OtwE0
hB/BNXGuZiO0AxeYpeWq+wqh3dvi+0eR7iK1H9sMu31XX0GF7+QtGwZw8KR7kxeIMCPU7/h0mly+
22fvvBtIsQYu1BDF1J4FIfLD+KIhacEAcHnrxdFP0ZRHJn6MkuTJOLlvrDoWnpy3O6fZ3ZGucyzr
NX0apuGujXCE4z0MDK8cV9BAkAusR8FwLwz5k+r950O8f5pVgSgkJ0/4dnyizyqaVk0CUbUMbIRV
4f98HzwXJNI+laqqzYq7KfKz+cofQAimC5ifZ6DqNFSKyKw6dLAn7oYOknpmNiewhvWcBPpou6rX
vhMgPhOLbCLKDSkt3EtOsCbmq5Z8ixbk1bGBxIc9omeqSfQ4VdENICjQrdPO5GqKuZe04LJoGLpH
f46ES5VzA1a1mAnFUoQKrl8YmPqKb3QbApz+CWT6vpvQjDBv9zZcGntlZFRAqrnDYeYBlUMxuvRp
ELucSDmNcfOk7kFhQlevvI5aHqZ35p6VrbJf1FFdf/C8u2KGlM13KT+N8OmUY4A4Tc8rCuyiO5cP
EU4pAm+qr37lSsiSDBhaIZxDcdVuLlYoIHODE+YnnFyAJ7GGQ2CLLQFq8PtKFLyHNLAmr7WIwCe2
wEjW9GAW2UShf8dPltV5DJkQUZvMCxrGipTnf+obiBWu5tvQzieowc/g+1Bodp+vMcqrpIsXSuZb
W3LfBwxKLLQPUTD/m4zzn2C8xNcW0i08ij6UToU+XJDXCI7SXnYxfsApwXrTSuHwEnLl/2RmcnEK
Hp2BIHZyWk3+r7DkfMyG8aZUs7Rqqt9O/R+UxaWB4KdeT28J+wlm8Vr8Voj9Rryt+ZJe++wP9PVo
Jyovk0HFmFliUklkLbFZ09vTvlhzkPV5qNJyedNsSQQPcUOT2RH6VbMx51mllKf4JErKhv80729u
jpGC5yCZyDoUN2HW6Jw5svyYg3rW12crfExPCuKEk86z0biXx9oPVajIrhso/ogmeTIjbV2fVk9g
Cd0c71pn+ooCAQiDb+cqYg0kYYhPmGh6A9PmQw+kCMU9zC4XaqfkHbMB8Rb95tpfJ/GdKM4AqOZC
YQy6xPiyGdkvzF+x28ZcZxgthUILsCGIhhdrttq7cxL45rwUIQH2YWogexooDApGhm3kPPwa6pA2
YkiLDjpucX+zG+iGYpLRlzJotnrFAFU2sIWmsBfKLprVAYZMrx0jrekUe0/EFuZ/9fVsOosNyCkR
KM8dvuLMGj3dv0XOPeyyAXYcvm2Ia8TWyXYQ06wuBzYe1xnKkII+V00/HGIw5WOBd1ycvdPMX6pb
9hLmdBt+iZrSJ8VQbK/I0EWpRAH9FAB4LTYstQ/S+7OnoeUoD6OWDrxb0iJS50RDOXMpYm/qzaTi
0dDqcyHcOrQvpzgkpb10G49D+Tw6RWR+qsvBdG055g0jzU9Nq2GR6Hu+X7q7Xl70B2qaGhbM7o8B
zPGmX2MkEBmtSCLotxb8V3H3uCnULdvh4e6g6ecTLmVFrn9YfJDzU5teP5cKxIBBp5XmafhdUUKJ
yCa9zadjZySDD6xWKWaE+CQIxtkJPXB1nbETKvFlWmNQQeO6Jzg7UngPoj5SaNNIrPKjE8Gn7YYr
s5r/1rwz3GQ8LBTMDU7yqspHNkgO2FgnJ4yIZ07pbzg97tg5zc+YonGNqnqd+NUJjwQP930+EEyn
W9KD7MiK8fp/axiSyr9KQT7ZS9nUHULSezFifs/qQj6WQz49kuKTJMIIzEwiVlpiFfpWt5n1Dry3
Eh0CFQwqLkYxyhr+Hzf2ujYJgf+WSC1wbiJRQjAeDpLPwvb3Uge7j9MDIGnKfoAcn9HSFmcyytoZ
PsN+zy6D0bB4qnk8WcoHeY8Fe38CKA7k+9mMGbhqXGQb0rO9UtXMRvM8ncmZVjaB11X+0JMhyS4U
zf3vbZp5HKwJ18b56h45/2QTQoUCFZHMKCvh6pfJqnTkZ+ByuIA8xsXrQt5vy9LGfd0cCvaR/2OU
cHhmnjwttHHV0cwvPU0BDtPwFDEOeJrMMNthuEffb2AgzfEUsZWT5smFocuLDBgdszCmyr8XBaei
rmihKcv+/g7Y0KcAhUc1sHq8TkhTzq++rBg/O5OhG1Y1Y5Bw+p4gycb301RsrLYNHcVCmAcYdQ4V
ZfThjym5sdh4QM6hKKNFKbQ6/RqPEt5z8r5Zxr0BmGZUZWxMmecinHw4fgwvWb26Oh9GRngnj9nQ
GzbGPvSRr1wbZRWX4X0kUNAe8SeR4JUpJdItWF4HSQd+TXZIiVvASUQ9RVQg1gb3Wg9t/GCOj0L2
747cY+gBf020oGFt2lHDVA2IrMPOtS9266qgqmo8d0Ada73CUxrUHR4jjx/LhG+2/2/56513qSmg
AXcGe7l+sgDPGcy7Zovw7I93p4Q+8EBSDgeTsfNvgx3HE7WO9nCgiWDhNoTJKM5e4AKROMA4or/M
NIFKDBbWwFmx5rZsMEV4W9cQx6X0r+ktB9KUDnJzPlXTFkjANM4lhBler1G/EH/+s9O1KSRzfrmB
VzLce5l01Ft9iMPq7pv3suPNL3K4AgG7qqfskOTX/gbouOHYo5lthZT/o7XQ0NdcRBT7pylEV+Bs
wF95vuji9QJF/AAou/d+oVqu7s4YqJ5s6gkRK703lH3aFVoJvW2hHVwcz4ySj9IxtGIDrWmLO5Bw
iYRzbwJniIgDbWo/PtLSyjQrwYhsnDsYRa2ty53Rf7Rfov+zqMSUDw94B/WJnLHR/22jx9O+8cGG
m4ZayTEokt7y1rhnIQROeeifb0Y8LIaUSBEYBPUUSPAeYbFMho1GMVbs8iOivZtTfSrW4i+u0HjB
qZPzhXph1D0iPz4Qhiu2DesGgKCSzj3jsYbfEQDwfFuVAABseRRRwFFxIgABh4gBgLAJF2HmhbHE
Z/sCAAAAAARZWg==
"""
