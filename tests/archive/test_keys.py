"""Custodians, study archive keys split k-of-n, live keys, share decryption and recovery."""

from __future__ import annotations

import getpass
import json
import os
import stat
import subprocess

import pytest

from bubble_manager.archive import keys as key_store
from bubble_manager.archive.age import AgeWriter, X25519Identity
from bubble_manager.archive.keys import (KeyStoreError, add_custodian, decrypt_share, destroy_live_key,
                                         ensure_study_keys, list_custodians, load_live_identity,
                                         recover_archive_identity, remove_custodian, study_recipients,
                                         study_share_files)
from bubble_manager.archive.shares import ShareDocument, ShareError
from bubble_manager.config import load_settings
from bubble_manager.operations import Context

from .conftest import make_study


def decrypted_shares(sqlite_context, slug, kits, count):
    files = {s["custodian"]: s["path"] for s in study_share_files(sqlite_context.home, slug)}
    return [decrypt_share(files[kit.name], kit.identity_file).to_text() for kit in kits[:count]]


def actions(context, study=None):
    return [e.action for e in context.audit.entries(study=study)]


def test_study_keys_are_hybrid_by_default_and_x25519_when_configured(sqlite_context, custodians, frozen_clock):
    make_study(sqlite_context, frozen_clock, "pq-study")
    keys = ensure_study_keys(sqlite_context, "pq-study")
    assert keys.archive_recipient.to_string().startswith("age1pq1")
    assert keys.live_recipient.to_string().startswith("age1pq1")
    identity = recover_archive_identity(sqlite_context, "pq-study",
                                        decrypted_shares(sqlite_context, "pq-study", custodians, 2))
    assert identity.recipient().to_string() == keys.archive_recipient.to_string()
    assert load_live_identity(sqlite_context, "pq-study").recipient().to_string() == keys.live_recipient.to_string()
    sqlite_context.settings.config.PostQuantumSettings.archive_key_type = "x25519"
    make_study(sqlite_context, frozen_clock, "classic-study")
    classic = ensure_study_keys(sqlite_context, "classic-study")
    assert classic.archive_recipient.to_string().startswith("age1") and not \
        classic.archive_recipient.to_string().startswith("age1pq1")
    assert ensure_study_keys(sqlite_context, "pq-study") == keys  # existing keys keep their type


