"""Bech32 encoding as age uses it: BIP 173 without the 90-character length limit.

age encodes keys as Bech32 (https://github.com/bitcoin/bips/blob/master/bip-0173.mediawiki)
with the original checksum constant (not Bech32m, BIP 350) and no limit on the length
of the data part (https://c2sp.org/age, "Conventions"). A string is either all lower
case or all upper case; the checksum is always computed over the lower-case form.

Only what age needs is here: 8-bit payloads in, 8-bit payloads out.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {char: value for value, char in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LENGTH = 6
_BECH32_CONSTANT = 1


class Bech32Error(ValueError):
    """The string is not valid Bech32 (what is wrong is in the message)."""


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _expand_hrp(hrp: str) -> list[int]:
    codes = [ord(char) for char in hrp]
    return [code >> 5 for code in codes] + [0] + [code & 31 for code in codes]


def _create_checksum(hrp: str, data: list[int]) -> list[int]:
    polymod = _polymod(_expand_hrp(hrp) + data + [0] * _CHECKSUM_LENGTH) ^ _BECH32_CONSTANT
    return [(polymod >> 5 * (5 - index)) & 31 for index in range(_CHECKSUM_LENGTH)]


def _bytes_to_5bit(data: bytes) -> list[int]:
    accumulator, bits, out = 0, 0, []
    for byte in data:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((accumulator >> bits) & 31)
    if bits:
        out.append((accumulator << (5 - bits)) & 31)
    return out


def _5bit_to_bytes(groups: list[int]) -> bytes:
    accumulator, bits, out = 0, 0, bytearray()
    for group in groups:
        accumulator = (accumulator << 5) | group
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    # BIP 173: at most 4 bits of zero padding; anything else is a non-canonical encoding.
    if bits >= 5:
        raise Bech32Error("invalid padding: more than 4 bits left over")
    if accumulator & ((1 << bits) - 1):
        raise Bech32Error("invalid padding: non-zero padding bits")
    return bytes(out)


def _check_hrp(hrp: str) -> None:
    if not hrp:
        raise Bech32Error("empty human-readable part")
    if any(not 33 <= ord(char) <= 126 for char in hrp):
        raise Bech32Error("human-readable part has characters outside ASCII 33-126")


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under ``hrp``; the case of ``hrp`` sets the case of the result."""
    _check_hrp(hrp)
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise Bech32Error("mixed-case human-readable part")
    groups = _bytes_to_5bit(data)
    lower_hrp = hrp.lower()
    body = "".join(CHARSET[g] for g in groups + _create_checksum(lower_hrp, groups))
    text = f"{lower_hrp}1{body}"
    return text.upper() if hrp != lower_hrp else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into ``(hrp, data)``; ``hrp`` keeps the string's case.

    Raises :class:`Bech32Error` for mixed case, characters outside the alphabet,
    a bad checksum or non-canonical padding.
    """
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    separator = text.rfind("1")
    if separator < 1:
        raise Bech32Error("missing separator '1' or empty human-readable part")
    if len(text) - separator - 1 < _CHECKSUM_LENGTH:
        raise Bech32Error("data part shorter than the 6-character checksum")
    hrp = text[:separator]
    _check_hrp(hrp)
    lower = text.lower()
    try:
        values = [_CHARSET_INDEX[char] for char in lower[separator + 1 :]]
    except KeyError as missing:
        raise Bech32Error(f"invalid data character {missing.args[0]!r}") from None
    if _polymod(_expand_hrp(lower[:separator]) + values) != _BECH32_CONSTANT:
        raise Bech32Error("invalid checksum")
    return hrp, _5bit_to_bytes(values[:-_CHECKSUM_LENGTH])
