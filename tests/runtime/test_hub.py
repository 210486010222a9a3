"""The real hub: a member signs in, opens the study's bubble through the proxy, runs Python on the
extract, the hub restarts without losing the bubble, and the bubble stops leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from bubble_manager.runtime.hubapi import panel_url
from bubble_manager.runtime.launcher import process_alive
from bubble_manager.runtime.spec import StudyPaths
from tests.hubfixture import ALICE, BOB, EVE, HubFixture, create_study, run_in_kernel

pytestmark = [pytest.mark.bwrap, pytest.mark.slow]

READ_EXTRACT = """
import duckdb, os
with duckdb.connect(os.environ["BUBBLE_EXTRACT"], read_only=True) as db:
    print("persons", db.execute("SELECT count(*) FROM person").fetchone()[0])
    print("measurements", db.execute("SELECT count(*) FROM measurement").fetchone()[0])
print("uid", os.getuid(), "study", os.environ["BUBBLE_STUDY"])
"""

HUB_API_FROM_INSIDE = r"""
import http.client, json, os, socket, urllib.parse

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path_ = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path_)

api = urllib.parse.urlparse(os.environ["JUPYTERHUB_API_URL"])
socket_path = urllib.parse.unquote(api.netloc)
token = os.environ["JUPYTERHUB_API_TOKEN"]
user = urllib.parse.quote(os.environ["JUPYTERHUB_USER"])