def test_study_keys_are_split_among_custodians_and_audited(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    keys = ensure_study_keys(sqlite_context, slug)
    assert (keys.threshold, keys.count, keys.custodians) == (2, 3, ("ada", "bert", "chloe"))
    assert ensure_study_keys(sqlite_context, slug) == keys  # idempotent: same keys, no second entry
    assert actions(sqlite_context, slug).count("keys.study-created") == 1
    folder = key_store.study_keys_dir(sqlite_context.home, slug)
    for path in [folder, folder / "shares", sqlite_context.home / "keys" / "studies"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    live = folder / "live.key"
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    # Nothing in the key store holds the archive private key: no file parses to it.
    recovered = recover_archive_identity(None, slug, decrypted_shares(sqlite_context, slug, custodians, 2))
    secret = recovered.to_string()
    for path in sqlite_context.home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
            assert secret.lower().encode() not in path.read_bytes(), path
    assert recovered.recipient() == keys.archive_recipient
    assert study_recipients(sqlite_context, slug) == [keys.live_recipient, keys.archive_recipient]


def test_any_k_shares_recover_and_fewer_or_forged_fail(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    keys = ensure_study_keys(sqlite_context, slug)
    all_three = decrypted_shares(sqlite_context, slug, custodians, 3)
    for pair in ([0, 1], [1, 2], [0, 2], [0, 1, 2]):
        identity = recover_archive_identity(sqlite_context, slug, [all_three[i] for i in pair], actor="ops")
        assert identity.recipient() == keys.archive_recipient
    with pytest.raises(ShareError, match="1 distinct share.*2 needed"):
        recover_archive_identity(sqlite_context, slug, all_three[:1], actor="ops")
    with pytest.raises(ShareError, match="1 distinct share"):
        recover_archive_identity(sqlite_context, slug, [all_three[0], all_three[0]], actor="ops")
    # A mistyped word: the mnemonic checksum catches it.
    document = ShareDocument.parse(all_three[1])
    words = document.mnemonic.split()
    words[10] = "academic" if words[10] != "academic" else "acid"
    mistyped = ShareDocument(**{**document.__dict__, "mnemonic": " ".join(words)}).to_text()
    with pytest.raises(ShareError, match="invalid mnemonic"):
        recover_archive_identity(sqlite_context, slug, [all_three[0], mistyped], actor="ops")
    # A header edited to claim another share number.
    relabelled = all_three[1].replace("share: 2\n", "share: 3\n")
    with pytest.raises(ShareError, match="disagree"):
        recover_archive_identity(sqlite_context, slug, [all_three[0], relabelled], actor="ops")
    assert actions(sqlite_context, slug).count("keys.recover-refused") == 4
    assert actions(sqlite_context, slug).count("keys.recovered") == 4


def test_a_self_consistent_forged_share_set_is_refused(sqlite_context, custodians, frozen_clock):
    """Shares made for another key, labelled with this study, combine but do not match its recipient."""
    from bubble_manager.archive.shares import split_identity

    slug = make_study(sqlite_context, frozen_clock)
    ensure_study_keys(sqlite_context, slug)
    fake = X25519Identity.generate()
    forged = [ShareDocument(slug, i, 2, 3, fake.recipient().to_string(), "mallory", "now", m).to_text()
              for i, m in enumerate(split_identity(fake, 2, 3), start=1)]
    assert recover_archive_identity(None, slug, forged[:2]).recipient() == fake.recipient()  # offline: only self-check
    with pytest.raises(ShareError, match="not study t2d-statins's recorded archive key"):
        recover_archive_identity(sqlite_context, slug, forged[:2])
    genuine = decrypted_shares(sqlite_context, slug, custodians, 1)
    with pytest.raises(ShareError, match="another split"):
        recover_archive_identity(sqlite_context, slug, [genuine[0], forged[1]])


def test_share_of_another_study_is_refused(sqlite_context, custodians, frozen_clock):
    make_study(sqlite_context, frozen_clock, "study-one")
    make_study(sqlite_context, frozen_clock, "study-two")
    ensure_study_keys(sqlite_context, "study-one")
    ensure_study_keys(sqlite_context, "study-two")
    one = decrypted_shares(sqlite_context, "study-one", custodians, 2)
    with pytest.raises(ShareError, match="belongs to study study-one, not study-two"):
        recover_archive_identity(sqlite_context, "study-two", one)


def test_shares_decrypt_with_the_age_cli_and_only_with_their_custodian(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    ensure_study_keys(sqlite_context, slug)
    files = {s["custodian"]: s["path"] for s in study_share_files(sqlite_context.home, slug)}
    ada, bert = custodians[0], custodians[1]
    result = subprocess.run(["age", "-d", "-i", str(ada.identity_file), files["ada"]], capture_output=True,
                            check=True, text=True)
    document = ShareDocument.parse(result.stdout)
    assert (document.study, document.custodian, document.threshold, document.count) == (slug, "ada", 2, 3)
    assert subprocess.run(["age", "-d", "-i", str(bert.identity_file), files["ada"]], capture_output=True
                          ).returncode != 0
    with pytest.raises(KeyStoreError, match="cannot decrypt"):
        decrypt_share(files["ada"], bert.identity_file)
    with pytest.raises(ShareError, match="still encrypted"):
        ShareDocument.parse(open(files["ada"], "rb").read().decode("latin-1"))


def test_quorum_configuration_is_checked(bm_home, frozen_clock, custodians, sqlite_context):
    slug = make_study(sqlite_context, frozen_clock)

    def context_with(config_text):
        (bm_home / "bubble_manager_config.py").write_text(config_text)
        return Context.open(load_settings(bm_home))

    for config_text, message in [
        ("c.ArchiveSettings.custodian_threshold = 4\n", "k=4 is more than the n=3"),
        ("c.ArchiveSettings.custodian_threshold = 1\n", "at least 2 custodians"),
        ("c.ArchiveSettings.custodian_count = 5\n", "3 custodian\\(s\\) registered, 5 needed.*keys custodians add"),
    ]:
        context = context_with(config_text)
        with pytest.raises(KeyStoreError, match=message):
            ensure_study_keys(context, slug)
        context.close()
    assert not (bm_home / "keys" / "studies" / slug).exists()
    assert not list((bm_home / "keys" / "studies").glob(".new-*"))
    context = context_with("c.ArchiveSettings.custodian_threshold = 1\nc.ArchiveSettings.allow_weak_quorum = True\n"
                           "c.ArchiveSettings.custodian_count = 2\n")
    keys = ensure_study_keys(context, slug)
    assert (keys.threshold, keys.count, keys.custodians) == (1, 2, ("ada", "bert"))
    one = decrypted_shares(context, slug, custodians, 1)
    assert recover_archive_identity(context, slug, one).recipient() == keys.archive_recipient
    context.close()


def test_too_few_custodians_refuses_with_the_fix(sqlite_context, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    with pytest.raises(KeyStoreError, match="keys custodians add"):
        ensure_study_keys(sqlite_context, slug)
    with pytest.raises(KeyStoreError, match="no study 'nope'"):
        ensure_study_keys(sqlite_context, "nope")
    with pytest.raises(KeyStoreError, match="not a study slug"):
        ensure_study_keys(sqlite_context, "../keys")


def test_live_key_is_used_audited_and_destroyed(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    keys = ensure_study_keys(sqlite_context, slug)
    identity = load_live_identity(sqlite_context, slug, actor="extract")
    assert identity.recipient() == keys.live_recipient
    live_path = key_store.study_keys_dir(sqlite_context.home, slug) / "live.key"
    for path in (live_path, *live_path.parents[:3]):  # live.key, <slug>/, studies/, keys/: the hub's user only
        assert path.stat().st_uid == os.geteuid() and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert destroy_live_key(sqlite_context, slug, actor="reconciler") is True
    assert not live_path.exists()
    assert destroy_live_key(sqlite_context, slug) is False  # idempotent
    with pytest.raises(KeyStoreError, match="destroyed when it was archived.*keys recover"):
        load_live_identity(sqlite_context, slug)
    with pytest.raises(KeyStoreError, match="destroyed"):
        study_recipients(sqlite_context, slug)
    assert ensure_study_keys(sqlite_context, slug).live_key_destroyed
    assert [a for a in actions(sqlite_context, slug) if a.startswith("keys.")] == [
        "keys.study-created", "keys.live-used", "keys.live-destroyed", "keys.live-refused"]


def test_live_key_file_swapped_for_another_key_is_refused(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    ensure_study_keys(sqlite_context, slug)
    live_path = key_store.study_keys_dir(sqlite_context.home, slug) / "live.key"
    live_path.write_text(X25519Identity.generate().to_string() + "\n")
    with pytest.raises(KeyStoreError, match="altered"):
        load_live_identity(sqlite_context, slug)


def test_crashed_creation_leaves_nothing_and_is_cleaned(sqlite_context, custodians, frozen_clock, monkeypatch):
    slug = make_study(sqlite_context, frozen_clock)

    def broken_split(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(key_store, "split_identity", broken_split)
    with pytest.raises(OSError):
        ensure_study_keys(sqlite_context, slug)
    studies_dir = sqlite_context.home / "keys" / "studies"
    assert list(studies_dir.iterdir()) == [] and "keys.study-created" not in actions(sqlite_context)
    monkeypatch.undo()
    leftover = studies_dir / f".new-{slug}-dead"  # as a kill -9 would leave it
    leftover.mkdir()
    (leftover / "live.key").write_text("secret")
    ensure_study_keys(sqlite_context, slug)
    assert sorted(p.name for p in studies_dir.iterdir()) == [slug]


def test_custodian_registration(sqlite_context, custodians):
    assert [c.name for c in list_custodians(sqlite_context.home)] == ["ada", "bert", "chloe"]
    with pytest.raises(KeyStoreError, match="already registered"):
        add_custodian(sqlite_context, "ada", X25519Identity.generate().recipient().to_string(), actor="admin")
    with pytest.raises(KeyStoreError, match="already registered as custodian bert"):
        add_custodian(sqlite_context, "dora", custodians[1].identity.recipient().to_string(), actor="admin")
    with pytest.raises(KeyStoreError, match="not an age public key"):
        add_custodian(sqlite_context, "dora", "age1notakey", actor="admin")
    with pytest.raises(KeyStoreError, match="not allowed"):
        add_custodian(sqlite_context, "../evil", X25519Identity.generate().recipient().to_string(), actor="admin")
    assert remove_custodian(sqlite_context, "chloe", actor="admin") == []
    with pytest.raises(KeyStoreError, match="no custodian"):
        remove_custodian(sqlite_context, "chloe", actor="admin")
    assert [c.name for c in list_custodians(sqlite_context.home)] == ["ada", "bert"]
    assert actions(sqlite_context).count("keys.custodian-added") == 3
    assert actions(sqlite_context).count("keys.custodian-removed") == 1
    entry = sqlite_context.audit.entries(action="keys.custodian-added")[0]
    assert entry.actor == "admin" and entry.detail["custodian"] == "ada"


def test_keys_cli_round_trip(bm_home, tmp_path, capsys, frozen_clock, sqlite_context, classic_keys):
    from bubble_manager.cli import main

    def cli(*args, expect=0):
        code = main(["--home", str(bm_home), *args])
        out, err = capsys.readouterr()
        assert code == expect, f"exit {code}\n{out}\n{err}"
        return out, err

    publics = {}
    for name, key_type in (("ada", []), ("bert", ["--type", "x25519"])):  # ada's key is hybrid (the default)
        out, _ = cli("--json", "keys", "custodian-new", "--out", str(tmp_path / f"{name}.key"), *key_type)
        publics[name] = json.loads(out)["public_key"]
        assert stat.S_IMODE(os.stat(tmp_path / f"{name}.key").st_mode) == 0o600
        cli("keys", "custodians", "add", name, publics[name], "--actor", "admin")
    _, err = cli("keys", "custodian-new", "--out", str(tmp_path / "ada.key"), expect=2)
    assert "already exists" in err
    out, _ = cli("keys", "custodians", "list")
    assert "ada" in out and publics["bert"] in out
    assert publics["ada"].startswith("age1pq1") and not publics["bert"].startswith("age1pq1")
    slug = make_study(sqlite_context, frozen_clock)
    keys = ensure_study_keys(sqlite_context, slug)
    files = {s["custodian"]: s["path"] for s in study_share_files(bm_home, slug)}
    for name in ("ada", "bert"):
        cli("keys", "decrypt-share", "--identity", str(tmp_path / f"{name}.key"), files[name],
            "--out", str(tmp_path / f"{name}.share"))
    _, err = cli("keys", "recover", slug, "--share", str(tmp_path / "ada.share"), "--actor", "ops", expect=1)
    assert "2 needed" in err
    _, err = cli("keys", "recover", slug, "--share", files["ada"], expect=2)
    assert "not a decrypted share" in err
    out, _ = cli("keys", "recover", slug, "--share", str(tmp_path / "ada.share"), "--share",
                 str(tmp_path / "bert.share"), "--out", str(tmp_path / "archive.key"), "--actor", "ops",
                 "--reason", "test")
    assert keys.archive_recipient.to_string() in out
    # The recovered identity file is a standard age identity: the age CLI decrypts with it.
    plain = tmp_path / "plain.age"
    with open(plain, "wb") as out_file, AgeWriter(out_file, [keys.archive_recipient]) as writer:
        writer.write(b"hello custodians")
    result = subprocess.run(["age", "-d", "-i", str(tmp_path / "archive.key"), str(plain)], capture_output=True,
                            check=True)
    assert result.stdout == b"hello custodians"
    _, err = cli("keys", "custodians", "add", "eve", "age1xyz", "--actor", "admin", expect=2)
    assert "not an age public key" in err
    recoveries = len(sqlite_context.audit.entries(action="keys.recovered"))
    _, err = cli("keys", "recover", slug, "--share", str(tmp_path / "ada.share"), "--share",
                 str(tmp_path / "bert.share"), "--out", str(tmp_path / "archive.key"), expect=2)
    assert "already exists" in err
    assert len(sqlite_context.audit.entries(action="keys.recovered")) == recoveries, "refused before recovering"
    # --actor is an operator's assertion: each entry a command wrote names the OS user who ran it.
    os_user = getpass.getuser()
    added = sqlite_context.audit.entries(action="keys.custodian-added")
    assert [(e.actor, e.detail["via"]) for e in added] == [
        ("admin", {"channel": "cli", "asserted_actor": True, "os_user": os_user})] * 2
    recovered = sqlite_context.audit.entries(action="keys.recovered")[-1]
    assert recovered.actor == "ops" and recovered.detail["via"]["os_user"] == os_user
    cli("keys", "recover", slug, "--share", str(tmp_path / "ada.share"), "--share", str(tmp_path / "bert.share"))
    unasserted = sqlite_context.audit.entries(action="keys.recovered")[-1]  # no --actor: the OS user acts
    assert unasserted.actor == os_user and unasserted.detail["via"] == {"channel": "cli", "asserted_actor": False,
                                                                        "os_user": os_user}
