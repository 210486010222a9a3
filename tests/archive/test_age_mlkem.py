"""Tests for the hybrid post-quantum age recipient type (bubble_manager.archive.age_mlkem).

Covers the C2SP spec examples, key encodings, round trips, wrong identities, the refusal
to mix post-quantum and classical recipients, every malformed ``mlkem768x25519`` stanza,
the C2SP CCTV ``hybrid*`` vectors (embedded at the end of this file), header rotation,
and interoperability with typage (npm ``age-encryption``, installed by mk/pq.mk) and
with the Debian ``age`` CLI.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from bubble_manager.archive import bech32
from bubble_manager.archive.age import (
    CHUNK_SIZE,
    AgeError,
    AgeHeaderError,
    AgeKeyError,
    AgePayloadError,
    HybridIdentity,
    HybridRecipient,
    NoIdentityMatched,
    Stanza,
    X25519Identity,
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
from bubble_manager.archive.age_format import b64decode_canonical, b64encode_unpadded, encode_header
from bubble_manager.archive.age_mlkem import ENC_SIZE, HPKE_INFO, MLKEM_CIPHERTEXT_SIZE, RECIPIENT_SIZE

TYPAGE_DIR = Path(__file__).resolve().parent / "typage"
# The MLKEM768-X25519 examples of the age spec (https://c2sp.org/age; C2SP/C2SP age.md at commit
# 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9).
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_RECIPIENT = (
    "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapd"
    "mwjjqpjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477"
    "lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8w"
    "wtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9f"
    "ed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dv"
    "p9yn9qfdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43"
    "xe8h92ktre2a3u3s8mm5mrp9nr9pwkgtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f"
    "0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg8"
    "xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf8"
    "xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5"
    "jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5"
    "etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscjg"
    "lpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4y4ukwrunf57xj6pm7nvrkwvt"
    "rt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7yky"
    "snq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5ga"
    "gyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq"
    "22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lw"
    "g3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3m"
    "2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53j"
    "ff0vjj96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5h"
    "kntzz9fe5zatgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043"
    "x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3"
    "qheyty7saeq0d3fzv49zc0k"
)
SPEC_STANZA_ENC = (
    "U7E10Aon27j1oDrH7fP3B++SPROSnDVvQpBemzOM+ZcsojxJifUbeeYWejMYKNB+H3rlXNvgtDKfSCkt78oqncr3"
    "faY1JtMj0GQPBZ2g6t8o1cMzZgyLMepeVuTQKxLqnM6L48n8dJL2y0N3i7WSOV6csB79r9tcIs88Al9iCwVLpt74"
    "OzDXAIwD1QlCAvj75ZEnwtgP6Xr6s+wHg9hLD0OSSQOaTdCqzR5shQWyrjVs7GCqd/5WbNGYNaolPQJBu9wTNhHj"
    "P9XGCTv8iKXkYwXDYujInkF5hOjpCHE8Vu+9UeMI+l0GJAEervT51bwaf288GiqgapP5g4HF8V4P0+03B/SwXhvx"
    "xZpKjTU2OcFS8I9chtEZ7Ucw5bvPkC1lyjNnqQXZyc4JnAqbFQTlPGnwbEsm0UGE+v0FOxTBznIivHoPHV++5PuY"
    "pombiV/lfYy8BFx0Hk1igNI3iLNjlIg4MLXNWjN3VROlXIiSsWNXjr/Frh/OE87PXoaKhsDPWfv6akd9PxSDqJMQ"
    "4j8k11kCSOnnU8Rw4TSVnTpt7gfYzBULrMr7qDgyH/TYvp0o7mAq4IaraFJmTqm+LjfAJT4PCQOpnMNRHLyXZn6m"
    "tMUujNv7+zR/I9Vqi+bJdQBwNWdJcUQVarqx2zxV2rM7l+j0gsmxjxp5yAPyALzla7XzVvbboLMnHeM+CzN4GoB2"
    "PC4neVDSw7Dfs8vbm7f9CeDGvhjWrzcSCOsUCalvH1WkbpE0b9cE/TSJqwXFXEc8npTSQWH58RXDALNF3qCbW5La"
    "boD4wCloClEakgljT0s0mTdqIwzj4xtdlX0S2dCtaV5MHQJiQHGwPvBSCiIsh8ZWJPwZ7Ron7xoWgNI0lXRqhKm7"
    "fvFNCzF+Ray2kOyKWHbsMy3a5Zx3yZxCGFwexAxgYfAH9HJ1raHi1XYGpNpBlDXg47U1y4uU7RBeBb4ewETv/B/p"
    "8sGW88tIY87dHM2xHjnntGXLvkCIkmjXGNULAVYHxDPJTygxSF7uTVPYCBUk5KeLnDVcgWF8p/wxigza47ptMtpV"
    "tm9ZrSEu9vzOnaTN3KO75RkkLuZszhXfmMZ46NQrdS7Y6duCiN501BnR5BUC4dX4iMxchix6aLN3pKv6UOEwwcx2"
    "aSF4Ib963MAtTPEjhqe+dt0VcTar/08uLWv1kQQueFaEGet4KQ975ZqaoU3PmZH9gqTOumX1EKf0Pnl0F3NMW+lE"
    "OlnCEce99zHBwBf7LV0pLNLDONBxpQySrZUQsNfhAq2Ktf5nG2hcGAMFMWIsEOuOyzEe+l2aHW4/ojOjU1Oqy4TL"
    "zVVRlWmPxQde7qKbvBN7CQhDqJHJA2nphQT/4DOdLqkwRiauMmnfx9FI3+hYnX25NpnyvM/Pt94vpsRkhcuttu4/"
    "G4xOYTNQd2YWjGwhypZ0oPSiriuTbhj6y2qm33jiwxvegeDz8CmAIhOEY2JoVpjjX9XzuNR2f5KTLmLzEkOcJQ"
)
SPEC_STANZA_BODY = "c/k+TjhBA6Je1DF8rxZhe2Jm8CN0zbkV9rre6nA8g98"
SMALL_ORDER_X25519_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.fixture(scope="module")
def hybrid() -> HybridIdentity:
    return HybridIdentity.generate()


def encrypt_bytes(data: bytes, recipients) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, recipients)
    return out.getvalue()


def decrypt_bytes(ciphertext: bytes, identities) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(ciphertext), out, identities)
    return out.getvalue()


# --- keys and the spec examples -------------------------------------------------------


def test_spec_example_identity_gives_spec_example_recipient():
    identity = HybridIdentity.from_string(SPEC_IDENTITY)
    recipient = HybridRecipient.from_string(SPEC_RECIPIENT)
    assert identity.recipient() == recipient
    assert recipient.to_string() == SPEC_RECIPIENT
    assert identity.to_string() == SPEC_IDENTITY
    assert len(recipient.public_bytes) == RECIPIENT_SIZE == 1216


def test_spec_example_stanza_opens_with_spec_identity():
    identity = HybridIdentity.from_string(SPEC_IDENTITY)
    stanza = Stanza("mlkem768x25519", (SPEC_STANZA_ENC,), b64decode_canonical(SPEC_STANZA_BODY, "body"))
    assert len(b64decode_canonical(SPEC_STANZA_ENC, "enc")) == ENC_SIZE == 1120
    file_key = identity.unwrap([stanza])
    assert file_key is not None and len(file_key) == 16
    assert HybridIdentity.generate().unwrap([stanza]) is None


def test_seed_expansion_matches_hpke_pq_definition():
    # expandKey: SHAKE256(seed, 96) = ML-KEM-768 seed (d || z) || X25519 private key.
    from cryptography.hazmat.primitives.asymmetric import mlkem
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    seed = os.urandom(32)
    expanded = hashlib.shake_256(seed).digest(96)
    expected = (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]).public_key().public_bytes_raw()
        + X25519PrivateKey.from_private_bytes(expanded[64:]).public_key().public_bytes_raw()
    )
    assert HybridIdentity(seed).recipient().public_bytes == expected
    assert HPKE_INFO == b"age-encryption.org/mlkem768x25519"


def test_generated_identity_round_trips_and_repr_hides_secret(hybrid):
    text = hybrid.to_string()
    assert text.startswith("AGE-SECRET-KEY-PQ-1") and text == text.upper()
    assert parse_identity(text) == hybrid
    recipient_text = hybrid.recipient().to_string()
    assert recipient_text.startswith("age1pq1") and len(recipient_text) > 1900
    assert parse_recipient(recipient_text) == hybrid.recipient()
    assert isinstance(parse_recipient(recipient_text), HybridRecipient)
    assert text not in repr(hybrid) and text[19:] not in repr(hybrid)
    assert hybrid.recipient().post_quantum is True


def test_identity_file_may_mix_hybrid_and_x25519_keys(hybrid):
    classic = X25519Identity.generate()
    text = f"# created by age-keygen -pq\n{hybrid.to_string()}\r\n\n{classic.to_string()}\n"
    assert parse_identity_file(text) == [hybrid, classic]


def _invalid_mlkem_recipient() -> str:
    public = bytearray(HybridIdentity.generate().recipient().public_bytes)
    public[0], public[1] = 0xFF, public[1] | 0x0F  # first coefficient 4095 >= q = 3329
    return bech32.encode("age1pq", bytes(public))


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC_RECIPIENT.upper(), "wrong case"),
        (SPEC_RECIPIENT[:-1] + ("q" if SPEC_RECIPIENT[-1] != "q" else "p"), "checksum"),
        (SPEC_IDENTITY, "expected 'age1pq'"),
        (bech32.encode("age1pq", bytes(1215)), "1215 key bytes, expected 1216"),
        (bech32.encode("age1pq", bytes(1217)), "1217 key bytes"),
        (_invalid_mlkem_recipient(), "not a valid encapsulation key"),
    ],
)
def test_malformed_hybrid_recipients_are_rejected(text, message):
    with pytest.raises(AgeKeyError, match=message):
        HybridRecipient.from_string(text)


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC_IDENTITY.lower(), "wrong case"),
        (bech32.encode("AGE-SECRET-KEY-PQ-", bytes(31)), "31 key bytes, expected 32"),
        (bech32.encode("AGE-SECRET-KEY-PQ-", bytes(64)), "64 key bytes"),
        ("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX", "expected"),
    ],
)
def test_malformed_hybrid_identities_are_rejected(text, message):
    with pytest.raises(AgeKeyError, match=message) as raised:
        HybridIdentity.from_string(text)
    assert text not in str(raised.value)


def test_low_order_x25519_part_of_recipient_cannot_be_encrypted_to(hybrid):
    public = hybrid.recipient().public_bytes[:1184] + bytes(32)
    with pytest.raises(AgeError, match="low-order"):
        encrypt_bytes(b"data", [HybridRecipient(public)])


# --- round trips, wrong identities, mixing ---------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 300_000])
def test_round_trip(hybrid, size):
    data = os.urandom(size)
    ciphertext = encrypt_bytes(data, [hybrid.recipient()])
    (stanza,) = read_header(io.BytesIO(ciphertext)).stanzas
    assert stanza.type == "mlkem768x25519" and len(stanza.args) == 1 and len(stanza.body) == 32
    assert len(b64decode_canonical(stanza.args[0], "enc")) == 1120
    assert decrypt_bytes(ciphertext, [hybrid]) == data


def test_each_of_several_hybrid_recipients_decrypts(hybrid):
    others = [HybridIdentity.generate() for _ in range(2)]
    ciphertext = encrypt_bytes(b"for three", [o.recipient() for o in others] + [hybrid.recipient()])
    assert len(read_header(io.BytesIO(ciphertext)).stanzas) == 3
    for identity in [hybrid, *others]:
        assert decrypt_bytes(ciphertext, [identity]) == b"for three"
    # A fresh encapsulation per recipient and per file.
    encs = {s.args[0] for s in read_header(io.BytesIO(ciphertext)).stanzas}
    assert len(encs) == 3


def test_wrong_identities_do_not_match(hybrid):
    ciphertext = encrypt_bytes(b"data", [hybrid.recipient()])
    with pytest.raises(NoIdentityMatched, match="stanza types: mlkem768x25519"):
        decrypt_bytes(ciphertext, [HybridIdentity.generate(), X25519Identity.generate()])
    classic = X25519Identity.generate()
    with pytest.raises(NoIdentityMatched, match="stanza types: X25519"):
        decrypt_bytes(encrypt_bytes(b"data", [classic.recipient()]), [hybrid])
    assert decrypt_bytes(ciphertext, [classic, hybrid]) == b"data"


def test_mixing_post_quantum_and_classical_recipients_is_refused(hybrid, tmp_path):
    classic = X25519Identity.generate().recipient()
    for recipients in ([hybrid.recipient(), classic], [classic, hybrid.recipient()]):
        with pytest.raises(AgeError, match="refusing to mix post-quantum and classical"):
            encrypt_bytes(b"data", recipients)
    (tmp_path / "plain").write_bytes(b"data")
    with pytest.raises(AgeError, match="refusing to mix"):
        encrypt_file(tmp_path / "plain", tmp_path / "out.age", [hybrid.recipient(), classic])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_files_mixing_both_kinds_are_still_read(hybrid):
    # Writing such files is refused; reading them is allowed (CCTV hybrid_and_x25519).
    classic = X25519Identity.generate()

    class Unlabelled:
        def __init__(self, recipient):
            self.wrap = recipient.wrap

    recipients = [Unlabelled(hybrid.recipient()), classic.recipient()]
    ciphertext = encrypt_bytes(b"both", recipients)
    assert decrypt_bytes(ciphertext, [hybrid]) == b"both"
    assert decrypt_bytes(ciphertext, [classic]) == b"both"


# --- malformed stanzas ------------------------------------------------------------------


class CapturingRecipient:
    """Wraps a recipient and remembers the file key, to rebuild headers with a valid MAC."""

    post_quantum = True

    def __init__(self, recipient: HybridRecipient) -> None:
        self.recipient = recipient
        self.file_key = b""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        self.file_key = file_key
        return self.recipient.wrap(file_key)


@pytest.fixture(scope="module")
def hybrid_file(hybrid):
    capturing = CapturingRecipient(hybrid.recipient())
    data = os.urandom(1000)
    ciphertext = encrypt_bytes(data, [capturing])
    return data, ciphertext, capturing.file_key


def with_stanza(ciphertext: bytes, file_key: bytes, stanza: Stanza) -> bytes:
    """The same payload under a header holding ``stanza``, with a correct MAC."""
    header = read_header(io.BytesIO(ciphertext))
    return encode_header([stanza], file_key) + ciphertext[header.size :]


def _enc(stanza: Stanza) -> bytes:
    return b64decode_canonical(stanza.args[0], "enc")


def _with_enc(stanza: Stanza, enc: bytes) -> Stanza:
    return replace(stanza, args=(b64encode_unpadded(enc),))


def _non_canonical(text: str) -> str:
    # 1120 bytes end in a 2-character group with 4 unused bits; set one of them.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(text[-1])
    return text[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last | 1]


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


MALFORMED_STANZAS = [
    ("extra argument", lambda s: replace(s, args=(*s.args, "x")), AgeHeaderError, "2 arguments"),
    ("no argument", lambda s: replace(s, args=()), AgeHeaderError, "0 arguments"),
    ("enc not canonical", lambda s: replace(s, args=(_non_canonical(s.args[0]),)),
     AgeHeaderError, "non-canonical base64"),
    ("enc padded", lambda s: replace(s, args=(s.args[0] + "==",)), AgeHeaderError, "padding"),
    ("enc bad character", lambda s: replace(s, args=("*" + s.args[0][1:],)), AgeHeaderError,
     "invalid base64 character"),
    ("enc short", lambda s: _with_enc(s, _enc(s)[:-1]), AgeHeaderError, "1119 bytes, expected 1120"),
    ("enc long", lambda s: _with_enc(s, _enc(s) + b"\x00"), AgeHeaderError, "1121 bytes"),
    ("enc x25519-sized", lambda s: _with_enc(s, _enc(s)[-32:]), AgeHeaderError, "32 bytes"),
    ("body short", lambda s: replace(s, body=s.body[:-1]), AgeHeaderError, "body is 31 bytes"),
    ("body long", lambda s: replace(s, body=s.body + b"\x00"), AgeHeaderError, "body is 33 bytes"),
    ("body empty", lambda s: replace(s, body=b""), AgeHeaderError, "body is 0 bytes"),
    *[
        (f"x25519 small order {i}", lambda s, p=point: _with_enc(s, _enc(s)[:MLKEM_CIPHERTEXT_SIZE] + p),
         AgeHeaderError, "low-order")
        for i, point in enumerate(SMALL_ORDER_X25519_POINTS)
    ],
    ("type upper case", lambda s: replace(s, type="MLKEM768X25519"), NoIdentityMatched, "none of"),
    ("ml-kem part corrupted", lambda s: _with_enc(s, _flip(_enc(s), 100)), NoIdentityMatched, "none of"),
    ("x25519 part corrupted", lambda s: _with_enc(s, _flip(_enc(s), ENC_SIZE - 5)), NoIdentityMatched,
     "none of"),
    ("bad tag", lambda s: replace(s, body=_flip(s.body, 31)), NoIdentityMatched, "none of"),
    ("wrapped key", lambda s: replace(s, body=_flip(s.body, 0)), NoIdentityMatched, "none of"),
]


@pytest.mark.parametrize(
    "name, mutate, error, message", MALFORMED_STANZAS, ids=[case[0] for case in MALFORMED_STANZAS]
)
def test_malformed_stanza_is_refused(hybrid, hybrid_file, name, mutate, error, message):
    _data, ciphertext, file_key = hybrid_file
    (stanza,) = read_header(io.BytesIO(ciphertext)).stanzas
    bad = mutate(stanza)
    assert bad != stanza
    with pytest.raises(error, match=message):
        decrypt_bytes(with_stanza(ciphertext, file_key, bad), [hybrid])


def test_valid_stanza_rebuilt_by_the_helper_still_opens(hybrid, hybrid_file):
    # Guards the test above: its helper keeps the MAC valid, so failures come from the stanza.
    data, ciphertext, file_key = hybrid_file
    (stanza,) = read_header(io.BytesIO(ciphertext)).stanzas
    assert decrypt_bytes(with_stanza(ciphertext, file_key, stanza), [hybrid]) == data


def test_a_malformed_stanza_is_refused_even_when_a_later_one_matches(hybrid, hybrid_file):
    data, ciphertext, file_key = hybrid_file
    (good,) = read_header(io.BytesIO(ciphertext)).stanzas
    bad = replace(good, args=(*good.args, "extra"))
    header = encode_header([bad, good], file_key)
    with pytest.raises(AgeHeaderError, match="2 arguments"):
        decrypt_bytes(header + ciphertext[read_header(io.BytesIO(ciphertext)).size :], [hybrid])


def test_malformed_stanza_leaves_no_output_file(hybrid, hybrid_file, tmp_path):
    _data, ciphertext, file_key = hybrid_file
    (stanza,) = read_header(io.BytesIO(ciphertext)).stanzas
    (tmp_path / "in.age").write_bytes(with_stanza(ciphertext, file_key, replace(stanza, body=b"")))
    with pytest.raises(AgeHeaderError):
        decrypt_file_verified(tmp_path / "in.age", tmp_path / "out", [hybrid])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.age"]


def test_non_canonical_body_in_the_header_is_refused(hybrid, hybrid_file):
    _data, ciphertext, _file_key = hybrid_file
    header = read_header(io.BytesIO(ciphertext))
    lines = header.raw.split(b"\n")
    body_line = next(i for i, line in enumerate(lines) if 0 < len(line) < 64 and i > 1)
    # 32 bytes end in a 3-character group with 2 unused bits; set the lowest one.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(lines[body_line][-1:])
    lines[body_line] = lines[body_line][:-1] + alphabet[last | 1 : (last | 1) + 1]
    tampered = b"\n".join(lines) + ciphertext[header.size :]
    with pytest.raises(AgeHeaderError, match="non-canonical base64"):
        decrypt_bytes(tampered, [hybrid])


# --- header rotation ------------------------------------------------------------------------


def test_rewrite_header_moves_an_x25519_file_to_a_hybrid_key(hybrid, tmp_path):
    classic = X25519Identity.generate()
    data = os.urandom(2 * CHUNK_SIZE + 9)
    old = tmp_path / "old.age"
    old.write_bytes(encrypt_bytes(data, [classic.recipient()]))
    new = tmp_path / "new.age"
    rewrite_header(old, new, [classic], [hybrid.recipient()])
    assert decrypt_bytes(new.read_bytes(), [hybrid]) == data
    with pytest.raises(NoIdentityMatched):
        decrypt_bytes(new.read_bytes(), [classic])
    old_header = read_header(io.BytesIO(old.read_bytes()))
    new_header = read_header(io.BytesIO(new.read_bytes()))
    # Only the header changes: nonce and payload stay byte for byte.
    assert old.read_bytes()[old_header.size :] == new.read_bytes()[new_header.size :]
    with pytest.raises(AgeError, match="refusing to mix"):
        rewrite_header(old, tmp_path / "x.age", [classic], [hybrid.recipient(), classic.recipient()])
    assert not (tmp_path / "x.age").exists()


# --- C2SP CCTV test kit: hybrid vectors -------------------------------------------------------


@functools.cache
def load_hybrid_testkit() -> dict[str, bytes]:
    archive = lzma.decompress(base64.b64decode(CCTV_HYBRID_TAR_XZ_B64))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


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


def test_hybrid_testkit_is_embedded():
    assert len(load_hybrid_testkit()) == 19
    assert {name for name in load_hybrid_testkit() if not name.startswith("hybrid")} == {"armor_hybrid"}


def pytest_generate_tests(metafunc):
    # A hook rather than a decorator: the vectors are defined at the end of the module.
    if "hybrid_vector" in metafunc.fixturenames:
        metafunc.parametrize("hybrid_vector", sorted(load_hybrid_testkit()))


def test_cctv_hybrid_vector(hybrid_vector):
    fields, age_file = parse_vector(load_hybrid_testkit()[hybrid_vector])
    if fields.get("armored") == ["yes"]:
        # ASCII armor is not supported by design: the reader must say so, not misparse.
        with pytest.raises(AgeHeaderError, match="armored"):
            decrypt_bytes(age_file, [parse_identity(fields["identity"][0])])
        return
    identities = [parse_identity(v) for v in fields["identity"]]
    expect = fields["expect"][0]
    if expect == "success":
        plaintext = decrypt_bytes(age_file, identities)
        assert hashlib.sha256(plaintext).hexdigest() == fields["payload"][0]
    else:
        with pytest.raises(EXPECTED_ERRORS[expect]) as raised:
            decrypt_bytes(age_file, identities)
        assert ("MAC mismatch" in str(raised.value)) == (expect == "HMAC failure")


def test_cctv_file_key_matches_what_we_unwrap():
    fields, age_file = parse_vector(load_hybrid_testkit()["hybrid"])
    header = read_header(io.BytesIO(age_file))
    identity = parse_identity(fields["identity"][0])
    assert identity.unwrap(header.stanzas).hex() == fields["file key"][0]


# --- interoperability: typage (npm age-encryption) ------------------------------------------

TYPAGE_SCRIPT = TYPAGE_DIR / "interop.mjs"
# The Node.js that `make node-runtime` installs when the machine's is too old (Debian 12's is 18).
PRIVATE_NODE = Path(__file__).resolve().parents[2] / ".tools" / "node" / "node_modules" / ".bin" / "node"
NODE = str(PRIVATE_NODE) if PRIVATE_NODE.exists() else shutil.which("node")
needs_typage = pytest.mark.skipif(
    NODE is None or not (TYPAGE_DIR / "node_modules" / "age-encryption").is_dir(),
    reason="typage not installed: `make test` installs it (mk/pq.mk, target typage-deps, "
    "npm ci in tests/archive/typage) and needs node on PATH",
)
INTEROP_SIZES = [0, 1000, 3 * CHUNK_SIZE + 17]


def typage(*args: str) -> bytes:
    result = subprocess.run(
        [NODE, str(TYPAGE_SCRIPT), *args], capture_output=True, timeout=120, cwd=TYPAGE_DIR
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace").strip())
    return result.stdout


@pytest.fixture(scope="module")
def typage_key(tmp_path_factory) -> dict[str, str]:
    key = json.loads(typage("keygen"))
    path = tmp_path_factory.mktemp("typage") / "key.txt"
    path.write_text(f"# public key: {key['recipient']}\n{key['identity']}\n")
    return {**key, "path": str(path)}


@needs_typage
def test_typage_and_we_derive_the_same_recipients(typage_key, hybrid, tmp_path):
    assert parse_identity(typage_key["identity"]).recipient().to_string() == typage_key["recipient"]
    ours = tmp_path / "ours.txt"
    ours.write_text(hybrid.to_string() + "\n")
    assert typage("recipient", str(ours)).decode().strip() == hybrid.recipient().to_string()


@needs_typage
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_typage_file_opens_with_our_reader(typage_key, tmp_path, size):
    identities = parse_identity_file(Path(typage_key["path"]).read_text())
    data = os.urandom(size)
    (tmp_path / "plain").write_bytes(data)
    other = HybridIdentity.generate().recipient().to_string()
    typage("encrypt", str(tmp_path / "plain"), str(tmp_path / "t.age"), other, typage_key["recipient"])
    assert [s.type for s in read_header(io.BytesIO((tmp_path / "t.age").read_bytes())).stanzas] == [
        "mlkem768x25519",
        "mlkem768x25519",
    ]
    decrypt_file_verified(tmp_path / "t.age", tmp_path / "out", identities)
    assert (tmp_path / "out").read_bytes() == data
    with pytest.raises(NoIdentityMatched):
        decrypt_file_verified(tmp_path / "t.age", tmp_path / "out2", [HybridIdentity.generate()])


@needs_typage
@pytest.mark.parametrize("size", INTEROP_SIZES)
def test_our_file_opens_with_typage(typage_key, tmp_path, size):
    data = os.urandom(size)
    recipients = [HybridIdentity.generate().recipient(), parse_recipient(typage_key["recipient"])]
    (tmp_path / "ours.age").write_bytes(encrypt_bytes(data, recipients))
    typage("decrypt", str(tmp_path / "ours.age"), str(tmp_path / "out"), typage_key["path"])
    assert (tmp_path / "out").read_bytes() == data


@needs_typage
def test_typage_opens_our_file_with_our_identity_and_refuses_a_wrong_one(hybrid, tmp_path):
    data = os.urandom(CHUNK_SIZE + 3)
    (tmp_path / "ours.age").write_bytes(encrypt_bytes(data, [hybrid.recipient()]))
    (tmp_path / "key.txt").write_text(hybrid.to_string() + "\n")
    typage("decrypt", str(tmp_path / "ours.age"), str(tmp_path / "out"), str(tmp_path / "key.txt"))
    assert (tmp_path / "out").read_bytes() == data
    (tmp_path / "wrong.txt").write_text(HybridIdentity.generate().to_string() + "\n")
    with pytest.raises(RuntimeError, match="no identity matched"):
        typage("decrypt", str(tmp_path / "ours.age"), str(tmp_path / "o2"), str(tmp_path / "wrong.txt"))


@needs_typage
def test_typage_opens_an_archive_rotated_to_its_key(typage_key, tmp_path):
    classic = X25519Identity.generate()
    data = os.urandom(2 * CHUNK_SIZE)
    (tmp_path / "old.age").write_bytes(encrypt_bytes(data, [classic.recipient()]))
    rewrite_header(tmp_path / "old.age", tmp_path / "new.age", [classic],
                   [parse_recipient(typage_key["recipient"])])
    typage("decrypt", str(tmp_path / "new.age"), str(tmp_path / "out"), typage_key["path"])
    assert (tmp_path / "out").read_bytes() == data


# --- the Debian age CLI -----------------------------------------------------------------------

needs_age_cli = pytest.mark.skipif(
    shutil.which("age") is None, reason="age CLI not installed (apt-get install age; mk/archive.mk)"
)


def age_cli_version() -> tuple[int, ...]:
    text = subprocess.run(["age", "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in match.groups()) if match else (0,)


@needs_age_cli
def test_age_cli_reads_hybrid_files_only_from_version_1_3(hybrid, tmp_path):
    # docs/post-quantum.md says Debian's age 1.1.1 cannot open hybrid archives; 1.3+ can.
    data = os.urandom(1000)
    (tmp_path / "x.age").write_bytes(encrypt_bytes(data, [hybrid.recipient()]))
    (tmp_path / "key.txt").write_text(hybrid.to_string() + "\n")
    result = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "key.txt"), str(tmp_path / "x.age")],
        capture_output=True, timeout=60,
    )
    if age_cli_version() >= (1, 3, 0):
        assert result.returncode == 0 and result.stdout == data
    else:
        assert result.returncode != 0 and result.stdout == b""
        assert b"unknown identity type" in result.stderr  # as docs/post-quantum.md quotes it


# --- embedded data ------------------------------------------------------------------------------


# The hybrid* vectors (and armor_hybrid) of the C2SP test kit (https://github.com/C2SP/CCTV,
# age/testdata, commit 1e3d2860d46e94e777e1b17c7a6f2436387e3ecc; 0BSD licence): tar, xz-compressed,
# base64-encoded.
CCTV_HYBRID_TAR_XZ_B64 = """
/Td6WFoAAATm1rRGAgAhARwAAAAQz1jM4Mf/LQpdADCcid6eM8Zt9j3eahCVYyAtRN7n5USn29VT
JTReha7VZzyEeixIUN0DuG49uiydB49INfHuQIBdH73uuHCLKNx7p9h5T95lu93NC5c0nC/B29lM
6Mt0/FnWt7/B2u062zNoPTkUg1kkDEgI8sgXqmaV6Ewm10GSIAfksH7pYj6i7kg8E1tJgu3KqiAU
/DMKYcru5U+/rSNXfHA+oBMs/lPNSnn6uJApZ+BxZ7OCIq7I6AqsDqCjYqsWljQYuhpxL58BF+dS
+OmMe0xFW/cbvI1we2CEr75SHWwEw+gwWTcKSJXoT7nYFvoB78Hyu979s6MruqcfCijX7Dx99kqr
dezXJ9Fo/VPbH9L6udr6iIzQ6n1zC6z4YyfknlGXmFVMMbD4kEbpGsFnlK8apT+cmFfSfzzEN5ow
3oQHynJkmM2xyHNNFsj9A1ycEK8A3b/scTYNGENdv6FiaZranQ4oONt8kJWKzr7FnqJAl14M3zJE
iQD/DUeP8teByLqdX0QbMGaChdYHLlFh0dtvGt40gy4H939Lwbm+yUhmAFvG/przCxxC6s+y++NF
9bI0VGL92BAe1b9Wg6Nv8gT6LlppGwHOANMnC75pRmD37L/haigPKTMiY0eWwnTDyf8D77lpFVsd
Fn23CXvnesFtqoNIqwZi6/mFiWSVNqotfMpU9L7dCvDUv0ytrsz5ixOUYRybfl0ZaVLAcWLmp4d+
Mhy3jAL2dXh/lnsbJ7rTuqGBBSgNpkGg1SdDb0SxGxBsQz1SHfrsen94Zz1ZKDT6DL8sw3NaF3WT
8Gpuvc1HaaezPeVQKFaZKT5iQNkpfNWJzZCroARkcDUEcSfT1S/zytp+38F9fq76BhlJ2q1eXntS
JfZDTSDZzDIV02+5DfhmP79dayxdJpblIdJBN1jISK5CvCYlD22qU2zTrkN5Ow63ZrdCDJzoYWHk
NFLve5vMNJoo3H0Xf5z2scr38ImWCMwKg/v8CSTNKzfJgKx2T/fRCXASZO9B3X705FhRwteWJ6G5
VwAP6/x8F/tJdzC7Wnj7j6zogagYOWh98Tc2mtGMiV35vAG/LjtY5VbVUIgG5e3M9/YECoonsT3D
EHHtUPhDv9uEZAgLfS17Swle4Y2TherlP7A4WZCwbzJyk28XI0iwPoQc4wscQpLVEXW064z3umID
PlbzENqsWvp8ntLMpGejs7nLwQZiQ9ijuAH5uLDGxTxxvIEPB0u06JUqyAwma16ogXd/CYU0Ivnv
5b3RfQniPW8rev/7kVERQ7+cR8HYOyL7R/m+LWb3L+qUw25MwyRM4yDaIhpzu9vaTojy5Mj83iUs
LooM2rRlwsThFuCOPqAwIMP6ocfPKlZF/4JVOBHk9o5Rzw6stEy4uz7EW7jqKKVzXaeXUzOO+vUE
gdg64aW4faYhFgSHFEaKLaNRPg3++ucVy1M5fyKuXCG/SDReVeWXP+CAKfENBVKgtKsnNo6ZpdJl
5KG+hhkkYR9r+sLCovQl4WT2OoExMxCeurGbxAiXjluBSrA275vIv+I2ZJTC4Oio1wCot0lvGwkY
6DtdXZ77U9UQBYtkZprwLYT6xvIpqwipnIyx7TTls5B4pWfCzoLWXSz4SKnfeeZQ5Agxui5b7VqP
Hd99d1XVEZtKQZKra48cy85yU6Pkur+oXWv/JlM4Ft7FOL/asTvwThT3S2lfHGw1uk5iIlD80Ldp
ckR9YTdBTW0KUIk/SIXY3eLAn/Oy4U1oYSCnp3HZGkDLGpoDd9gMfxu5pFYs97oAA0Wtg9GFC5Uk
EAjWvbUUtMY6gbPoUIJVoI0AmtKtY1oGhkNjgbzQtWKDjCXez9xqA1PnmISTGiLs9pCxz0RZVz0D
aKMPob+MDYjS6z2CQ7Z2TFdZrT8FDRaQxK9RfJaFHJspddgwkJfFUr04pgocVIAWCx8AVKOcVHSX
2WW8oMyFzsm5szBwI5b9zf6LeZgBehUQlO3CwgNYQ5LPDr46Ay2DVfo2b1CxENxo5yeGMoC1rW7Z
A7rSGWvAbuuejHoJLkA7BW+a5fO07hvtDkDJD+z7hijdEvnu/HBaCseRXRAwvbRzZMv+0HG3L9iV
oYDILuBjiWIp6wAQLFdBdgdeXPZU3dfstySX1e5T6XQwrxNa6xDlSTIg0T33N1X24vEtSQhlBGjA
H0JGofvKZyYZrw6ycohtJ9Yd4HRhgBJqiU1cD1h/yXOZBUZOOU1PGyiYRKNgLmRnEzyL1FWrpjiY
b2UMzuRg05KqD9rwTQS5vdzJktydD6zy/aaqY8iyi3KzG5k1DKQY56YWx+MTsp7K+6wyCxYANL/s
6ZxuT/hv9vObueqZ0cRgQzoJM5NOgdhr5/mL+/Lt/1RPv/tJu+vLyb3KIiKONuivuVCWY2uYCbgH
KktqDQRLSFnvn9H7qnbnzcywcu+2YjGTsRgVAXH5GR/FlzZhS2lwuw0prJz79nxrvkQ+mPuBbtBw
Dyhw3zL1l+D5Zq9ATz96wUJPYSL6ugs71aAY3SW9E8t08b9g0tjR39JbobQ2gpbbhE8Za+zuuE+3
EWpfUVWdYaSSsyLrf6j+xIrwkNh5LOuej7rc4cJNVmXfcPUEtIYzgeYhlRPEKqRcGRMwxFbeCSsf
IZUEJ89PBVO1SxdaNYebuncLIfvSAtBw7n11sovTq+lYiIgoZygexPDjnObAxUvo1Nyaw0DBcdqt
bafrsouyXNPvxtRSZvog2gl26qClTubBYRtvyurcpWQU0afyvfWLOs13U79T5Uk5RSS+bszu0b2n
3qxbCCGaHeCVXBm257hpFYCyTw/oO3UZHuhYOP+rt8Yzw2FhguU3IpqcY9+y07/8duOe8CM+WP+x
eTPwudO9UVTY/pbxA+iLSQRa0RxAdKS9BtZpdwVKEMgZ+Bbz5iiLR10/7RZsKac6dvHNWNNfI3N0
CYG8pLIT3NIKkNG229X0hcxa9hB5pwJpumZckoltAE2hXErrLYafWfTt03vubxzW7zakAPCNUkm7
3RuxqK9RQzJlmtaNPr6S9ilHaRTfMunjQ5+fIpEfEMT6oRHHw9fk1HKZJGodqyOVLVJ4DAwQcL6I
AHGd8PcmKOFPG43Ome3Np50/hGacLVBPYIxlIw6GGkDUu3aHwfCn/GkPZ374IWJW5sm2QEWrG3Nt
af0K/PlC2CNGGLPuI8WVFBwdTbHE293DIm/PqRNXzLIOwJuuq5UhvomngTE3VQEbpuMwO46jm0Cz
J4H6e6DkadG52YNMTzo1eP6K9cJQa1WyuVtoUFUpi/uChThQ2flzzILlizgC/NS3mlMjDanU6lFQ
5m4gnh9pv5TWk82lLOzTd3opGwq/Af7mV4DMOkEz9C9dySdg49EeGH2Dig8dMkDNvuLY8xi6TZS/
Oc0PjjcvXzJFi45yjQADFstRpdUnq0FQ5KFpbzH30aV/EkZsXDnHsY+l19nszOqj3DS/Hi8f+M7W
17ZzZkBQ9mivU3h52/O7pG0I200B90q14XeKehzosK39Yov8IXiPfb60oKHB5Er4szqTRe19LyCN
RE8XLeTPW479e4v1RNv3h3bgOWHUnxB89RfaPA51RmRMlvl6kdpYRD/1s0pKgjBOKwveu2fvBTCR
CSZWTixr9ABdbl2yFw7sOXa6Z9ZYClMOt26lutZyPi7K8F15CUreBbZES3xqLQH3Gy4CsuTn6Wja
givWUGtpLy/0V7Uq+bgAYFyvMbQ+HWAQToUMhqLNghUiA4Zjet43s78zh1pkahjQH52otLWpewRj
AJRMYdFwpby4mX94a39/Jnsbw0PplcAYAGXKc3btp7IenOf0+kCZqvX1+EGs7++NQMj7JqbiBmiC
RWQ5uufaqbgw5IMeaEB6hSTqKINRBfs21l3C8r0GlGG2MhGqaQUbtqkG7DlQPSl3nZiw3hij7oxI
9CHTpcell47px13gdo5Z69LM6z6vIbfG8exG8Qk39zGTL85ZdrW/EiajLBMTJyNBH3YdNb2I6bx7
EFYtyuZWqNbcBXn/JYXVGWvrRqiPd+0d3iGcccyyKV5Oaok3aPCw51M5a/FK3gh50B2lV/M57AqJ
zQTKFO+TxbwSOZJ7LncHVk2gCgz/hg9/RLSfEeCTP7MlEC4CMULFxP6Icu5+EahC5iuBW5m1n7DZ
OSLAzS/5WzQfxpAdZ/CZVZ2h80u/yyQu7/3FLIL70KWrMlm5AV8NrrjWAYRA7s6eQIT1IPpGt1Vd
vh/9SPGy+F0YzbvGx87aPnRIHeYCK7EA3RQUPQ40vbI9tVJBsd6B6EdpgohdZDZBQbAVN9aUf2qf
L3x1lGQBLzBGjsEtsiiAgctSWmHtJNPewImDC/9duL+KA+pug8U6qPc44ZTPESSQbdByuY4DwAP+
e0UOy0Q0Uop+J0dyr+aOVkRXsI51VERd41j0YpXnvGUPjqlhN8wwRDKnBsBGr9AnOGVQeB80tujd
XfJMiS1xzz/mJsd1Q1SnnC+w2Lt5tvBusoa2khBK68KtCCNggceNVj7TozHmYAr4v2Ey2QiPnfB5
+SivaAxqNu5vlpaWaE3FqPzy5R0kifKSmJsK/oBGjIbS6mtBFrj43/9lgEwQO2KwFRpeAvWMVpgm
gG+vuZFf6N9KJb4yxtWzSvKh0bU/Z5G03r+hAtSV0oQvJj9JKxWqaTRnU4g9q5XVHbT4Rk3ysLgo
RDN74bQgWzsG6+ZG8nvd58vqXNYnEp2xa36HEfaNfoLUMKFJu3bFXnjXGaMx1RLiGhdiCrlGQBd/
K9xsXH8a1BtO0XBMUj9gTYkkrnWs1udVFueXpvDbFXtUlwy0Nxp+oJ4L7ltTRrqi/WTUXADiYWav
5AHIPMerV0XvW0Ic9T0VSibVzN/WUl96BqgBq/l0zE8L9tMp6G2Fk1nLDp4/bF8SKdAOT8dwVrfk
RIPjlLtjZqZ4MrQ1b/psDTKv+DJI/GwgJ+Acc+WA3qPD/uWXMDkiDSEUA/Dj4jFd/+9zlFjGcWwi
SYQr/Y+S+uqBWkJZpxfzEm5mkUt+YfW5R+o86cEoimDndrstv+93M/I8xmeOxOd4KQ+9vdv8kXQf
H6BfRcVlMN2YO99QqiNQn6TQlxRb7rn979RrfVLO7YhZ+ee06sFrWdFew4rvuFz8gEIFPS158GUI
IIfN737FL1nOyyCm3Y/l4oyvQYlc9TCGyiZDPXXhd1QgqIwrD4whyU89wK3lDExjS/Ds19TH9/48
N3cwVszpDX6WDzvlRnS3xuKZG/YVNr0lNp1j7ShtDj5oM3s1IYaqc+XWlPBIH4LUlDrH3JMuO1AB
fsuj+vdmRs4RM7x7XpWE3OUzVi/NEw1C/P8Fx44TUZfvtoQLKMXeCLmPI1ig4I8iwCxhCbOFjevy
9WrdC2QoU/bnEb6T2lk0kvPGhr9stA5Fn8ghLPNhydQ+Q+gld9XF9fhkaDS3I8nuQ4wQQH8glMzc
J72gns/LpSjbSenRIts8r2Z4mSsWqYbcAk4vtGjBUtXJTB+HkgA4xnObzMBPwMMcXckoX9XDAD3A
89HKkJX0tvzyFHJoq6oPqnux4Xl12KhqpZOkEz1jHyMU4t84GzPIE8hZuayjQcBL0C8kMuujE/TV
zQ2J117faDfxE2pcLhU5Rdu6jAvlfj9zNstclOyDnxepzQu9SW9s0ydPHJoHow3IwPl0GM+jgVig
W6VBhc9mOq4Qxn7vWeLp9n51trk22Mt5kMHbZYK0Z1VP0PBRa6Zqh1Hh9ic+mvqn1Kge8AMufz+9
t3DGbIT83rjoH0vVmhmYdP3Y/jueukR8GBvf5cy+zV2hasI912ZdyT/qcIDwzCTny/CRYEGRpBVK
AOI1t5/GfQC2/MsQ3N1IPOrBoHI+RupD+ympJ1tmWYbZpucJTtRKto9vRuIOoCIh7X9cI88tjAd5
OG7hTmYciCHPjVLysnwoxB6HH7NKFo16k2VhToVECcQp3oXmXG2xVHKfYj31cfGYXImasEvX+Btp
rp1R7pj0F3xWu0kOhSoZrueA9MpwEWcMimd+YtOePnoAVNo7VQTv9a44z4HSpwOWgrUzYlqkRKgG
CKLVKAszwnZSbwyQJ+UMsvh/gT6EE/pNQ7PpYyaZIUSopiq9JfP3eYxWPDcVu8PZPKxXtKP1YO/o
LD7uiTH+Ka8SjHYnorb+fF/mmosK2+J08y8G4GaoJBc6USpkIcvUTJQYCVrgAc5Ksv8O3xUlmZL2
aRnzo3QEsXdf8FfdE2cgTqPolAVIjpRywXBjVtH2+SriIPW1cZCVZJFvekj/LO7L46DER10vSvW9
8ZeEfCfb1gH+H7HxK7IY7Ak6XiUb3knS/3UVp4BjXyiv1ktn40/GTRjbXaw1J70dKCkQbZ63x6nt
WfZEyjK+ub7irDwm615Ze+6gF0d0Zn6mxhiov1pyQ1HlNDhhiph/KsELcICLthlFdpKXXZxsX8dh
pMMlBr5VLxH+vV/2A4QaLDb+Jh9h0gr4vQvRQlLjzcoDu5tUFAHMxBJBkHXIWunImmv2B6FIDhYq
vNS+WCO1715cpNHJBrL0wWk6uelydKSzErGraLUdABll+M1c6GyLznroqICGx2Sf5jmYKofjAtHY
ctvM2nJRRU69vC5v+tU2zrrRGYilJBYZ05gasLlYNeWCkDk30lF9+Ww7opvuYkXZsOYChGPImalp
ERYDnF3BgCDFQ5bVV4uSAuY2PEHDjPmWw9JtcP2lmMvjDxk6UfDWioINMqH4kPLk5mFzl3+dbNBt
M3jKq1+bluRFdMq1YXZYV3gU/G8HD2Hkng+hXY+YK5FttRd4pi4vSSKypXaABeoX6HoFputnWUd7
MwODEdDD/hDKFx7VoTdCv/wC0qSKupF+iGffuqvPsDzI3vz0lljKJ4NFoSyEbBjcSdHHaC2UFXdf
o1imsJE86Z9MJWbMPWyAqEpYRimF3lcxB3tDx377NhMTSdV78A+AvFmMmqDMBZOy+dZL17FIueyp
kQoSrkYqnAQgrm3TIp/4lXmdnO1OWU0fYtQsfssdYcYKTpJayZE7P9ZdJZgoTCcKW6Ufs1nJv4ef
ZrZxb2WmbCAjmWfPkIO2Msqv/KI7NmoHiLIDWvaGc4uF5mZMws5rt18yu4BU/eV1BDXbWrtFdQeM
mcUgNzGfru7UYjqLebhuDtExHuXYHuz0uYx97QXIvYmcx3x2QlLkdceuHbeJNFhH5nDTAkteaciB
TEDAM1TfYRfZyxh2HoMS5KCuV2SNFuc1/SvG3cGSePXy/Pw+W/2llAUfEOkJJ5+cPd23s13kZ3vm
zKnNqS9zICSyXu+UZns9QZCxcFf8A70OcZ9c00lsmxjL3hdz03uwqAmnJsctRVR090WobXZfnc8X
8RSR3/X3WmRJQ+TXxGNZz/wtzQCRnRRD+dCoUVxxGKRzUHobTWGTbauaa+FH0VSF1TNx4djQzBCo
+yW3gu26JFULzRrSVji6ZdWgv9fA+cD09ADWf+e+DUMki7uWl9tJZY9YDwcnOSChDvjlWo0N0crJ
klW+b++kmeESlzGYa3wHYe1x5UOM+OG8jhc6JlzT2shJUPRiv2wFQVM0QBnjt+HIwTysa7HJcJSG
Gc2r6G/rlCDsOY8xabMjb0GwSSvVeWH41C9otXjqGHQzFYovh+8b65kjFVpncJD6x4eN3BBQUOtI
6/uHyKyEDKIYpetQrfURlAsACQANobaCXtM2noHCELG7VE3Hv2xzvdrWq4zk5Qai5/C2BOeaUXwR
/F6cm3rFMH/9v1dF62TBxwgAJH3MQ00mAFreiyRTLSyjijo19szRq51bs6Ckrz9utNetuS2Pn753
UxbtEn5yxMMfApSLGeIVE+jsBVF+3jg3rre3fy2Tus6EiW1prCjKmV+CAYt9iz3TjIiCnW8OW+7e
bZmAGH4O8FehdICFxlStOXO7OoPX++VOrRAJLuBgNb3hXNmdXPgI8wvncOsE9mGgOkE+BUponeJC
Vf7SjOvvTgvs/6h3bvrkwxD+YS2unpSerNCPaVI2FPym0YZjd56PUA0JhPMVKeaSd3SVxlDdoZ7y
M/VZqUTvq3jW6IqxiyRB9x5zpgsaBf5Id7+RXhTmtTWSylVGQNQjdfqQ0oI6fi7tUAeBLHV/lVva
r014mpbAeS+oq1i316eceG3Sc1xYmTZFbYUlCkz3GzZeSFFo1MIpJyWwiUVsxDzcezzKPgUtNkEk
5DBOryCdE4rGIUfhJzllzFKWjlHcbusBeYHeLQ1gsAaIgQZONdA2g7LscuhKBylCGNYLGmH/MCyi
O17ZxqCAtJkE+1gQFNXOBW53t5agbZYmzzuRoK6goTCDHrXCAdEsIsTl6l3TlAQCWPnZfGHnJrNv
E0YjEzuxOMC3Xe+2cFp7XxmJo2JH3w8mLlhUicJRFdxs+6Hzxck8g+jRrWhyNaUxPYbCKCKUBaW9
twyFeLTmurJNxTfTjZEwVDwoEU0rsfItZUJllkHR49yxW4k87S2kxLZ2rlgmrcyi/gLSc3t9BXaS
9xfWRpSnS7VUxoJisNj6OGaqSCsN2oGawEga7ta60CPKJKxACSZcRorbCLZfKzkUTYUapnX3+TY8
4eqJgbqtZJnGyWO7dm5E4e/92b+R3h7IMrFOqp1g8atJCyR0G/icGSaAiMP2geiozmmGrXFXFjNa
DqEYOEUSgg7glGqRovfkKX7n++5go5OCLffZIm/2bNHlJrfxRZP3Ekf5P5ljC6FIMYejtDY4DhC8
21u/t9T34MpACJGNtfm2b0l3RUaI/NaPzikgN53b5cjxj2fj/TvxkJmthVNkV+EVQz7yziSp81ye
5UQLgAHOFiajhu/vrdnH2R+Jw+6nqIBC8h5AxerPoABbvHMXZjiQVligy/nQLURaUW2Lq3SbljxL
GGN0t1nbqRqqNmrd92ZkS005hRucTEioF7BamRyq6tXlW3WmAeSCQqfFcIEErAaNxkAOsScZiTxK
JFwWYaSXtWKIou8ZsVeJErUJyZ06f/Kh8nvPdOThimLvWRZWU4D0TZaMsRrFy6XtXUroJN23cme1
jcATR91+CacIzm41207ZX4vvjzblN9y5Tl1ZXfM8v56Vxl5U6KmXmTSWP5/v7qZxO9E8nW921BGM
MgVLcbyOJAQoDcYzol/ao3bsfCsLrrniZydR9FBgSd+pHTDhiEnFiZRhSBjJ9nh5Maohmo+V9ilX
JS0l6ABAE6sEl6lTKMkj1DBTgnmdVh9SMIRBuTr1ZGo5L40PYRfBKPL+eNMedjO7m9H7dxDoquca
GUHj2iMLXDMqWdzIK1EG0U+ekX068KVweKMqoEgjGqmAam032Xf79a3/ZW2Frj7zkm6/6YVNYnSV
eY0WVJWSAljIEmd2Ipqyjrl1ThpnDw9cHXt9WGZR5yd+WoKcyOs4ntYS0V1hFDGcAAV0vN5/VziG
b9KyqrupwlrXYYmUAz2lPUxN15QhVcbw3/Bdpnyh47xu9bJcAotQYWbKdMYAiC+Bz7WkYh41z6f5
uFOIcpUt3hzJcuiy5b1OdxYW0Hvr4I6jkNrgrRS8EQr8WxvUom8epXTqj3yrY4ztL2GKQlqSzpkx
eYFSL415QpM0nhAuGI+NLJy26ikwdhyi2pADzpefEK72iW9C8A8eFFQ626AyYhf+Or2vzOFIH5b1
BQdnumzfzIid6OoC4Ts90uta3jnKNW3FyFXeT+4lOyl75+S7QRVsAnqW1HdBdPJeSJjsuDL1tPRa
1mkZCYsAwiyYWeXkIY1e50RaSkFPoiZ8Lk9e8g/5tcuT/cVlZOQH/N9E4l3S0nlPzvRvz1bXx/cf
joilFR+U6NiiTslb+iYPXSj4cqbumXLWR0zn2+VJXdKJQSzpAJJbyHUVYTuftMTKulQRf8PqYHmq
jif1ZY3VFyz4qD+yBpzAVgrbo/feD0aorZpowTSzHmLWsbs9w43stoQ4SiJp51+iqUV8db9dU6U3
S3Xw7IMKtX7pWqDfPpRyf8YuOY1Yb8FeSJcRmw899fMbe2goaNKyZOypIhB4pOVFzD0H/k4Dfm2W
dTnwZC2AcldIQJCxWtSSpEvC/L4FrPXBXT/f6WoDRoCKYR8eT4etEgy6vT1YB1r4nEpSkegruxDA
7H2gXYQtbh6XoxZas3szPyFuw/DV+SvQGm4DkFP6cFgIRQm+/OHbg8Vu1ea/su0UPA7xfOF/jDsg
KdYfpUIWzwYQb+TxxI2R54nilTyHKCbRQFBQkMoZE6mI76uIzxrz1mPGh0bDlHymaNaHXa+kZcGS
uW3YDajsR3JuZTpqCvcsAY/Rmo3VLYdCKDkJChB7h7t7BDIPkSjNX9ygr6WSvIcMY5kUaC4zTmU7
d9Z/z5ZiHs9KWZ9cIyWlxlt35tDatbjPLZ9Qh/qqTx4RJ5f5cGSRZTR2ci7Bw6mXAihfSVw0WJOa
j446i0WRSBMazTQoY9vkjK20GdkPh52TfLsz4XKbBgxK4j+Zi9Vg5VhBV3jSw+Vtub+XZZnJ68Qe
K7orehzTXhXNko3OIaicZXOjhojgv4YCm2mo5mjgMph99LhGiDCo+cTCT6cfiX1BxWlnrquddXwm
NwHxFkUTfnAqjkkSRS4gpBoMUAyaukV6RBVoascZ6KwQes0/BagzGDV5MHAq4ClmfnPOVQwHDPrj
buc/UUbm+MBwOGNRIvoRplqoNdYFKg9RAG1jpwX5Ig8ZC1+nNe8EDcez3XbLtNzCOvytP0dQQBfu
xVNvq+YtlHMkdnsiHL+uk9s2zWnuy/j71LpEbyVfinHLWLpfy97WKlzrsIYUHpNmSsQydM5k0rRq
Mz1h/1ywAwuR25PLCf8fnBrUtZMEdyX87mih8Pky7Dt9a65zzG7nUUuR8e6dSHcjj6GZ/dTkya73
n1KsCl6PcAI4FKsu63mfNLu2xmepkMtyUYKR76CpXKVlszlBOeghwHixrdjsROqnCg6IQyfQ2evx
9V4HP6ssvkiFEfqk0HJcDAcKYHOKN8JZJ/+iQxwVsP+rTY3sf90a0D2aOVlqqJ7JZ3hKVoKDJRiR
QRNfIrNRiu/K6ErM3yqeSU7XRouMaRRQTCCEVLGORz+6YYr3qzR8Ch5GXbvTwPWMN70AIIdDfkMh
A067pxQr9KeHRiDfZh+FiMlqiJZ5SJmDCkZsDb/ZrXR53jNwnt9bO6EhyS79LYuT+cI2yRMjDL49
izTzbl1+p8i50zeD5FPBXq1ZFIzrbKNbYAeIUBjdUHPJOeCv+Q2Hb5igJellQ24282rsV/VzjYsM
ys2u8Ps0VFaQsrj1cdslZbKZeog4oJAh9ngWZ8Wj1iyx2WLB0oPPmv2r/thn0o1ls4USTz6HVH8x
4cnGapiCIM/z/yNxzCS87OolmVOLn9mY3RQFpOXpzEspNZuqdEYa0FjvsFyODUUKUtuZsrGuf6wI
E3xiApSwwZJZhM+ZhgDU9OEIjDTFFZtYnqstuCNtyKjPxUrrhsk1fRKvAl5ijUJ3Eod5ZiUteUlR
uvEArrslN1Qvq4jBLRCrb8fNDSMXmU/5eN4Uq/0JiDRxfCPda07N/CoUvsFL/ZCzL+9mXD1o0g66
8nY0ch6MAGEZ43fcjbmCxtYumrpZ4UpKqlixHMtKPHtIjQQUPHFvk2osPyB3em2nx6++Sbg/qT85
CWZ5CgRD/xvtLARApQkK1GFXg18yS1g4pTjf41vcPVxm5E6Zbr0aHsU4cpiOL4OiM7AS789UTk09
83Dr7Ie9hsPEM+BwW8Gq+Grq2SrUpFkYx3eKYLK9chOQdvm5vJqQd7SRkX4x5QwG8xe3bB75+7dQ
TDmkijkBfh8ds/OCqOpfbMr2Re9LDbuaqzXeAYhhbpi7twfuLwf5yAbx5Afytlqg2fhvWJkYGSsX
hTvEravzxuHfvDDg1FYX4384t0M162IBINg43Qf8122z26Y3LGvxGFgt7ofcU99BubtckeQBzCN1
OjEQ79QwfXIdnr/fqA+qbdjN6E2VE1A6W5DybKpY9aIgjtWc4+8JcUMCVHIydsB8I9H1W+ofVLad
ONUyZ/DVe5Fie4o3LNA7ENp0P0eVJeDdJAqC2G+l6nJ1QLa7SW9lnbFymVTvSGV0/1e2/e4wfXca
c39x2cUVI44aME4rSXeyJuVbODcoiLr2cDHRoA3gSqZWLXp8LGk7qFLvUEql+1RXZJWN1SU32GNC
0SbCOoXfAkMGLz4vj7gLFqeOuh9/5u26paygAESWDHB+3My3eVKRjdtpu5o8rGY0uhOXGfIi/+6V
0H4yoASu5zDidbCfGU587drYZYHdQS1GSOt6ijukpX7xLxDAlpLGwCvia3UCIevxkKgZMZIIGbY0
DB0NmrKZ2Bu8fUOddpbGOV5A5F655aAOb+yeYzjhABBaY+mrNBFrzYb919Grlnu2yHbXsstKDPwZ
KvmYNz1xRAlpYMZFuYeGFwM50mVQD0YTaf1s8fq++CJMjWlKzOLIaUdLbq70HqmNZT6IuqA2wA22
myOMpON6jSICry6XNX5bHhg4lGkD2lOoAkPgYr69BfES2JmaLdf2R4o8QYbaS91/TaREU1iZ5+Xk
j+JzcAp394w78b9sw4RCUxrtkpfKVo3Y4b5ivwWh5pcx44F0s4ESr95M34lD4hES6/LIn+/9nmnw
jtEozWw898i+DxI+XSmV/zzDA8+aOG5OzBpFhsAUY8Zgj5ckN2Gza31xQRkwoKvLPg/6mpwZ4PI1
CYN5AxkUyFl0soGwitAgQEtP8YA5oXLzJKz13fCzyTUd+CeDRqCf/YuDuIAZn7/Z/N3AvGx66kr9
DZpIlmjtDVUyOLxtXHALkUFIke4FqVCISGzAdzaXhxpX7q0ZxY8G65LEHRKTpwVRKVNhbvqvR5Gx
xB7RuqQWdzaXS7PrwgpdjK04JqaNbW+88e4//FNNbXTkZg+xUJt1vYq0E1VXc4Rzmrl7gFrMlQiC
Hvj0Z3bjbdQQRnpwEALRCYO0Cpo/Iy0gPxQA8G7TGLg7N8YjSU+3uNIXGPgx/RRm9/8AhZZbcnbu
CDkAExjtaRSnYRLIaZ+GKulU3HzCF//pHB1dOWiJVOf25bMOsgJCc8A0KHQ99NA/WXdBeaItPZ9F
iwsnUMEwo/cBRe/y07Ydupx3oIBzw4Z2KJKSoz6oibuUAHAa3UZcMsuITeAVvCA0z2OtNBAKy1Uk
sRLrTAJCENCAo1yyiTmzb2/uzjSfI0cH1hOGKjSXtqKSYMLzbP8AZs9Q7qAThVB98q/Wx3eUB8VD
WJvJHelZuNO8LNLPv55CTajidkziFFjxk//IOWytOugow8NXcVJU6MUCmNVnrUo55400HAaDRKdR
MQ7JbsCqYhLxWpCzFGSp7UVjVKMxtaXCH8g3eUcn46lyvqLdUByJWMcpl2rH+hX4ZfNjbb/uwyzI
2VVAs+OHSovmUg5E0BJHW38tKMBVyMdGce+b7KngPVfKrrYarjer4duLbOgdHbXE0cL6G5nR2VKO
Y/g9IvQ9zqtyxlNUjDq3QjsCX7N4CtWniHtgunAr8UDOAY2IPiwdyQK8xTNPazNsk1p8sppVxw8M
Bsxs3LV4YghZgc+NHhMtk7y+WZ06C9djfMmlZHJor8feS+ERnppY5Hf+h61mab9aOn8Z25s8xh3C
5Lxl+R4BGttDIMEu4LisiqThhtlqtxWYq94LFAom5ZiBVorfCWuXw9AEgfaOjN1KtJAYE0eDaRg+
p4OQGH1uaWmjIaj1HzRBhj4Q7n0mMgu52dZ8tUg4spUL6zpp4Dibb0xd7li1NA4fFR+CeiPeD0q9
mnayYHdhmMpc6sIgm8AIxCxiOwswssw5eI/Q0jlkR2nhfggYY0bSvWkhR0Szn8R6UnDCiEvAzzeg
k5v6i/ho4pkOsLLB/aPNR5QrAiAOjniTOfe43uMlYEmcOunTTAdrCALfpKLJA6AqkOuSIXDgnfD9
FifQ3g+ChBgIIOUSv72Vhr4CM6IAPV3/7cRg+Gwvk7brkMU8VoWYb9tIpfe3T/YE49BkImGGrqXa
FocZ/+Wnhop0IGP7tYlaBklNffHw3kI/AHzcW+6Z9/1Jsuc1nn96mtOPfQFpvZ1liCs9NJyCMeWy
SI3HrX98dEUvSNuDe1DGdM1aLj9ZU96fT5agm0NPfArYeCNagsmuPTRsp/EDEYaE3VlSYeSV3KHM
rQo4vCZw6pWAjsIqkvS1bHGIApt/KX3VwTVKiqGJy2psotaQfD09QpfY2NvNWLAVchvkIlagbxat
SlQGy7SNn72f4JraxGImba8dmv9foqnQhM2qEr70QgCSW8CUs1Zvx/GKzi9PY8oU2N8ki8vn6IjJ
RTbAonTNxC/5ZVJ2SqwQLjjhwHk3AEOS2gbX1kPpgKBXF7rMOHAaDPSBuJZZtwuVkQ+jIeuTCuIo
CcV2PA3hI72/bfOslg4OW27KScX/0qgMbW/2gf8KsHitV5hFvem0z7NV2opyGghA28b/+NZMZluU
JHX1yj2ZNzwAMmwbiim0EgS78/sj7s7csU+T9Te8WlNHV+FXPUTw4Idw7w5ndKX0xq3s7zdGsiFG
/TcJW0EgUOMAu69ERSoPFnLWPDFn5ruf5X4WF+Xc/Cl+Yt5XXwydsCcngv9T9kJQiM+6LTEBo8eM
KcyPBNLO5S620EUP4k/UjAx1d7d0yrOssLAncEh5sqFhy+8mTBkrznUMHmMzrJdrdBW7bRGVC8q6
VmZeIYFyO09Wwp3hG0dVbqaaMccT9nOY87ERRKelebqO8amzklrIh4pgpg8paNK4LYDYmkiyuISh
Ju5icr6bl65CXGJl2E9K/nfyrgYEw3HLM02viX0jpKID9JzHVcbHCjSZDsEDpV/2zQyfpwEvAXUv
OMsiznu+dNsyk8ckiTHUqILb0RM6yVtd2g/hRfy8NNJDYdmvv0OLb5VP01oxAF96wjqWaBCVqOl2
eKxOLhI4O26kO/Md1BYj1YT12A6NLxgD8XNjF0y0HbZeWWE6VZzx2Uy6US1jQgkrC+YNWok8A6Pa
UUIxMLkO4qgZ+3nj7Jh0EZGd+PQS0GRHoxdtTn8wtTMusJvEb7LVg0BrENePR+xW1o3AU+VfwxhA
oMPh/hdlA3qCJ+iArwnZ4N5z1nCneXNdEtyQ0NoD9pGYtWWr6iObAI72Q7Oyjmm+5gcg4g6opTCu
svZGdJMX/9HFfMVzmoRjFvDVUAcoLJMC8p8OPo1s6JRkW08/JBk4moiJM03isIw1srM5VD3/IZbo
jcJPS+ZxJLNquMfwCDyNy88Bme0dCJMAQrWsChpwa2RZVveVvpedWbnTxuuv/8OPCeO4CyB7svGh
e11cLkz2ahGISmUfnxmhOLGsoLBJ6OvUEDnVj7CBDJHP2873oK3mCI2nq+W0FkkO/irvM39vPhXt
FPLTV7g6ck/+VwBu+xPF1w6icyapqTxE10ZUyLgEdBJA3pV3SuF6u8mmAIlN1xwAAACbdHgdGEWM
XAABplqAkAMATKzURbHEZ/sCAAAAAARZWg==
"""
