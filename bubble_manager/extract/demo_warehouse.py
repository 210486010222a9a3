"""Synthetic OMOP-like health data warehouse for demonstrations, tests and benchmarks.

`build_demo_warehouse` writes a DuckDB file whose tables and column types are exactly those of
the packaged demo catalog (`bubble_manager/data/demo_catalog.yaml`), and copies that catalog
beside it as ``<stem>.catalog.yaml``. No row describes a real person, but the data look real
enough to exercise the extract: a French-like population pyramid and postcodes, skewed visit
counts, Zipf-like diagnoses with type 2 diabetes and hypertension at plausible prevalences,
treatments and lab values that follow them, free-text notes that sometimes name the patient,
direct identifiers (name, NIR, address, phone, e-mail) and an opt-out register.

Every random draw comes from one ``numpy.random.Generator(PCG64(seed))``, consumed in a fixed
order, batch after batch of persons: the same seed (and batch size) gives the same rows. DuckDB
only formats strings and writes; it never draws random numbers. Identifiers are keyed
permutations of row counters, so they are unique without following the order of the rows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
from tqdm import tqdm

from bubble_manager.catalog import Catalog, load_catalog
from bubble_manager.extract import demo_vocabulary as vocab

PACKAGED_CATALOG = Path(__file__).resolve().parent.parent / "data" / "demo_catalog.yaml"
DEFAULT_BATCH_PERSONS = 100_000
MAX_EVENTS_PER_PERSON = 1000.0


@dataclass(frozen=True)
class WarehouseSummary:
    """What `build_demo_warehouse` wrote."""

    path: Path
    catalog_path: Path
    rows: dict[str, int]
    seconds: float
    persons: int
    seed: int

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def catalog_path_for(warehouse_path: str | Path) -> Path:
    """The catalog YAML that belongs beside a warehouse file: ``<stem>.catalog.yaml``."""
    path = Path(warehouse_path)
    return path.with_name(f"{path.stem}.catalog.yaml")


def build_demo_warehouse(
    out: str | Path,
    persons: int,
    seed: int = 0,
    progress: bool = True,
    events_per_person: float = 25.0,
    *,
    overwrite: bool = False,
    batch_persons: int = DEFAULT_BATCH_PERSONS,
) -> WarehouseSummary:
    """Write a synthetic warehouse of `persons` patients to `out` and its catalog beside it.

    `events_per_person` is the mean number of condition, drug and measurement rows per person
    (visits and notes come on top). The file appears at `out` only once complete (temporary
    file in the same folder, fsync, rename); on any error or interruption nothing is left at
    `out`, and no temporary file either. An existing `out` is replaced only with `overwrite`.
    """
    started = time.perf_counter()
    out = Path(out)
    persons, seed, events_per_person, batch_persons = _checked_arguments(persons, seed, events_per_person, batch_persons)
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the path of the warehouse file to write, such as {out / 'warehouse.duckdb'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --force (overwrite=True) to replace it, or choose another path")
    catalog = load_catalog(PACKAGED_CATALOG)
    catalog_out = catalog_path_for(out)
    folder = out.parent if str(out.parent) else Path(".")
    created_folder = _make_folder(folder)
    token = secrets.token_hex(6)
    tmp_db = folder / f".{out.name}.{token}.tmp"
    tmp_catalog = folder / f".{catalog_out.name}.{token}.tmp"
    catalog_existed = catalog_out.exists()
    catalog_placed = False
    try:
        try:
            _write_synced(tmp_catalog, PACKAGED_CATALOG.read_bytes())
        except OSError as error:
            raise ValueError(
                f"cannot write in {folder}: {error.strerror or error}; choose a folder you can write to or fix its permissions"
            ) from None
        rows = _write_warehouse(tmp_db, catalog, persons, seed, events_per_person, batch_persons, progress)
        _fsync_path(tmp_db)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} appeared while building; pass --force (overwrite=True) to replace it")
        os.replace(tmp_catalog, catalog_out)
        catalog_placed = True
        os.replace(tmp_db, out)
        _fsync_path(folder)
    except BaseException:
        _remove_quietly(tmp_db, Path(f"{tmp_db}.wal"), Path(f"{tmp_db}.tmp"), tmp_catalog)
        if catalog_placed and not catalog_existed and not out.exists():
            _remove_quietly(catalog_out)
        if created_folder is not None:
            _remove_quietly(created_folder)  # created by this call: holds only our temporary files
        raise
    return WarehouseSummary(out, catalog_out, rows, time.perf_counter() - started, persons, seed)


def _checked_arguments(persons: object, seed: object, events: object, batch: object) -> tuple[int, int, float, int]:
    def whole(name: str, value: object, minimum: int, fix: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number, not {value!r}; {fix}")  # noqa: TRY004 - bad input is a ValueError here
        if value < minimum:
            raise ValueError(f"{name} is {value}; {fix}")
        return int(value)

    persons = whole("persons", persons, 1, "ask for at least 1 person (e.g. --persons 1000)")
    seed = whole("seed", seed, 0, "use a seed of 0 or more")
    batch = whole("batch_persons", batch, 1, "use a batch of at least 1 person")
    if isinstance(events, bool) or not isinstance(events, (int, float, np.integer, np.floating)):
        raise ValueError(f"events_per_person must be a number, not {events!r}; the default is 25")  # noqa: TRY004
    events = float(events)
    if not (0.0 < events <= MAX_EVENTS_PER_PERSON):
        raise ValueError(f"events_per_person is {events}; use a number above 0 and at most {MAX_EVENTS_PER_PERSON:g}")
    return persons, seed, events, batch


def _make_folder(folder: Path) -> Path | None:
    """Create `folder` and its missing parents; return the outermost one created, if any."""
    absolute = folder.absolute()
    missing = [path for path in (absolute, *absolute.parents) if not path.exists()]
    try:
        absolute.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the folder {folder}: {error.strerror or error}; choose another output path") from None
    return missing[-1] if missing else None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


# --- Writing ---------------------------------------------------------------------------------


def _write_warehouse(
    path: Path,
    catalog: Catalog,
    persons: int,
    seed: int,
    events_per_person: float,
    batch_persons: int,
    progress: bool,
) -> dict[str, int]:
    """Create the catalog's tables in a new DuckDB file and fill them batch by batch."""
    generator = WarehouseGenerator(seed=seed, events_per_person=events_per_person)
    statements = {name: _insert_statement(catalog, name, expressions) for name, expressions in vocab.COLUMN_SQL.items()}
    missing = set(catalog.tables) - set(statements)
    if missing:
        raise RuntimeError(f"the demo generator does not fill the catalog table(s) {sorted(missing)}")
    rows = dict.fromkeys(catalog.tables, 0)
    con = duckdb.connect(str(path))
    try:
        for table in catalog.tables.values():
            columns = ", ".join(f"{column.name} {column.type}" for column in table.columns.values())
            con.execute(f"CREATE TABLE {table.name} ({columns})")
        for name, values in vocab.VOCABULARY_MACROS.items():
            con.execute(f"CREATE TEMP MACRO {name}(i) AS ({vocab.sql_list(values)})[i + 1]")
        con.execute(f"CREATE TEMP MACRO phone_text(prefix, digits) AS ({vocab.PHONE_SQL})")
        con.execute(f"CREATE TEMP MACRO day_date(day) AS ({vocab.DAY_DATE_SQL})")
        # One thread draws the next batch while DuckDB writes this one (both release the GIL);
        # batches are still drawn one after the other from the same generator.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-warehouse")
        bar = tqdm(total=persons, unit=" persons", unit_scale=True, desc="demo warehouse", file=sys.stderr, disable=not progress)
        try:
            pending = pool.submit(generator.batch, 0, min(batch_persons, persons))
            for first in range(0, persons, batch_persons):
                batch = pending.result()
                following = first + batch_persons
                if following < persons:
                    pending = pool.submit(generator.batch, following, min(batch_persons, persons - following))
                _insert_batch(con, statements, batch)
                for table, columns in batch.items():
                    rows[table] += len(next(iter(columns.values())))
                bar.update(len(batch["person"]["person_id"]))
        finally:
            bar.close()
            pool.shutdown(wait=True, cancel_futures=True)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return rows