def call(method, path, body=None):
    connection = UnixConnection(socket_path)
    connection.request(method, api.path + path, body=json.dumps(body) if body is not None else None,
                       headers={"Authorization": "token " + token, "Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status

print(json.dumps({
    "whoami": call("GET", "/user"),
    "create_token": call("POST", f"/users/{user}/tokens", {"note": "from the bubble"}),
    "create_server": call("POST", f"/users/{user}/servers/beta", {}),
    "rename_user": call("PATCH", f"/users/{user}", {"name": "mallory@example.org"}),
    "make_admin": call("PATCH", f"/users/{user}", {"admin": True}),
    "list_users": call("GET", "/users"),
    "socket": socket_path,
}))
"""


def bubble_state(hub: HubFixture, user: str, server: str) -> dict:
    model = hub.server_model(user, server)
    assert model is not None, f"{user} has no server {server}"
    return model["state"]


def test_member_opens_the_study_bubble_through_the_proxy(running_hub: HubFixture):
    hub = running_hub
    browser = hub.login(ALICE)
    response = hub.spawn(browser, ALICE, "alpha")
    assert response.status_code in (201, 202), response.text
    model = hub.wait_ready(ALICE, "alpha")
    state = model["state"]
    assert state["socket"].endswith("/sock/server.sock")
    assert process_alive(state["launcher_pid"], state["launcher_start"])

    # JupyterLab through the proxy, on the user's own subdomain, after the OAuth dance in the browser
    lab = browser.get(model["url"] + "lab", timeout=60)
    assert lab.status_code == 200, lab.text[:500]
    assert lab.url.startswith(model["url"]) and ".hub.localhost:" in lab.url
    assert "JupyterLab" in lab.text

    # the in-bubble extension: the study page and STUDY.md in the home folder
    page = browser.get(model["url"] + "bubble/", timeout=30)
    assert page.status_code == 200 and "Study alpha" in page.text and "measurement_date" in page.text
    listing = browser.get(model["url"] + "api/contents/", timeout=30).json()
    assert {item["name"] for item in listing["content"]} >= {"STUDY.md", "work", "shared"}

    # hub cookies are not sent to the user's subdomain: a notebook cannot act with them
    hub_cookies = [c for c in browser.cookies if c.name == "jupyterhub-hub-login"]
    assert hub_cookies and all(c.domain in ("hub.localhost", "hub.localhost.local") for c in hub_cookies)

    token = hub.user_token(ALICE, [f"access:servers!server={ALICE}/alpha"])
    result = run_in_kernel(hub, ALICE, "alpha", READ_EXTRACT, token=token)
    assert result["error"] is None, result
    assert "persons 50" in result["stdout"] and "measurements 50" in result["stdout"]
    assert f"uid {state['uid']} study alpha" in result["stdout"]
    assert state["uid"] >= hub.uid_base


def test_the_hub_api_refuses_the_bubble_token_anything_beyond_its_server(running_hub: HubFixture):
    hub = running_hub
    if not (hub.server_model(ALICE, "alpha") or {}).get("ready"):
        browser = hub.login(ALICE)
        hub.spawn(browser, ALICE, "alpha")
        hub.wait_ready(ALICE, "alpha")
    token = hub.user_token(ALICE, [f"access:servers!server={ALICE}/alpha"])
    result = run_in_kernel(hub, ALICE, "alpha", HUB_API_FROM_INSIDE, token=token)
    assert result["error"] is None, result
    statuses = json.loads(result["stdout"])
    assert statuses["socket"] == "/run/jupyterhub/hub.sock"
    assert statuses["whoami"] == 200, "positive control: the bubble's token works for what it may do"
    for attempt in ("create_token", "create_server", "rename_user", "make_admin", "list_users"):
        assert statuses[attempt] == 403, (attempt, statuses)


def test_a_user_s_own_api_tokens_carry_only_the_panel_s_scopes(running_hub: HubFixture):
    """Users create tokens for the CLI; none of them reaches a bubble or starts one."""
    hub = running_hub
    browser = hub.login(ALICE)
    if not (hub.server_model(ALICE, "alpha") or {}).get("ready"):
        hub.spawn(browser, ALICE, "alpha")
    model = hub.wait_ready(ALICE, "alpha")
    tokens_url = f"{hub.url}/hub/api/users/{requests.utils.quote(ALICE)}/tokens"

    def create(body: dict) -> requests.Response:
        return browser.post(tokens_url, headers=hub.xsrf_headers(browser), json=body, timeout=30)

    created = create({"note": "cli"})
    assert created.status_code == 201, created.text
    identify = {f"read:users:name!user={ALICE}", f"read:users:groups!user={ALICE}"}  # JupyterHub adds these to any token
    assert set(created.json()["scopes"]) - identify == {"access:services!service=bubble-manager", "custom:bubbles:use"}
    token = created.json()["token"]
    whoami = hub.api("GET", "/user", token=token).json()
    assert "access:servers!user" not in whoami["scopes"] and "servers!user" not in whoami["scopes"]
    inside = requests.get(model["url"] + "api/contents/", headers={"Authorization": f"token {token}"},
                          timeout=30, allow_redirects=False)
    assert inside.status_code in (302, 403), "a CLI token opened the bubble"
    assert hub.api("POST", f"/users/{requests.utils.quote(ALICE)}/servers/beta", token=token, json={}
                   ).status_code == 403

    for body, status, words in (({"scopes": ["access:servers!user"]}, 403, "refused: access:servers!user"),
                                ({"scopes": [f"access:servers!server={ALICE}/alpha"]}, 403, "panel's scopes"),
                                ({"roles": ["user"]}, 400, "token roles are not accepted"),
                                ({"scopes": ["custom:bubbles:review"]}, 400, "")):  # a scope she does not hold
        refused = create(body)
        assert refused.status_code == status, (body, refused.text)
        assert words in refused.json()["message"], refused.text
    assert "refused: access:servers!user" in hub.log_tail(400)


def test_the_service_s_hub_role_starts_and_stops_bubbles_but_cannot_open_them(running_hub: HubFixture):
    """The reconciler restarts bubbles after an opt-out rebuild and stops them at the end, with the
    service's hub scopes; the spawner still gates the start, and the service never gets in."""
    hub = running_hub
    token, bob = hub.service_role_token, requests.utils.quote(BOB)
    if hub.server_model(BOB, "beta") is not None:
        hub.api("DELETE", f"/users/{bob}/servers/beta")
        deadline = time.monotonic() + 60
        while hub.server_model(BOB, "beta") is not None and time.monotonic() < deadline:
            time.sleep(0.2)
    started = hub.api("POST", f"/users/{bob}/servers/beta", token=token, json={})
    assert started.status_code in (201, 202), started.text
    model = hub.wait_ready(BOB, "beta")
    refused = hub.api("POST", f"/users/{requests.utils.quote(ALICE)}/servers/beta", token=token, json={})
    assert refused.status_code == 403 and "not a member of study beta" in refused.json()["message"]

    inside = requests.get(model["url"] + "api/contents/", headers={"Authorization": f"token {token}"},
                          timeout=30, allow_redirects=False)
    assert inside.status_code in (302, 403), "the service's token opened a bubble"
    assert hub.api("POST", f"/users/{bob}/tokens", token=token, json={}).status_code == 403

    stopped = hub.api("DELETE", f"/users/{bob}/servers/beta", token=token)
    assert stopped.status_code in (202, 204), stopped.text
    deadline = time.monotonic() + 60
    while hub.server_model(BOB, "beta") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hub.server_model(BOB, "beta") is None


def test_one_bubble_at_a_time_per_person(running_hub: HubFixture):
    """A person's bubbles share one origin (one subdomain per user): a second one is refused while one runs."""
    hub, bob = running_hub, requests.utils.quote(BOB)
    browser = hub.login(BOB)
    assert hub.spawn(browser, BOB, "alpha").status_code in (201, 202)
    hub.wait_ready(BOB, "alpha")
    refused = hub.spawn(browser, BOB, "beta")
    assert refused.status_code == 409, refused.text
    assert "stop your bubble for study alpha" in refused.json()["message"]
    assert hub.server_model(BOB, "beta") is None or not hub.server_model(BOB, "beta").get("ready")
    assert hub.api("DELETE", f"/users/{bob}/servers/alpha").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while hub.server_model(BOB, "alpha") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hub.spawn(browser, BOB, "beta").status_code in (201, 202), "once alpha stopped, beta opens"
    hub.wait_ready(BOB, "beta")
    assert hub.api("DELETE", f"/users/{bob}/servers/beta").status_code in (202, 204)
    while hub.server_model(BOB, "beta") is not None and time.monotonic() < deadline + 60:
        time.sleep(0.2)


def test_a_hub_restart_finds_the_running_bubble_and_a_stop_leaves_nothing(running_hub: HubFixture):
    hub = running_hub
    if not (hub.server_model(ALICE, "alpha") or {}).get("ready"):
        browser = hub.login(ALICE)
        hub.spawn(browser, ALICE, "alpha")
        hub.wait_ready(ALICE, "alpha")
    before = bubble_state(hub, ALICE, "alpha")

    hub.restart()
    assert process_alive(before["launcher_pid"], before["launcher_start"]), "the hub restart killed the bubble"
    model = hub.wait_ready(ALICE, "alpha", timeout=60)
    assert model["state"]["launcher_pid"] == before["launcher_pid"]
    browser = hub.login(ALICE)
    lab = browser.get(model["url"] + "lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text, "the proxy route was not restored"

    # a stop (here by the user) removes every process and cgroup of the bubble; the workspace stays
    workspace = StudyPaths(hub.home, "alpha").workspace(ALICE)
    stop = browser.delete(f"{hub.url}/hub/api/users/{requests.utils.quote(ALICE)}/servers/alpha",
                          headers=hub.xsrf_headers(browser), timeout=60)
    assert stop.status_code in (202, 204), stop.text
    deadline = time.monotonic() + 30
    while hub.server_model(ALICE, "alpha") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hub.server_model(ALICE, "alpha") is None
    hub.reap()
    assert not process_alive(before["launcher_pid"], before["launcher_start"])
    assert hub.running_bubble_processes() == []
    assert hub.bubble_leftovers() == []
    assert workspace.is_dir()
    actions = [e.action for e in hub.context.audit.entries(study="alpha")]
    assert "bubble.spawn" in actions and "bubble.stop" in actions


@pytest.mark.parametrize("user, server, status, message", [
    (EVE, "alpha", 403, "you are not a member of study alpha"),
    (ALICE, "ended", 403, "study ended ended on"),
    (ALICE, "gamma", 403, "study gamma starts on"),
    (ALICE, "nosuch", 403, "there is no study named 'nosuch'"),
    (ALICE, "", 403, "bubbles are opened per study"),
])
def test_refusals_show_their_reason_to_the_user(running_hub: HubFixture, user, server, status, message):
    hub = running_hub
    browser = hub.login(user)
    path = f"/servers/{server}" if server else "/server"
    response = browser.post(f"{hub.url}/hub/api/users/{requests.utils.quote(user)}{path}",
                            headers=hub.xsrf_headers(browser), json={"study": "alpha"}, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert hub.server_model(user, server) is None or not hub.server_model(user, server).get("ready")
    refused = [e for e in hub.context.audit.entries(action="bubble.refused", actor=user)
               if e.detail.get("server") == server]
    assert refused, "the refusal was not audited"


def test_revoked_and_tampered_studies_are_refused(running_hub: HubFixture):
    hub = running_hub
    from bubble_manager.operations import StudyOperations
    from bubble_manager.studies import Actor

    create_study(hub.context, "revoked-one", [BOB], requester=BOB)
    StudyOperations(hub.context).revoke(Actor("sam@example.org", frozenset({"steward"})), "revoked-one",
                                        "consent withdrawn")
    create_study(hub.context, "tampered-one", [BOB], requester=BOB)
    extract = StudyPaths(hub.home, "tampered-one").extract
    data = bytearray(extract.read_bytes())
    data[-100] ^= 0xFF
    extract.write_bytes(bytes(data))

    browser = hub.login(BOB)
    for server, message in (("revoked-one", "was revoked"), ("tampered-one", "failed verification")):
        response = hub.spawn(browser, BOB, server)
        assert response.status_code == 403, response.text
        assert message in response.json()["message"]
    reasons = {e.study: e.detail["reason"] for e in hub.context.audit.entries(action="bubble.refused", actor=BOB)}
    assert reasons["revoked-one"] == "revoked" and reasons["tampered-one"] == "extract-invalid"


def test_a_bubble_that_ended_while_the_hub_was_down_is_found_stopped(running_hub: HubFixture):
    hub = running_hub
    browser = hub.login(BOB)
    assert hub.spawn(browser, BOB, "beta").status_code in (201, 202)
    state = hub.wait_ready(BOB, "beta")["state"]
    hub.stop_hub()
    os.kill(state["launcher_pid"], signal.SIGTERM)      # what the launcher does by itself at the study's end
    hub.reap()
    assert wait_for(lambda: not process_alive(state["launcher_pid"], state["launcher_start"]))
    hub.start()
    assert wait_for(lambda: hub.server_model(BOB, "beta") is None)
    assert hub.bubble_leftovers() == []
    routes = hub.api("GET", "/proxy").json()
    assert not any("/user/bob@example.org/beta" in route for route in routes)


def test_deleting_a_named_server_keeps_the_workspace(running_hub: HubFixture):
    hub = running_hub
    known = hub.api("GET", f"/users/{requests.utils.quote(BOB)}?include_stopped_servers").json()["servers"]
    if "beta" not in known:      # the server must exist in the hub (started once) to be deleted
        browser = hub.login(BOB)
        hub.spawn(browser, BOB, "beta")
        hub.wait_ready(BOB, "beta")
        hub.api("DELETE", f"/users/{requests.utils.quote(BOB)}/servers/beta")
        assert wait_for(lambda: hub.server_model(BOB, "beta") is None)
    workspace = StudyPaths(hub.home, "beta").workspace(BOB)
    (workspace / "analysis.py").write_text("print('kept')\n")
    response = hub.api("DELETE", f"/users/{requests.utils.quote(BOB)}/servers/beta", json={"remove": True})
    assert response.status_code in (202, 204), response.text
    assert (workspace / "analysis.py").read_text() == "print('kept')\n"
    deleted = hub.context.audit.entries(action="bubble.server-deleted", study="beta")
    assert deleted and deleted[-1].detail["workspace"] == "kept"


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_default_server_page_leads_to_the_panel(running_hub: HubFixture):
    hub = running_hub
    browser = hub.login(ALICE)
    page = browser.get(f"{hub.url}/hub/spawn/{requests.utils.quote(ALICE)}", timeout=60)
    assert "bubbles are opened per study" in page.text
    panel = panel_url(hub.url)  # the panel's own subdomain: the path alone on the hub's host is a 404
    assert panel.startswith("http://bubble-manager--service.hub.localhost:")
    assert f'<a href="{panel}">Open the bubble-manager panel</a>' in page.text
