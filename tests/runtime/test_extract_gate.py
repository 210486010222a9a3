"""The extract check of every spawn: signed manifest, matching hash, the study's own extract."""

from __future__ import annotations

import json
import shutil

import pytest

from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.extract_gate import verify_for_spawn
from bubble_manager.runtime.spec import SpawnRefused, StudyPaths
from tests.hubfixture import ALICE, BOB, create_study


@pytest.fixture
def studies(sqlite_context):
    create_study(sqlite_context, "alpha", [ALICE])
    create_study(sqlite_context, "beta", [BOB], requester=BOB)
    return sqlite_context


def check(context, slug: str):
    study = StudyOperations(context).get(slug)
    return verify_for_spawn(StudyPaths(context.home, slug), context.verifier(), study)


def refusal(context, slug: str) -> str:
    with pytest.raises(SpawnRefused) as caught:
        check(context, slug)
    assert caught.value.reason == "extract-invalid"
    return str(caught.value)


def test_a_verified_extract_gives_its_manifest(studies):
    body = check(studies, "alpha")
    assert body["study"] == "alpha" and body["extract"]["sha256"]


def test_a_changed_byte_is_refused_even_after_an_earlier_success(studies):
    check(studies, "alpha")
    extract = StudyPaths(studies.home, "alpha").extract
    data = bytearray(extract.read_bytes())
    data[len(data) // 2] ^= 1
    extract.write_bytes(bytes(data))
    assert "sha256 of extract.duckdb is" in refusal(studies, "alpha")


def test_an_edited_manifest_fails_its_signature(studies):
    manifest = StudyPaths(studies.home, "alpha").manifest
    document = json.loads(manifest.read_text())
    document["manifest"]["rows"]["person"] = 1
    manifest.write_text(json.dumps(document))
    assert "signature does not verify" in refusal(studies, "alpha")


def test_another_study_s_extract_is_refused(studies):
    alpha, beta = StudyPaths(studies.home, "alpha"), StudyPaths(studies.home, "beta")
    shutil.copy(beta.extract, alpha.extract)
    shutil.copy(beta.manifest, alpha.manifest)
    message = refusal(studies, "alpha")
    assert "describes study 'beta', not alpha" in message and "another version of the request" in message


def test_no_extract_yet(studies):
    StudyPaths(studies.home, "alpha").manifest.unlink()
    message = refusal(studies, "alpha")
    assert "has no extract yet" in message and "bubble-manager extract build alpha" in message


def test_an_unsigned_manifest_is_refused(studies):
    manifest = StudyPaths(studies.home, "alpha").manifest
    document = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(document["manifest"]))
    assert "lacks 'manifest' and 'signature'" in refusal(studies, "alpha")
