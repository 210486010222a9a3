"""Record keys renumbered by a keyed permutation, computed inside the SQL that writes each row.

Every record-key domain (a key and the columns that reference it) gets fresh round keys from
`secrets` for each build, held in memory only. A four-round balanced Feistel network over 62 bits
(two 31-bit halves; the round function is DuckDB's 64-bit `hash` of the half plus the round
key, cut to 31 bits) maps each key in [0, 2^62) to a distinct new key in the same range:

* the same source id gets the same new id wherever it appears in the build, so references follow
  their key without a lookup table, and no source order survives (the new ids are in a
  pseudorandom order);
* another build, or another study, draws other round keys: its ids are unrelated.

Why not a numbered permutation of 1..n: attaching one to each row costs a join against a table
as large as the output (positional or by id), which more than doubled the build time; the
permutation is computed per value here, in parallel, at the cost of large id values.

The round function is fast, not a cryptographic PRF. Inverting the ids needs the round keys,
which are never stored; recovering them would need source ids already paired with extract ids,
i.e. someone who can already link the rows by their content.
"""

from __future__ import annotations

import secrets

from .cohort import quote

ROUNDS = 4
HALF_BITS = 31
HALF_MASK = (1 << HALF_BITS) - 1
DOMAIN = 1 << (2 * HALF_BITS)  # keys in [0, DOMAIN)
OUT_OF_RANGE = "has a value outside 0 .. 2^62-1"


def new_round_keys() -> tuple[int, ...]:
    """Fresh round keys, below 2^62 so that half + key never overflows a BIGINT."""
    return tuple(secrets.randbits(2 * HALF_BITS) for _ in range(ROUNDS))


def renumbered_column(source: str) -> str:
    """The column `with_permuted_keys` adds for the new id of the source column `source`."""
    return f"_bm_new_{source}"


def with_permuted_keys(rows_sql: str, keys: list[tuple[str, tuple[int, ...], str]]) -> str:
    """`rows_sql` with, for each (source column, round keys, name for errors) of `keys`, the new
    id in the column `renumbered_column(source)`. NULL stays NULL; a value outside [0, 2^62)
    stops the build with an error naming the column (never the value).

    One nested SELECT per round, so that each half is computed once (an expression that
    repeated them would double in size with every round)."""
    if not keys:
        return rows_sql
    halves = []
    for number, (column, _, where) in enumerate(keys):
        value = f"CAST({quote(column)} AS BIGINT)"
        message = (f"record key {where} {OUT_OF_RANGE}; the extract renumbers record keys that are "
                   "non-negative integers below 2^62: fix the warehouse or the catalog").replace("'", "''")
        halves.append(f"CASE WHEN {value} IS NULL OR ({value} >= 0 AND {value} < {DOMAIN}) THEN {value} >> {HALF_BITS} "
                      f"ELSE error('{message}') END AS _bm_l{number}, {value} & {HALF_MASK} AS _bm_r{number}")
    query = f"SELECT *, {', '.join(halves)} FROM ({rows_sql})"
    for round_number in range(ROUNDS):
        swaps = []
        for number, (_, round_keys, _) in enumerate(keys):
            mixed = f"CAST(hash(_bm_r{number} + {int(round_keys[round_number])}) & {HALF_MASK} AS BIGINT)"
            swaps.append(f"_bm_r{number} AS _bm_l{number}, xor(_bm_l{number}, {mixed}) AS _bm_r{number}")
        query = f"SELECT * REPLACE ({', '.join(swaps)}) FROM ({query})"
    finals = ", ".join(f"(_bm_l{n} << {HALF_BITS}) | _bm_r{n} AS {quote(renumbered_column(column))}"
                       for n, (column, _, _) in enumerate(keys))
    excluded = ", ".join(f"_bm_l{n}, _bm_r{n}" for n in range(len(keys)))
    return f"SELECT * EXCLUDE ({excluded}), {finals} FROM ({query})"
