"""The automatic checks on real files, parsed in the sandboxed child (bubblewrap, as nobody)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import duckdb
import pytest

from bubble_manager.airlock.sandbox import ParserError, ParserInput, run_parser
from bubble_manager.airlock.settings import AirlockSettings
from bubble_manager.airlock.operations import parser_order

SETTINGS = AirlockSettings()


def check(files: dict[str, Path | bytes], tmp_path: Path, settings: AirlockSettings = SETTINGS,
          counts: dict[str, tuple[str, ...]] | None = None) -> dict[str, dict]:
    inputs = []
    for name in parser_order(list(files)):
        source = files[name]
        if isinstance(source, bytes):
            path = tmp_path / name.replace("/", "_")
            path.write_bytes(source)
            source = path
        inputs.append(ParserInput(name, source, source.stat().st_size, (counts or {}).get(name, ())))
    return run_parser(settings, inputs)


def acro_request(folder: Path) -> dict[str, Path]:
    return {f"acro/{p.name}": p for p in folder.iterdir() if p.is_file()}


def flags(report: dict) -> dict[str, int]:
    return {flag["check"]: flag["count"] for flag in report["flags"]}


def test_acro_table_with_a_cell_of_three_is_flagged(acro_outputs, tmp_path):
    reports = check(acro_request(acro_outputs), tmp_path)
    table = reports["acro/output_0_0.csv"]
    assert table["category"] == "acro-table" and table["verdict"] == "flagged"
    assert table["acro"]["status"] == "fail" and table["acro"]["statbarn"] == "Frequencies"
    small = next(f for f in table["flags"] if f["check"] == "small-cell")
    assert small["count"] == 1 and small["cells"] == [[2, 2, 1]]  # second row (M), column 'no'
    rows = list(csv.reader((acro_outputs / "output_0_0.csv").read_text().splitlines()))
    assert rows[0][1] == "no" and rows[2][0] == "M" and rows[2][1] == "3"
    assert flags(table)["acro-threshold"] == 1  # ACRO's own verdict, on the same cell
    assert next(f for f in table["flags"] if f["check"] == "acro-threshold")["cells"] == [[2, 2, 1]]


def test_acro_table_with_all_cells_of_ten_or_more_passes(acro_outputs, tmp_path):
    reports = check(acro_request(acro_outputs), tmp_path)
    table = reports["acro/output_1_0.csv"]
    values = [int(v) for row in csv.reader((acro_outputs / "output_1_0.csv").read_text().splitlines()[1:])
              for v in row[1:]]
    assert min(values) >= 10
    assert table["verdict"] == "pass" and table["flags"] == [] and table["acro"]["status"] == "pass"
    assert table["tables"][0]["count_columns"] == [2, 3]


def test_dominance_comes_from_acro_where_it_has_the_contributions(acro_outputs, tmp_path):
    table = check(acro_request(acro_outputs), tmp_path)["acro/output_2_0.csv"]
    assert table["verdict"] == "flagged" and "dominance" in flags(table)
    assert "small-cell" not in flags(table)  # means are not counts: no small-cell check on their values
    assert table["acro"]["statbarn"] == "LinearAggregations"


def test_acro_figures_and_do_not_release_outputs(acro_outputs, tmp_path):
    reports = check(acro_request(acro_outputs), tmp_path)
    assert reports["acro/histogram_0.png"]["category"] == "figure"
    assert reports["acro/histogram_0.png"]["verdict"] == "flagged"  # ACRO failed its threshold check
    assert "acro-do-not-release" in flags(reports["acro/session_summary.json"])
    assert reports["acro/results.json"]["category"] == "acro-results"


def test_png_goes_to_manual_review(acro_outputs, tmp_path):
    figure = acro_outputs.parent / "figure.png"
    assert figure.read_bytes().startswith(b"\x89PNG")
    report = check({"figure.png": figure}, tmp_path)["figure.png"]
    assert report["category"] == "figure" and report["verdict"] == "manual" and report["flags"] == []


def test_a_file_with_a_pseudonym_is_flagged(tmp_path, pseudonym):
    table = f"age_band,n,example\n40-49,25,none\n50-59,31,{pseudonym}\n".encode()
    reports = check({"table.csv": table, "notes.txt": f"outlier: {pseudonym}\n".encode()}, tmp_path,
                    counts={"table.csv": ("n",)})
    assert reports["table.csv"]["verdict"] == "flagged"
    found = next(f for f in reports["table.csv"]["flags"] if f["check"] == "pseudonym")
    assert found["cells"] == [[2, 3, 1]]
    assert pseudonym not in json.dumps(reports)  # reports point at cells, never quote them
    assert "pseudonym" in flags(reports["notes.txt"])


def test_a_lookalike_with_a_wrong_check_character_is_not_a_pseudonym(tmp_path, pseudonym):
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    wrong = pseudonym[:-1] + alphabet[(alphabet.index(pseudonym[-1]) + 1) % 32]
    report = check({"table.csv": f"code,n\n{wrong},40\n".encode()}, tmp_path, counts={"table.csv": ("n",)})
    assert report["table.csv"]["verdict"] == "pass"


def test_declared_count_columns_of_a_hand_made_table(tmp_path):
    table = b"region;patients;mean_age\nnorth;120;61.2\nsouth;4;58.0\n"
    report = check({"by_region.csv": table}, tmp_path, counts={"by_region.csv": ("patients",)})["by_region.csv"]
    assert flags(report) == {"small-cell": 1} and report["flags"][0]["cells"] == [[2, 2, 1]]
    undeclared = check({"by_region.csv": table}, tmp_path)["by_region.csv"]
    assert undeclared["verdict"] == "manual" and "no column declared as counts" in undeclared["notes"][-1]


def test_threshold_is_configurable(tmp_path):
    table = b"group,n\na,12\nb,15\n"
    strict = AirlockSettings(small_cell_threshold=15)
    assert check({"t.csv": table}, tmp_path, strict, {"t.csv": ("n",)})["t.csv"]["verdict"] == "flagged"
    assert check({"t.csv": table}, tmp_path, SETTINGS, {"t.csv": ("n",)})["t.csv"]["verdict"] == "pass"


def test_dates_at_day_resolution_and_free_text(tmp_path):
    table = (b"month,n,comment\n2021-03,40,none\n2021-03-14,50,"
             b"\"patient came back after the fall and told the nurse about her neighbour\"\n")
    report = check({"t.csv": table}, tmp_path, counts={"t.csv": ("n",)})["t.csv"]
    assert flags(report) == {"day-date": 1, "free-text": 1}


def test_parquet_and_xlsx_tables(tmp_path, pseudonym):
    parquet = tmp_path / "source.parquet"
    with duckdb.connect() as db:
        db.execute(f"COPY (SELECT * FROM (VALUES ('a', 40, DATE '2021-01-05'), ('b', 7, DATE '2021-02-01')) "
                   f"t(grp, n, first_seen)) TO '{parquet}' (FORMAT parquet)")
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["grp", "n"])
    sheet.append(["a", 30])
    sheet.append([pseudonym, 12])
    buffer = io.BytesIO()
    workbook.save(buffer)
    reports = check({"t.parquet": parquet, "t.xlsx": buffer.getvalue()}, tmp_path,
                    counts={"t.parquet": ("n",), "t.xlsx": ("n",)})
    assert flags(reports["t.parquet"]) == {"small-cell": 1, "day-date": 2}
    assert flags(reports["t.xlsx"]) == {"pseudonym": 1}


def test_content_must_match_the_name(tmp_path):
    reports = check({"plot.png": b"<svg onload='alert(1)'/>", "t.parquet": b"a,b\n1,2\n"}, tmp_path)
    assert all(r["verdict"] == "flagged" and flags(r) == {"format": 1} for r in reports.values())


def test_unknown_formats_and_unreadable_files(tmp_path):
    reports = check({"model.rds": b"\x58\x0a\x00\x00\x00\x03", "bad.xlsx": b"PK\x03\x04garbage",
                     "results.json": b'{"results": [1, 2]', "data.json": b'{"a": "text"}'}, tmp_path)
    assert reports["model.rds"]["verdict"] == "manual" and reports["model.rds"]["category"] == "unknown"
    assert flags(reports["bad.xlsx"]) == {"unreadable": 1}
    assert flags(reports["results.json"]) == {"unreadable": 1}
    assert reports["data.json"]["verdict"] == "manual"


def test_a_zip_bomb_workbook_is_refused_before_it_is_expanded(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            zeros = b"0" * (1 << 20)
            for _ in range(256):
                member.write(zeros)
    report = check({"bomb.xlsx": buffer.getvalue()}, tmp_path)["bomb.xlsx"]
    assert report["verdict"] == "flagged" and "zip bomb" in report["flags"][0]["message"]


def test_a_table_too_large_to_check_goes_to_manual_review(tmp_path):
    rows = "\n".join(f"{i},{i}" for i in range(2000))
    settings = AirlockSettings(max_cells_checked=1000)
    report = check({"big.csv": f"a,n\n{rows}\n".encode()}, tmp_path, settings, {"big.csv": ("n",)})["big.csv"]
    assert report["verdict"] == "manual" and "too large" in report["notes"][-1]


def test_the_parser_is_stopped_at_its_time_limit(tmp_path):
    rows = "\n".join(",".join(str(i + j) for j in range(20)) for i in range(200_000))
    settings = AirlockSettings(parser_timeout_seconds=1, max_cells_checked=10**8)
    with pytest.raises(ParserError, match="time limit"):
        check({"slow.csv": rows.encode()}, tmp_path, settings, {"slow.csv": tuple(str(i) for i in range(20))})


def test_the_parser_memory_limit_holds(tmp_path):
    rows = "\n".join(",".join(f"{i}:{j}" for j in range(50)) for i in range(100_000))
    settings = AirlockSettings(parser_memory_bytes=300 << 20, max_cells_checked=10**8)
    try:
        report = check({"wide.csv": rows.encode()}, tmp_path, settings)["wide.csv"]
    except ParserError as error:
        assert "not checked" in str(error)
    else:
        assert report["verdict"] == "flagged" and "memory" in report["flags"][0]["message"]


@pytest.mark.parametrize("mode", ["bwrap", "rlimits"])
def test_both_sandbox_modes_give_the_same_reports(acro_outputs, tmp_path, mode):
    reports = check(acro_request(acro_outputs), tmp_path, AirlockSettings(parser_sandbox=mode))
    assert reports["acro/output_0_0.csv"]["verdict"] == "flagged"
    assert reports["acro/output_1_0.csv"]["verdict"] == "pass"
