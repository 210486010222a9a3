"""A real JupyterHub for tests: configurable-http-proxy, `LocalBubbleSpawner`, unix sockets.

    from tests.hubfixture import HubFixture, hub_missing_reason

    hub = HubFixture.create()            # home with store, keys, catalog, studies, extracts
    hub.start()                           # jupyterhub -f hub_config/demo_config.py + test settings
    browser = hub.login("alice@example.org")   # a requests.Session signed in through the login form
    hub.api("GET", "/users")              # hub REST API with the fixture's admin service token
    hub.restart()                         # stop and start the hub; bubbles keep running
    hub.close()                           # stop every bubble, the hub and the proxy; check nothing is left

Everything lives in a temporary folder (`home`, lowercase for the socket paths, removed at
close). The hub listens on a free port of 127.0.0.1; user servers live on subdomains of
`localhost` (`subdomain_host`), which this module resolves to 127.0.0.1 for `requests`.
The studies: `alpha` (active; members alice and bob), `beta` (active; member bob), `ended`
(active in the store but past its end date), `gamma` (approved, not yet active), each with a small
signed extract laid out as `StudyPaths` says. Users: alice, bob (researchers), sam (steward),
ada (admin), eve (researcher in no study).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import urllib3.util.connection

from bubble_manager import clock
from bubble_manager.config import load_settings
from bubble_manager.operations import Context, StudyOperations
from bubble_manager.runtime import cgroups
from bubble_manager.runtime.launcher import process_alive, read_state
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.signing import init_signing_key
from bubble_manager.studies import Actor
from bubble_manager.study_request import canonical_json, load_request_yaml

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_CATALOG = REPOSITORY / "bubble_manager" / "data" / "demo_catalog.yaml"
EXAMPLE_REQUEST = REPOSITORY / "docs" / "examples" / "study-request.yaml"
CHP = REPOSITORY / "node_modules" / ".bin" / "configurable-http-proxy"
DEFAULT_BUBBLE_ENV = Path(os.environ.get("BUBBLE_ENV", "/opt/bubble-manager/bubble-env"))
JUPYTERHUB = Path(os.environ.get("VIRTUAL_ENV", REPOSITORY / ".venv")) / "bin" / "jupyterhub"

ALICE, BOB, SAM, ADA, EVE = ("alice@example.org", "bob@example.org", "sam@example.org", "ada@example.org",
                             "eve@example.org")
GROUPS = {"researchers": [ALICE, BOB, EVE], "stewards": [SAM], "admins": [ADA]}
PR_SET_CHILD_SUBREAPER = 36


def hub_for_module(reason: str | None, create: Callable[[], "HubFixture"],
                   start: Callable[["HubFixture"], None] | None = None) -> Iterator["HubFixture"]:
    """The body of every hub fixture (`yield from` it): skip with `reason` when there is one, create
    the hub, `start` it (closing it and all it started if that fails), hand it over, then check
    that closing it left no process or cgroup behind."""
    if reason:
        pytest.skip(reason)
    hub = create()
    if start is not None:
        try:
            start(hub)
        except BaseException:
            hub.close()
            raise
    yield hub
    leftovers = hub.close()
    assert leftovers == [], f"processes or cgroups left behind: {leftovers}"


def hub_missing_reason(bubble_env: Path = DEFAULT_BUBBLE_ENV) -> str | None:
    """Why a real hub with bubbles cannot run here (None when it can); names what `make test` installs."""
    if os.geteuid() != 0:
        return "local bubbles need root (the hub switches to each bubble's uid)"
    if not Path("/usr/bin/bwrap").exists():
        return "bubblewrap is missing: `make test` installs it (SYSTEM_PACKAGES in mk/runtime.mk)"
    if not CHP.exists():
        return f"configurable-http-proxy is missing at {CHP}: `make proxy` (mk/runtime.mk) installs it"
    if not (bubble_env / "bin" / "jupyterhub-singleuser").exists():
        return f"the bubble environment {bubble_env} is missing: `make bubble-env` (mk/runtime.mk) builds it"
    return None


# --- name resolution: *.localhost is the loopback for requests (browsers do the same) ----------

_original_create_connection = urllib3.util.connection.create_connection


def _loopback_localhost(address, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
    host, port = address
    if host == "localhost" or str(host).endswith(".localhost"):
        host = "127.0.0.1"
    return _original_create_connection((host, port), *args, **kwargs)


urllib3.util.connection.create_connection = _loopback_localhost


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def become_subreaper() -> None:
    """Orphaned launchers (their hub restarted) are reparented to this process, which reaps them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


