"""The CLI's study commands as clients of the API: every decision under an authenticated identity."""

from __future__ import annotations

import json

import pytest
import yaml

from bubble_manager.cli import main

from .conftest import request_document


@pytest.fixture
def run_cli(hub, capsys, monkeypatch, tokens):
    def run(user, *args, expect=0):
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", tokens[user])
        code = main(["--hub-url", hub.url, *args])
        out, err = capsys.readouterr()
        assert code == expect, f"exit {code}\n{out}\n{err}"
        return out, err
    return run


def test_request_submit_approve_through_the_api(run_cli, tmp_path, store_context):
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request_document("via-api")))
    out, _ = run_cli("carol", "studies", "request", "--file", str(path))
    assert "created as a draft by carol" in out
    run_cli("carol", "studies", "submit", "via-api")
    _, err = run_cli("alice", "studies", "approve", "via-api", expect=2)
    assert "lacks the permission" in err or "member" in err
    out, _ = run_cli("sam", "--json", "studies", "approve", "via-api", "--comment", "fine")
    assert json.loads(out)["state"] == "approved"
    approved = store_context.audit.entries(study="via-api", action="study.approved")[-1]
    assert approved.actor == "sam" and approved.detail["via"] == {"channel": "api"}
    out, _ = run_cli("mallory", "--json", "studies", "list")
    assert "via-api" not in [s["slug"] for s in json.loads(out)]


def test_actor_is_refused_through_the_api(run_cli):
    _, err = run_cli("sam", "studies", "approve", "whatever", "--actor", "tom", expect=2)
    assert "--actor is for offline administration" in err


def test_bad_token_is_a_clear_error(hub, capsys, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-token")
    assert main(["--hub-url", hub.url, "studies", "list"]) == 2
    assert "authentication required" in capsys.readouterr().err
