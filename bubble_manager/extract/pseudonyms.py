"""Study pseudonyms and date offsets: random draws from `os.urandom`, never derived from an id.

A pseudonym is ``PSN`` + 16 Crockford base32 characters (80 random bits) + 1 check character,
e.g. ``PSN4K7M2Q9X4W1C8D3F5Z``. The fixed prefix and the check character let the airlock spot
pseudonyms in outputs (`PSEUDONYM_PATTERN`, `is_pseudonym`) with few false alarms.
"""

from __future__ import annotations

import os
import re

import numpy as np

PREFIX = "PSN"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
BODY_LENGTH = 16
CHECK_MODULUS = 31  # prime: every single-character change and adjacent swap changes the check
PSEUDONYM_PATTERN = re.compile(rf"\b{PREFIX}[{ALPHABET}]{{{BODY_LENGTH + 1}}}\b")
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_WEIGHTS = np.arange(1, BODY_LENGTH + 1, dtype=np.int64)


def _check_values(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.int64) * _WEIGHTS).sum(axis=-1) % CHECK_MODULUS


def _five_bit_groups(raw: np.ndarray) -> np.ndarray:
    """Rows of 10 random bytes as rows of 16 values in 0..31 (each half: 40 bits, 8 groups)."""
    halves = []
    shifts = np.arange(35, -1, -5, dtype=np.uint64)
    for start in (0, 5):
        number = np.zeros(len(raw), dtype=np.uint64)
        for index in range(start, start + 5):
            number = (number << np.uint64(8)) | raw[:, index].astype(np.uint64)
        halves.append((number[:, None] >> shifts) & np.uint64(31))
    return np.concatenate(halves, axis=1).astype(np.uint8)


def new_pseudonyms(count: int, taken: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """`count` distinct fresh pseudonyms, none of them in `taken`."""
    result: list[str] = []
    seen = set(taken)
    while len(result) < count:
        missing = count - len(result)
        raw = np.frombuffer(os.urandom(10 * missing), dtype=np.uint8).reshape(missing, 10)
        values = _five_bit_groups(raw)
        symbols = np.concatenate([values, _check_values(values)[:, None].astype(np.uint8)], axis=1)
        text = _ALPHABET_BYTES[symbols]
        prefix = np.frombuffer(PREFIX.encode("ascii"), dtype=np.uint8)
        rows = np.concatenate([np.broadcast_to(prefix, (missing, len(PREFIX))), text], axis=1)
        tokens = np.ascontiguousarray(rows).view(f"S{rows.shape[1]}").ravel().astype(str).tolist()
        fresh = set(tokens)
        if len(fresh) == len(tokens) and seen.isdisjoint(fresh):
            seen |= fresh
            result.extend(tokens)
            continue
        for pseudonym in tokens:  # 80 random bits: a repeat is astronomically rare, but never kept
            if pseudonym not in seen:
                seen.add(pseudonym)
                result.append(pseudonym)
    return result


def is_pseudonym(text: str) -> bool:
    """True if `text` is a well-formed pseudonym with a correct check character."""
    if len(text) != len(PREFIX) + BODY_LENGTH + 1 or not text.startswith(PREFIX):
        return False
    try:
        values = np.array([ALPHABET.index(c) for c in text[len(PREFIX):]], dtype=np.int64)
    except ValueError:
        return False
    return int(_check_values(values[:BODY_LENGTH])) == int(values[BODY_LENGTH])


def new_date_offsets(count: int, max_days: int) -> np.ndarray:
    """`count` offsets uniform over [-max_days, -1] and [1, max_days], from `os.urandom`."""
    if max_days < 1:
        raise ValueError("the date shift range must be at least 1 day")
    span = 2 * max_days
    limit = (2**32 // span) * span  # rejection above it keeps the draw unbiased
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < count:
        draws = np.frombuffer(os.urandom(4 * (count - len(chosen)) + 64), dtype=np.uint32).astype(np.int64)
        chosen = np.concatenate([chosen, draws[draws < limit] % span])
    chosen = chosen[:count]
    return np.where(chosen < max_days, chosen - max_days, chosen - max_days + 1).astype(np.int32)
