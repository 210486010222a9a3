"""The keyed permutation that renumbers record keys, run in DuckDB as the build runs it."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from bubble_manager.extract.renumber import DOMAIN, OUT_OF_RANGE, new_round_keys, with_permuted_keys


def renumbered(connection: duckdb.DuckDBPyConnection, rows_sql: str, keys: tuple[int, ...]) -> list[tuple]:
    query = with_permuted_keys(rows_sql, [("id", keys, "t.id")])
    return connection.execute(f"SELECT id, _bm_new_id FROM ({query}) ORDER BY id NULLS LAST").fetchall()


@pytest.fixture()
def connection():
    with duckdb.connect() as connection:
        yield connection


def test_every_id_gets_a_distinct_new_id_in_range(connection):
    sample = ("SELECT range AS id FROM range(0, 200000) UNION ALL "
              f"SELECT * FROM (VALUES ({DOMAIN - 1}::BIGINT), ({DOMAIN - 2}), (2147483647), (2147483648)) v(id)")
    pairs = np.array(renumbered(connection, sample, new_round_keys()), dtype=np.int64)
    assert len(np.unique(pairs[:, 1])) == len(pairs)
    assert pairs[:, 1].min() >= 0 and pairs[:, 1].max() < DOMAIN
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_the_new_order_is_unrelated_to_the_old_one_and_to_another_build(connection):
    sample = "SELECT range AS id FROM range(1, 50001)"
    keys, other = new_round_keys(), new_round_keys()
    first = np.array([new for _, new in renumbered(connection, sample, keys)])
    second = np.array([new for _, new in renumbered(connection, sample, other)])
    old = np.arange(1, 50001)

    def rank_correlation(a, b):
        return np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]

    assert abs(rank_correlation(old, first)) < 0.03
    assert abs(rank_correlation(first, second)) < 0.03
    assert not np.intersect1d(first, second).size  # 50,000 draws among 2^62: a match means a flaw
    again = np.array([new for _, new in renumbered(connection, sample, keys)])
    assert (again == first).all()  # same build, same keys: references follow their record


def test_null_stays_null_and_other_columns_pass_through(connection):
    query = with_permuted_keys("SELECT * FROM (VALUES (NULL::BIGINT, 'a'), (7, 'b')) t(id, label)",
                               [("id", new_round_keys(), "t.id")])
    result = dict(connection.execute(f"SELECT label, _bm_new_id FROM ({query})").fetchall())
    assert result["a"] is None and isinstance(result["b"], int)
    columns = [d[0] for d in connection.execute(f"SELECT * FROM ({query}) LIMIT 0").description]
    assert columns == ["id", "label", "_bm_new_id"]


@pytest.mark.parametrize("value", [-1, DOMAIN, 2**63 - 1])
def test_values_outside_the_domain_stop_the_query_without_quoting_them(connection, value):
    query = with_permuted_keys(f"SELECT {value}::BIGINT AS id", [("id", new_round_keys(), "visit.visit_id")])
    with pytest.raises(duckdb.InvalidInputException) as raised:
        connection.execute(query).fetchall()
    message = str(raised.value)
    assert f"record key visit.visit_id {OUT_OF_RANGE}" in message
    assert str(value) not in message.replace(OUT_OF_RANGE, "").replace("2^62", "")


def test_round_keys_are_fresh_and_fit_without_overflow():
    keys = [new_round_keys() for _ in range(20)]
    assert len({k for group in keys for k in group}) == 20 * len(keys[0])
    assert all(0 <= k < 2**62 for group in keys for k in group)