# --- the fixture's studies ---------------------------------------------------------------------

FIXTURE_TABLES = {
    "person": [("person_id", "person_key", "VARCHAR", "pseudonym"),
               ("gender_concept_id", "plain", "INTEGER", "keep"),
               ("birth_year", "quasi_identifier", "INTEGER", "year")],
    "measurement": [("measurement_id", "record_key", "BIGINT", "renumber"),
                    ("person_id", "person_key", "VARCHAR", "pseudonym"),
                    ("measurement_date", "date", "DATE", "shift_days"),
                    ("value_as_number", "plain", "DOUBLE", "keep")],
}


def write_fixture_extract(context: Context, slug: str, request_hash: str, persons: int = 50) -> Path:
    """A small extract.duckdb and its signed manifest (the extract subsystem's format)."""
    import duckdb

    paths = StudyPaths(context.home, slug)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.extract.unlink(missing_ok=True)
    with duckdb.connect(str(paths.extract)) as db:
        db.execute("CREATE TABLE person (person_id VARCHAR, gender_concept_id INTEGER, birth_year INTEGER)")
        db.execute("CREATE TABLE measurement (measurement_id BIGINT, person_id VARCHAR, measurement_date DATE, "
                   "value_as_number DOUBLE)")
        for number in range(persons):
            pseudonym = f"P-{slug[:4].upper()}-{number:05d}"
            db.execute("INSERT INTO person VALUES (?, ?, ?)", [pseudonym, 8507 if number % 2 else 8532, 1950 + number % 40])
            db.execute("INSERT INTO measurement VALUES (?, ?, DATE '2020-01-01' + ?, ?)",
                       [number + 1, pseudonym, number, 5.0 + number / 10])
    data = paths.extract.read_bytes()
    body = {
        "format": "bubble-manager-extract/1", "study": slug, "request_hash": request_hash, "request_version": 1,
        "warehouse": {"name": "fixture", "fingerprint": "0" * 64},
        "plan": {"study": slug, "request_hash": request_hash, "warehouse": "fixture", "date_shift_days": 180,
                 "tables": {table: [{"source": name, "output": name, "column_class": kind, "source_type": sql_type,
                                     "output_type": sql_type, "transform": transform, "domain": None}
                                    for name, kind, sql_type, transform in columns]
                            for table, columns in FIXTURE_TABLES.items()},
                 "excluded": [{"table": "person", "column": "family_name",
                               "reason": "direct identifier: never leaves the warehouse"}],
                 "person_table": "person", "opt_out_table": None},
        "persons": persons, "rows": {"person": persons, "measurement": persons}, "risk": {},
        "extract": {"file": "extract.duckdb", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
        "vault": {"file": "vault.age", "recipients": []},
        "created_at": clock.isoformat(clock.utcnow()), "built_by": "tests.hubfixture",
        "software": {"bubble_manager": "test", "duckdb": duckdb.__version__},
    }
    signer = context.signer
    assert signer is not None
    document = {"manifest": body, "signature": {"algorithm": "ed25519", "key_id": signer.key_id,
                                                "value": signer.sign(canonical_json(body).encode("utf-8"))}}
    paths.manifest.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return paths.extract


def request_document(slug: str, members: list[str], starts: dt.date, ends: dt.date, **overrides: Any) -> dict:
    document = load_request_yaml(EXAMPLE_REQUEST.read_text())
    document.update(slug=slug, title=f"Fixture study {slug}", members=members, starts=starts.isoformat(),
                    ends=ends.isoformat(), resources={"cpu": 1, "memory": "1G"})
    document.update(overrides)
    return document


@contextlib.contextmanager
def clock_at(moment: dt.datetime) -> Iterator[None]:
    original = clock.utcnow
    clock.utcnow = lambda: moment
    try:
        yield
    finally:
        clock.utcnow = original


def create_study(context: Context, slug: str, members: list[str], *, requester: str = ALICE, activate: bool = True,
                 starts: dt.date | None = None, ends: dt.date | None = None,
                 resources: dict[str, Any] | None = None) -> None:
    """An approved (and by default active) study with a signed fixture extract."""
    today = clock.utcnow().date()
    starts = starts or today - dt.timedelta(days=1)
    ends = ends or today + dt.timedelta(days=90)
    operations = StudyOperations(context, via={"channel": "tests"})
    researcher, steward, admin = (Actor(requester, frozenset({"researcher"})), Actor(SAM, frozenset({"steward"})),
                                  Actor(ADA, frozenset({"admin"})))
    moment = min(clock.utcnow(), clock.start_of_day(starts) + dt.timedelta(hours=12))
    with clock_at(moment - dt.timedelta(days=1) if moment > clock.utcnow() else moment):
        extra = {"resources": resources} if resources else {}
        study = operations.request(researcher, request_document(slug, members, starts, ends, **extra))
        operations.submit(researcher, slug)
        operations.approve(steward, slug, "fixture")
        if activate:
            operations.activate(admin, slug)
    write_fixture_extract(context, slug, study.request_hash)


# --- the hub -------------------------------------------------------------------------------------

@dataclass
class HubFixture:
    root: Path
    bubble_env: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(32))
    # a service holding exactly the bubble-manager service's hub scopes (runtime/hubapi.py)
    service_role_token: str = field(default_factory=lambda: secrets.token_hex(32))
    uid_base: int = field(default_factory=lambda: 400000 + secrets.randbelow(500) * 1000)
    process: subprocess.Popen | None = None
    context: Context | None = None
    launchers: set[int] = field(default_factory=set)

    @classmethod
    def create(cls, bubble_env: Path = DEFAULT_BUBBLE_ENV, *, with_service: bool = False) -> "HubFixture":
        """A fresh home; `with_service` also runs the bubble-manager service (panel and REST API)."""
        # Not under pytest's tmp folder (private to root, so unreachable by bubble uids); lowercase
        # because socket paths travel in http+unix URLs.
        root = Path(tempfile.mkdtemp(prefix="bmhub-", dir="/tmp"))
        os.chmod(root, 0o711)
        hub = cls(root=root, bubble_env=bubble_env)
        hub._prepare_home(with_service)
        return hub

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def runtime_dir(self) -> Path:
        return self.root / "run"

    @property
    def url(self) -> str:
        return f"http://hub.localhost:{self.port}"  # a dotted name: cookie jars share Domain cookies with it

    @property
    def cgroup_parent(self) -> str:
        return f"bubble-manager-test-{self.root.name.lower()}"

    def _prepare_home(self, with_service: bool) -> None:
        home = self.home
        (home / "warehouse").mkdir(parents=True)
        os.chmod(home, 0o711)
        init_signing_key(home)
        (home / "bubble_manager_config.py").write_text(
            f"c.LocalBubbles.bubble_env = {str(self.bubble_env)!r}\n"
            f"c.LocalBubbles.runtime_dir = {str(self.runtime_dir)!r}\n"
            f"c.LocalBubbles.uid_min = {self.uid_base}\n"
            f"c.LocalBubbles.uid_max = {self.uid_base + 999}\n"
            f"c.LocalBubbles.cgroup_parent = {self.cgroup_parent!r}\n"
            "c.LocalBubbles.stop_grace_seconds = 3.0\n")
        settings = load_settings(home)
        shutil.copy(DEMO_CATALOG, settings.catalog_path)
        self.context = Context.open(settings)
        today = clock.utcnow().date()
        create_study(self.context, "alpha", [ALICE, BOB])
        create_study(self.context, "beta", [BOB], requester=BOB)
        create_study(self.context, "gamma", [ALICE], activate=False, starts=today + dt.timedelta(days=10))
        create_study(self.context, "ended", [ALICE], starts=today - dt.timedelta(days=60),
                     ends=today - dt.timedelta(days=2))
        (self.root / "demo-users.json").write_text(json.dumps({"password": self.password, "groups": GROUPS}))
        os.chmod(self.root / "demo-users.json", 0o600)
        (self.root / "jupyterhub_config.py").write_text(
            "from pathlib import Path\n"
            f"load_subconfig({str(REPOSITORY / 'hub_config' / 'demo_config.py')!r})\n"
            + ("" if with_service else
               "c.JupyterHub.services = []\nc.JupyterHub.default_url = '/hub/home'\n"
               "c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if not r.get('services')"
               " or r['name'] == 'admin']\n") +
            "c.JupyterHub.services.append({'name': 'test-admin', 'api_token': " + repr(self.admin_token) + "})\n"
            "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'], 'scopes': "
            "['admin:users', 'admin:servers', 'tokens', 'read:hub', 'proxy', 'list:users', 'admin:groups']})\n"
            "from bubble_manager.runtime.hubapi import SERVICE_SCOPES\n"
            "c.JupyterHub.services.append({'name': 'test-service-role', 'api_token': "
            + repr(self.service_role_token) + "})\n"
            "c.JupyterHub.load_roles.append({'name': 'test-service-role', 'services': ['test-service-role'], "
            "'scopes': list(SERVICE_SCOPES)})\n"
            "c.JupyterHub.log_level = 'DEBUG'\n")

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTERHUB_", "BUBBLE_"))}
        env.update(BUBBLE_MANAGER_HOME=str(self.home), BUBBLE_HUB_URL=self.url,
                   BUBBLE_HUB_BIND_URL=f"http://127.0.0.1:{self.port}",
                   BUBBLE_DEMO_USERS=str(self.root / "demo-users.json"))
        return env

    # --- process ---

    def start(self, timeout: float = 60) -> None:
        become_subreaper()
        log = open(self.root / "jupyterhub.log", "ab")
        self.process = subprocess.Popen([str(JUPYTERHUB), "-f", str(self.root / "jupyterhub_config.py")],
                                        cwd=self.root, env=self.environment(), stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyterhub did not answer within {timeout} s:\n{self.log_tail()}")

    def stop_hub(self) -> None:
        """Stop the hub (and the proxy it started), leaving bubbles running."""
        self._remember_launchers()
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop_hub()
        self.start()

    def proxy_pid(self) -> int | None:
        try:
            pid = int((self.home / "jupyterhub-proxy.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid, None) else None

    def log_tail(self, lines: int = 60) -> str:
        path = self.root / "jupyterhub.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- hub API ---

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=120,
                                headers={"Authorization": f"token {token or self.admin_token}"}, **kwargs)

    def login(self, name: str, password: str | None = None) -> requests.Session:
        """A browser-like session signed in through the hub's login form."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {"username": name, "password": password or self.password, "_xsrf": xsrf.group(1) if xsrf else ""}
        response = session.post(f"{self.url}/hub/login", data=data, timeout=30, allow_redirects=False)
        if response.status_code != 302:
            raise AssertionError(f"login of {name} failed: {response.status_code} {response.text[:300]}")
        return session

    def xsrf_headers(self, session: requests.Session) -> dict[str, str]:
        """Headers a signed-in browser page sends with its hub API calls (the page's XSRF token)."""
        for cookie in [c for c in session.cookies if c.name == "_xsrf"]:  # one from before the login is stale
            session.cookies.clear(cookie.domain, cookie.path, cookie.name)
        page = session.get(f"{self.url}/hub/home", timeout=30)
        token = re.search(r'xsrf_token: "([^"]+)"', page.text)
        return {"X-XSRFToken": token.group(1) if token else "", "Referer": f"{self.url}/hub/home"}

    def spawn(self, session: requests.Session, name: str, server: str) -> requests.Response:
        """Start a named server as the signed-in user does from the hub's pages."""
        return session.post(f"{self.url}/hub/api/users/{requests.utils.quote(name)}/servers/{server}",
                            headers=self.xsrf_headers(session), json={}, timeout=120)

    def user_token(self, name: str, scopes: list[str] | None = None) -> str:
        body: dict[str, Any] = {"note": "tests"}
        if scopes is not None:
            body["scopes"] = scopes
        response = self.api("POST", f"/users/{requests.utils.quote(name)}/tokens", json=body)
        response.raise_for_status()
        return response.json()["token"]

    def server_model(self, name: str, server: str) -> dict | None:
        model = self.api("GET", f"/users/{requests.utils.quote(name)}").json()
        return (model.get("servers") or {}).get(server)

    def wait_ready(self, name: str, server: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model(name, server)
            if model and model.get("ready"):
                return model
            if model is None or not model.get("pending"):
                if model is None:
                    raise AssertionError(f"server {name}/{server} is gone:\n{self.log_tail()}")
            time.sleep(0.2)
        raise AssertionError(f"server {name}/{server} not ready within {timeout} s:\n{self.log_tail()}")

    def user_host(self, name: str, server: str) -> str:
        """The subdomain host of a user's server, as the hub reports it."""
        model = self.server_model(name, server) or {}
        match = re.match(r"https?://([^/]+)/", model.get("url") or "")
        if not match:
            raise AssertionError(f"no subdomain URL for {name}/{server}: {model}")
        return match.group(1)

    # --- bubbles ---

    def _remember_launchers(self) -> None:
        runtime = self.runtime_dir / "bubbles"
        for state_file in runtime.glob("*/state.json") if runtime.exists() else ():
            state = read_state(state_file)
            if state.get("launcher_pid"):
                self.launchers.add(int(state["launcher_pid"]))

    def running_bubble_processes(self) -> list[int]:
        """Pids of live processes run by this fixture's bubble uids, or launchers of this fixture."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            state = re.search(r"^State:\s+(\S)", status, re.M)
            uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
            if state and state.group(1) == "Z":
                continue
            if uid and self.uid_base <= int(uid.group(1)) <= self.uid_base + 999:
                found.append(int(entry.name))
            elif int(entry.name) in self.launchers and process_alive(int(entry.name), None):
                found.append(int(entry.name))
        return found

    def reap(self) -> None:
        for pid in list(self.launchers):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def stop_all_bubbles(self) -> None:
        for user in self.api("GET", "/users").json():
            for server_name, model in (user.get("servers") or {}).items():
                if model.get("ready") or model.get("pending"):
                    self.api("DELETE", f"/users/{requests.utils.quote(user['name'])}/servers/{server_name}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [server for user in self.api("GET", "/users").json()
                    for server in (user.get("servers") or {}).values()]
            if not busy:
                return
            time.sleep(0.2)

    def leftovers(self) -> list[str]:
        """Anything this fixture started that is still there: the proxy, bubble processes, cgroups."""
        return ([f"proxy {self.proxy_pid()} still running"] if self.proxy_pid() else []) + self.bubble_leftovers()

    def bubble_leftovers(self) -> list[str]:
        """Processes and cgroups of bubbles that are still there."""
        problems = [f"process {pid} still running" for pid in self.running_bubble_processes()]
        version = cgroups.detect(Path("/sys/fs/cgroup"))
        folders = ([Path("/sys/fs/cgroup") / c / self.cgroup_parent for c in cgroups.V1_CONTROLLERS]
                   if version == "v1" else [Path("/sys/fs/cgroup") / self.cgroup_parent])
        for folder in folders:
            if folder.exists():
                problems += [f"cgroup {child} left" for child in folder.iterdir() if child.is_dir()]
        return problems

    def close(self) -> list[str]:
        """Stop everything; return what had to be killed (a test asserts it is empty)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.stop_all_bubbles()
        self.stop_hub()
        self.reap()
        problems = self.leftovers()
        for pid in [*self.running_bubble_processes(), self.proxy_pid()]:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
        self.reap()
        self._remove_cgroups()
        if self.context is not None:
            self.context.close()
        shutil.rmtree(self.root, ignore_errors=True)
        return problems

    def _remove_cgroups(self) -> None:
        base = Path("/sys/fs/cgroup")
        for folder in [base / c / self.cgroup_parent for c in cgroups.V1_CONTROLLERS] + [base / self.cgroup_parent]:
            if folder.exists():
                for child in folder.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                with contextlib.suppress(OSError):
                    folder.rmdir()


# --- code in a bubble's kernel -------------------------------------------------------------------

def run_in_kernel(hub: HubFixture, user: str, server: str, code: str, *, token: str, timeout: float = 120) -> dict:
    """Start a kernel in the user's bubble through the proxy, run `code`, return
    {"stdout": ..., "error": ...}; the kernel is shut down afterwards."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    host = hub.user_host(user, server)
    prefix = re.sub(r"^https?://[^/]+", "", hub.server_model(user, server)["url"]).rstrip("/")
    base = f"http://127.0.0.1:{hub.port}{prefix}"
    headers = {"Host": host, "Authorization": f"token {token}"}
    kernel = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]

    async def execute() -> dict:
        request = HTTPRequest(f"ws://127.0.0.1:{hub.port}{prefix}/api/kernels/{kernel_id}/channels", headers=headers)
        connection = await websocket_connect(request)
        message_id = uuid.uuid4().hex
        connection.write_message(json.dumps({
            "header": {"msg_id": message_id, "username": "tests", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, error = [], None
        while True:
            raw = await connection.read_message()
            if raw is None:
                raise AssertionError("kernel channel closed")
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != message_id:
                continue
            kind = message["header"]["msg_type"]
            if kind == "stream":
                out.append(message["content"]["text"])
            elif kind == "error":
                error = f"{message['content']['ename']}: {message['content']['evalue']}"
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                connection.close()
                return {"stdout": "".join(out), "error": error}

    try:
        return asyncio.run(asyncio.wait_for(execute(), timeout))
    finally:
        requests.delete(f"{base}/api/kernels/{kernel_id}", headers=headers, timeout=60)