def _insert_batch(con: duckdb.DuckDBPyConnection, statements: dict[str, str], batch: dict[str, dict[str, np.ndarray]]) -> None:
    for table, columns in batch.items():
        con.register("batch", columns)
        try:
            con.execute(statements[table])
        finally:
            con.unregister("batch")


def _insert_statement(catalog: Catalog, table: str, expressions: dict[str, str]) -> str:
    columns = list(catalog.table(table).columns)
    if list(expressions) != columns:
        raise RuntimeError(f"the demo generator's columns for {table} {list(expressions)} differ from the catalog's {columns}")
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(expressions.values())} FROM batch"


# --- Generation ------------------------------------------------------------------------------

FIRST_DATE = date(2010, 1, 1)
LAST_DATE = date(2025, 12, 31)
_EPOCH = date(1970, 1, 1)
_FIRST_DAY = (FIRST_DATE - _EPOCH).days
_LAST_DAY = (LAST_DATE - _EPOCH).days
_OPT_OUT_FROM_DAY = (date(2016, 1, 1) - _EPOCH).days
_DAYS_PER_YEAR = 365.2425
EVENTS_PER_VISIT = 5.0
EVENT_SHARES = (0.25, 0.33, 0.42)  # conditions, drugs, measurements
VISIT_DISPERSION = 0.6  # gamma shape of the visit rate: small means many with few visits, some with many
OPT_OUT_SHARE = 0.005
_RECORD_TABLES = ("visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "note")

_AGE_BAND_CDF = vocab.cumulative(vocab.AGE_BAND_POPULATION)
_FEMALE_SHARE = np.asarray(vocab.AGE_BAND_FEMALE_SHARE)
_DIABETES_FEMALE_RATIO = (1 - 0.485 * vocab.DIABETES_MALE_RATIO) / 0.515  # keeps the mean prevalence
_DEPARTEMENT_CDF = vocab.cumulative(vocab.DEPARTEMENTS.weights)
_BIRTH_DEPARTEMENT_CDF = vocab.cumulative(np.where(vocab.DEPARTEMENTS.codes == 20, 0.0, vocab.DEPARTEMENTS.weights))
_BIRTH_COUNTRY_CDF = vocab.cumulative(vocab.BIRTH_COUNTRY_WEIGHTS)
_FEMALE_NAME_CDF = vocab.cumulative(vocab.zipf_weights(len(vocab.FEMALE_GIVEN_NAMES), 0.7))
_MALE_NAME_CDF = vocab.cumulative(vocab.zipf_weights(len(vocab.MALE_GIVEN_NAMES), 0.7))
_FAMILY_NAME_CDF = vocab.cumulative(vocab.zipf_weights(len(vocab.FAMILY_NAMES), 0.6))
_STREET_CDF = vocab.cumulative(vocab.zipf_weights(len(vocab.STREET_NAMES), 0.5))
_EMAIL_CDF = vocab.cumulative(vocab.EMAIL_DOMAIN_WEIGHTS)
_PHONE_PREFIX_CDF = vocab.cumulative(vocab.PHONE_PREFIX_WEIGHTS)
_VISIT_TYPE_CDF = vocab.cumulative(vocab.VISIT_TYPE_WEIGHTS)
_VISIT_INTENSITY = np.asarray(vocab.VISIT_EVENT_INTENSITY)
_DRUG_CLASSES = (vocab.GENERAL_DRUGS, vocab.DIABETES_DRUGS, vocab.ANTIHYPERTENSIVE_DRUGS, vocab.STATINS)
_DRUG_CLASS_OFFSETS = np.cumsum([0] + [len(drugs) for drugs in _DRUG_CLASSES])
_DRUG_CLASS_CDFS = [vocab.cumulative(vocab.zipf_weights(len(drugs), 1.0, 1.0)) for drugs in _DRUG_CLASSES]
_NOTE_DRUG_CDF = vocab.cumulative(vocab.zipf_weights(len(vocab.ALL_DRUGS)))
_DRUG_QUANTITIES = np.asarray(vocab.DRUG_QUANTITIES)
_DRUG_DAYS = np.asarray(vocab.DRUG_DAYS_SUPPLY)
_CONDITION_CDFS_BY_SEX = (vocab.CONDITIONS.male_cdf, vocab.CONDITIONS.female_cdf)
_NOTE_TEMPLATE_CDFS = np.array([vocab.cumulative([w[t] for _, w in vocab.NOTE_TEMPLATES]) for t in range(3)])
_NOTE_TYPES = np.asarray(vocab.NOTE_TYPE_BY_VISIT, dtype=np.int32)
_VISIT_CONCEPTS = np.asarray(vocab.VISIT_CONCEPTS, dtype=np.int32)


def _draw(rng: np.random.Generator, cdf: np.ndarray, count: int) -> np.ndarray:
    """`count` indices drawn from the distribution with cumulative weights `cdf`."""
    return np.searchsorted(cdf, rng.random(count), side="right")


def _draw_per_row(rng: np.random.Generator, cdfs: Sequence[np.ndarray], row_cdf: np.ndarray) -> np.ndarray:
    """One index per row, drawn from the distribution `cdfs[row_cdf[row]]`."""
    chance = rng.random(len(row_cdf))
    drawn = np.empty(len(row_cdf), dtype=np.int64)
    for index, cdf in enumerate(cdfs):
        rows = row_cdf == index
        drawn[rows] = np.searchsorted(cdf, chance[rows], side="right")
    return drawn


class IdScrambler:
    """A keyed permutation of 0..limit-1 (balanced Feistel network, cycle walking), plus offset.

    Consecutive counters map to unrelated, distinct numbers, so ids reveal neither row order
    nor row counts, and batches never collide.
    """

    def __init__(self, keys: np.ndarray, bits: int, limit: int, offset: int) -> None:
        if bits % 2 or limit > 1 << bits:
            raise ValueError("bits must be even and 2**bits at least limit")
        self.keys = [np.uint64(key) for key in keys]
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.limit = limit
        self.offset = offset

    def _permute(self, values: np.ndarray) -> np.ndarray:
        left, right = values >> self.half, values & self.mask
        for key in self.keys:
            mixed = ((right ^ key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - int(self.half))
            left, right = right, left ^ (mixed & self.mask)
        return (left << self.half) | right

    def __call__(self, start: int, count: int) -> np.ndarray:
        if start + count > self.limit:
            raise ValueError(f"only {self.limit} distinct ids are available")
        values = self._permute(np.arange(start, start + count, dtype=np.uint64))
        outside = np.flatnonzero(values >= self.limit)
        while outside.size:
            values[outside] = self._permute(values[outside])
            outside = outside[values[outside] >= self.limit]
        return values.astype(np.int64) + self.offset


@dataclass(frozen=True)
class _Persons:
    ids: np.ndarray
    female: np.ndarray
    age: np.ndarray  # whole years on LAST_DATE
    birth_day: np.ndarray
    departement: np.ndarray  # index into vocab.DEPARTEMENTS
    postcode: np.ndarray
    chronic: tuple[np.ndarray, np.ndarray, np.ndarray]  # diabetes, hypertension, hypercholesterolemia


@dataclass(frozen=True)
class _Visits:
    ids: np.ndarray
    person: np.ndarray  # index into the batch's persons
    visit_type: np.ndarray  # index into vocab.VISIT_CONCEPTS
    start: np.ndarray
    end: np.ndarray
    first: np.ndarray  # per person: index of their first visit
    count: np.ndarray  # per person: number of visits


class WarehouseGenerator:
    """Draws the warehouse's rows, batch of persons after batch, from one seeded generator."""

    def __init__(self, seed: int, events_per_person: float) -> None:
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.events_per_person = events_per_person
        self.visits_per_person = max(1.0, events_per_person / EVENTS_PER_VISIT)
        keys = self.rng.integers(0, 2**64 - 1, size=(1 + len(_RECORD_TABLES), 4), dtype=np.uint64)
        self.person_ids = IdScrambler(keys[0], bits=30, limit=900_000_000, offset=100_000_000)
        self.record_ids = {
            table: IdScrambler(key, bits=40, limit=900_000_000_000, offset=100_000_000_000)
            for table, key in zip(_RECORD_TABLES, keys[1:])
        }
        self.record_counts = dict.fromkeys(_RECORD_TABLES, 0)

    def _next_ids(self, table: str, count: int) -> np.ndarray:
        ids = self.record_ids[table](self.record_counts[table], count)
        self.record_counts[table] += count
        return ids

    def batch(self, first: int, count: int) -> dict[str, dict[str, np.ndarray]]:
        """Rows of every table for persons first..first+count-1, as NumPy columns per table."""
        persons = self._persons(first, count)
        visits = self._visits(persons)
        conditions, drugs, measurements = self._events(persons, visits)
        identity = self._identity(persons)
        return {
            "person": {
                "person_id": persons.ids,
                "female": persons.female,
                "birth_day": persons.birth_day,
                "postcode": persons.postcode,
            },
            "visit_occurrence": {
                "visit_occurrence_id": visits.ids,
                "person_id": persons.ids[visits.person],
                "visit_concept_id": _VISIT_CONCEPTS[visits.visit_type],
                "start_day": visits.start,
                "end_day": visits.end,
                "care_site_id": ((visits.visit_type + 1) * 100 + self.rng.integers(1, vocab.CARE_SITES_PER_VISIT_TYPE + 1, len(visits.ids))).astype(np.int32),
                "visit_type": visits.visit_type,
            },
            "condition_occurrence": conditions,
            "drug_exposure": drugs,
            "measurement": measurements,
            "note": self._notes(persons, visits, identity),
            "identity": identity,
            "opt_out": self._opt_out(persons),
        }

    def _persons(self, first: int, count: int) -> _Persons:
        rng = self.rng
        band = _draw(rng, _AGE_BAND_CDF, count)
        age = np.minimum(band * 5 + rng.integers(0, 5, count), 100)
        birth_day = _LAST_DAY - np.floor((age + rng.random(count)) * _DAYS_PER_YEAR).astype(np.int64)
        female = rng.random(count) < _FEMALE_SHARE[band]
        departement = _draw(rng, _DEPARTEMENT_CDF, count)
        code = vocab.DEPARTEMENTS.codes[departement]
        local = rng.integers(0, 100, count)
        postcode = np.select(
            [code > 900, code == 75], [code * 100 + local % 10 * 10, 75001 + local % 20], code * 1000 + local * 10
        )
        anchors = vocab.CHRONIC_AGE_ANCHORS
        sex_ratio = np.where(female, _DIABETES_FEMALE_RATIO, vocab.DIABETES_MALE_RATIO)
        diabetes = rng.random(count) < np.interp(age, anchors, vocab.DIABETES_PREVALENCE) * sex_ratio
        hypertension = rng.random(count) < np.interp(age, anchors, vocab.HYPERTENSION_PREVALENCE) + 0.25 * diabetes
        lipids = rng.random(count) < np.interp(age, anchors, vocab.HYPERCHOLESTEROLEMIA_PREVALENCE) + 0.2 * diabetes
        return _Persons(
            self.person_ids(first, count), female, age, birth_day, departement, postcode, (diabetes, hypertension, lipids)
        )

    def _visits(self, persons: _Persons) -> _Visits:
        rng = self.rng
        count = len(persons.ids)
        diabetes, hypertension, _ = persons.chronic
        intensity = (0.55 + 1.4 * (persons.age / 100) ** 2 + 0.5 * (persons.age < 2)) * (1 + 0.4 * diabetes + 0.15 * hypertension)
        extra = self.visits_per_person - 1
        rate = rng.gamma(VISIT_DISPERSION, extra * intensity / intensity.mean() / VISIT_DISPERSION) if extra > 0 else np.zeros(count)
        visits_per_person = 1 + rng.poisson(rate)
        person = np.repeat(np.arange(count), visits_per_person)
        window_start = np.maximum(_FIRST_DAY, persons.birth_day)
        span = _LAST_DAY - window_start + 1
        start = window_start[person] + (rng.random(len(person)) * span[person]).astype(np.int64)
        visit_type = _draw(rng, _VISIT_TYPE_CDF, len(person))
        stay = rng.geometric(1 / 5.5, len(person))
        emergency_overnight = rng.random(len(person)) < 0.25
        length = np.select([visit_type == 0, visit_type == 2], [stay, emergency_overnight], 0)
        return _Visits(
            ids=self._next_ids("visit_occurrence", len(person)),
            person=person,
            visit_type=visit_type,
            start=start,
            end=np.minimum(start + length, _LAST_DAY),
            first=np.cumsum(visits_per_person) - visits_per_person,
            count=visits_per_person,
        )

    def _day_within(self, visits: _Visits, visit: np.ndarray) -> np.ndarray:
        length = visits.end[visit] - visits.start[visit] + 1
        return visits.start[visit] + (self.rng.random(len(visit)) * length).astype(np.int64)

    def _random_visit_of(self, visits: _Visits, person: np.ndarray) -> np.ndarray:
        return visits.first[person] + (self.rng.random(len(person)) * visits.count[person]).astype(np.int64)

    def _chronic_visits(self, flag: np.ndarray, visits: _Visits) -> np.ndarray:
        """Visits coding a chronic condition: a share of the patient's visits, at least one."""
        coded = np.flatnonzero(flag[visits.person] & (self.rng.random(len(visits.ids)) < vocab.CHRONIC_CODING_RATE))
        uncoded = np.flatnonzero(flag & (np.bincount(visits.person[coded], minlength=len(flag)) == 0))
        return np.concatenate([coded, self._random_visit_of(visits, uncoded)])

    def _events(self, persons: _Persons, visits: _Visits) -> tuple[dict[str, np.ndarray], ...]:
        rng = self.rng
        chronic = [self._chronic_visits(flag, visits) for flag in persons.chronic]
        budget = max(self.events_per_person * len(persons.ids) - sum(len(c) for c in chronic), 0.0)
        weight = _VISIT_INTENSITY[visits.visit_type]
        per_visit = budget * weight / weight.sum()
        counts = [rng.poisson(per_visit * share) for share in EVENT_SHARES]
        return (
            self._conditions(persons, visits, np.repeat(np.arange(len(weight)), counts[0]), chronic),
            self._drugs(persons, visits, np.repeat(np.arange(len(weight)), counts[1])),
            self._measurements(persons, visits, np.repeat(np.arange(len(weight)), counts[2])),
        )

    def _event_columns(self, table: str, persons: _Persons, visits: _Visits, visit: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "record_id": self._next_ids(table, len(visit)),
            "person_id": persons.ids[visits.person[visit]],
            "visit_occurrence_id": visits.ids[visit],
        }

    def _conditions(self, persons: _Persons, visits: _Visits, visit: np.ndarray, chronic: list[np.ndarray]) -> dict[str, np.ndarray]:
        rng = self.rng
        female = persons.female[visits.person[visit]].astype(np.int64)
        code = _draw_per_row(rng, _CONDITION_CDFS_BY_SEX, female)
        base = len(vocab.CONDITIONS.concept_ids)
        chronic_codes = [np.full(len(c), base + i) for i, c in enumerate(chronic)]
        order = np.argsort(np.concatenate([visit, *chronic]), kind="stable")
        visit = np.concatenate([visit, *chronic])[order]
        code = np.concatenate([code, *chronic_codes])[order]
        start = self._day_within(visits, visit)
        acute_end = np.minimum(start + rng.geometric(0.3, len(visit)) - 1, _LAST_DAY)
        return self._event_columns("condition_occurrence", persons, visits, visit) | {
            "concept_id": vocab.CONDITION_CONCEPT_IDS[code].astype(np.int32),
            "start_day": start,
            "end_day": np.where(code >= base, visits.end[visit], acute_end),
            "code": code,
        }

    def _drugs(self, persons: _Persons, visits: _Visits, visit: np.ndarray) -> dict[str, np.ndarray]:
        rng = self.rng
        person = visits.person[visit]
        diabetes, hypertension, lipids = (flag[person] for flag in persons.chronic)
        chance = rng.random((3, len(visit)))
        statin = (
            vocab.STATIN_SHARE_DIABETES * diabetes
            + vocab.STATIN_SHARE_HYPERCHOLESTEROLEMIA * lipids
            + vocab.STATIN_SHARE_OTHER_ADULTS * (persons.age[person] >= 18)
        )
        drug_class = np.select(
            [
                diabetes & (chance[0] < vocab.DIABETES_DRUG_SHARE),
                hypertension & (chance[1] < vocab.ANTIHYPERTENSIVE_SHARE),
                chance[2] < statin,
            ],
            [1, 2, 3],
            0,
        )
        code = _DRUG_CLASS_OFFSETS[drug_class] + _draw_per_row(rng, _DRUG_CLASS_CDFS, drug_class)
        supply = rng.integers(0, len(_DRUG_QUANTITIES), len(visit))
        inpatient = visits.visit_type[visit] == 0
        start = self._day_within(visits, visit)
        days = np.where(inpatient, 1, _DRUG_DAYS[supply])
        return self._event_columns("drug_exposure", persons, visits, visit) | {
            "concept_id": vocab.DRUG_CONCEPT_IDS[code].astype(np.int32),
            "start_day": start,
            "end_day": np.minimum(start + days - 1, _LAST_DAY),
            "quantity": np.where(inpatient, rng.integers(1, 4, len(visit)), _DRUG_QUANTITIES[supply]).astype(np.float64),
            "code": code,
        }

    def _measurements(self, persons: _Persons, visits: _Visits, visit: np.ndarray) -> dict[str, np.ndarray]:
        rng = self.rng
        person = visits.person[visit]
        diabetes, hypertension, lipids = (flag[person] for flag in persons.chronic)
        chance = rng.random(len(visit))
        general = _draw(rng, vocab.MEASUREMENT_CDF, len(visit))
        follow_up = np.where(chance < vocab.DIABETES_MONITORING_SHARE / 2, vocab.MEASUREMENT_INDEX[vocab.HBA1C], vocab.MEASUREMENT_INDEX[vocab.GLUCOSE])
        code = np.where(diabetes & (chance < vocab.DIABETES_MONITORING_SHARE), follow_up, general)
        day = self._day_within(visits, visit)
        age = (day - persons.birth_day[person]) / _DAYS_PER_YEAR
        z = rng.standard_normal(len(visit))
        value = vocab.measurement_values(z, code, persons.female[person], age, diabetes, hypertension, lipids)
        return self._event_columns("measurement", persons, visits, visit) | {
            "concept_id": vocab.MEASUREMENT_FIELDS["concept_id"][code].astype(np.int32),
            "day": day,
            "value": value,
            "unit_concept_id": vocab.MEASUREMENT_FIELDS["unit_concept_id"][code].astype(np.int32),
            "code": code,
        }

    def _identity(self, persons: _Persons) -> dict[str, np.ndarray]:
        rng = self.rng
        count = len(persons.ids)
        female = persons.female
        given = np.where(
            female, _draw(rng, _FEMALE_NAME_CDF, count), len(vocab.FEMALE_GIVEN_NAMES) + _draw(rng, _MALE_NAME_CDF, count)
        )
        # NIR: sex, birth year (2 digits), month, birthplace (département + commune, or 99 +
        # country when born abroad), order number, then key = 97 - (those 13 digits mod 97).
        birth = persons.birth_day.astype("datetime64[D]")
        year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
        month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
        home = vocab.DEPARTEMENTS.codes[persons.departement]
        elsewhere = vocab.DEPARTEMENTS.codes[_draw(rng, _BIRTH_DEPARTEMENT_CDF, count)]
        born_code = np.where((rng.random(count) < 0.6) & (home != 20), home, elsewhere)
        commune = rng.integers(1, 1000, count)
        place = np.where(born_code > 900, born_code * 100 + commune % 100, born_code * 1000 + commune)
        abroad = rng.random(count) < vocab.BORN_ABROAD_SHARE
        place = np.where(abroad, 99000 + np.asarray(vocab.BIRTH_COUNTRIES)[_draw(rng, _BIRTH_COUNTRY_CDF, count)], place)
        body = (
            np.where(female, 2, 1) * 10**12 + year % 100 * 10**10 + month * 10**8 + place * 10**3 + rng.integers(1, 1000, count)
        )
        return {
            "person_id": persons.ids,
            "family": _draw(rng, _FAMILY_NAME_CDF, count),
            "given": given,
            "nir_body": body,
            "nir_key": 97 - body % 97,
            "street_number": np.minimum(rng.geometric(0.04, count), 300),
            "street_type": rng.integers(0, len(vocab.STREET_TYPES), count),
            "street": _draw(rng, _STREET_CDF, count),
            "postcode": persons.postcode,
            "departement": persons.departement,
            "phone_prefix": 1 + _draw(rng, _PHONE_PREFIX_CDF, count),
            "phone_digits": rng.integers(0, 10**8, count),
            "email_number": np.where(rng.random(count) < 0.4, rng.integers(1, 100, count), 0),
            "email_domain": _draw(rng, _EMAIL_CDF, count),
        }

    def _notes(self, persons: _Persons, visits: _Visits, identity: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = self.rng
        person = np.repeat(np.arange(len(persons.ids)), rng.poisson(vocab.NOTES_PER_PERSON, len(persons.ids)))
        count = len(person)
        visit = self._random_visit_of(visits, person)
        day = self._day_within(visits, visit)
        return {
            "record_id": self._next_ids("note", count),
            "person_id": persons.ids[person],
            "day": day,
            "note_type_concept_id": _NOTE_TYPES[visits.visit_type[visit]],
            "visit_occurrence_id": visits.ids[visit],
            "template": _draw_per_row(rng, _NOTE_TEMPLATE_CDFS, visits.visit_type[visit]),
            "female": persons.female[person],
            "family": identity["family"][person],
            "given": identity["given"][person],
            "phone_prefix": identity["phone_prefix"][person],
            "phone_digits": identity["phone_digits"][person],
            "age": ((day - persons.birth_day[person]) / _DAYS_PER_YEAR).astype(np.int64),
            "reason": rng.integers(0, len(vocab.NOTE_REASONS), count),
            "drug": _draw(rng, _NOTE_DRUG_CDF, count),
            "months": rng.integers(1, 13, count),
            "systolic": np.clip(np.rint(rng.normal(132, 16, count)), 85, 210).astype(np.int64),
            "diastolic": np.clip(np.rint(rng.normal(78, 10, count)), 45, 125).astype(np.int64),
            "pain": rng.integers(0, 11, count),
        }

    def _opt_out(self, persons: _Persons) -> dict[str, np.ndarray]:
        rng = self.rng
        count = len(persons.ids)
        opted_out = np.flatnonzero(rng.random(count) < OPT_OUT_SHARE)
        earliest = np.maximum(_OPT_OUT_FROM_DAY, persons.birth_day[opted_out])
        day = earliest + (rng.random(len(opted_out)) * (_LAST_DAY - earliest + 1)).astype(np.int64)
        return {"person_id": persons.ids[opted_out], "day": day}
