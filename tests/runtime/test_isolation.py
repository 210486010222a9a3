"""Isolation of a local bubble, probed from inside with `bubble-manager sandbox exec` (same sandbox
as the bubble): every escape attempt fails, every allowed use works.

The network probes aim at a test host this suite creates in its own network namespace, joined to
the host by a veth pair (never a public address); the same probes from outside the sandbox reach
it, so a failure inside means isolation, not a broken test host.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bubble_manager.runtime import uids
from bubble_manager.runtime.spec import StudyPaths
from tests.hubfixture import ALICE, BOB, HubFixture

pytestmark = pytest.mark.bwrap

BUBBLE_MANAGER = str(Path(sys.executable).parent / "bubble-manager")

TEST_HOST_SERVERS = r"""
import socket, threading, sys
ip = sys.argv[1]
def tcp():
    server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, 8080)); server.listen()
    while True:
        connection, _ = server.accept(); connection.sendall(b"hello from the test host\n"); connection.close()
def udp(port, answer):
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); server.bind((ip, port))
    while True:
        data, peer = server.recvfrom(2048); server.sendto(answer(data), peer)
def dns_answer(query):  # any question gets the flags of an answer with no records
    return query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x00\x00\x00\x00\x00" + query[12:]
threading.Thread(target=tcp, daemon=True).start()
threading.Thread(target=udp, args=(9999, lambda d: b"echo:" + d), daemon=True).start()
threading.Thread(target=udp, args=(53, dns_answer), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

DNS_QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01"

PROBES = r"""
import ctypes, json, os, socket, subprocess, sys
args = json.loads(sys.argv[1])
results = {}
libc = ctypes.CDLL(None, use_errno=True)

def attempt(name, action):
    try:
        detail = action()
        results[name] = {"ok": True, "detail": str(detail)[:300]}
    except BaseException as error:
        results[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}"[:300]}

def tcp(host, port):
    with socket.create_connection((host, port), timeout=3) as connection:
        return connection.recv(100)

def udp(host, port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(payload, (host, port))
        return sock.recvfrom(2048)[0]

def read(path):
    with open(path, "rb") as handle:
        return len(handle.read(64))

def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    return path

def syscall(result):
    if result != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result

def raise_privileges():
    os.setuid(0)
    return os.getuid()

def capabilities():
    status = open("/proc/self/status").read()
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines() if line.startswith(("Cap", "NoNewPrivs"))}
    if int(caps["CapEff"], 16) or int(caps["CapPrm"], 16):
        return caps
    raise PermissionError(f"no capabilities: {caps}")

def host_processes():
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    names = []
    for pid in pids:
        try:
            names.append(open(f"/proc/{pid}/comm").read().strip())
        except OSError:
            pass
    if len(pids) > 4 or set(names) - {"bwrap", "python", "python3"}:
        return names
    raise LookupError(f"only the sandbox's own processes: {sorted(names)}")

def pip_list():
    output = subprocess.run([sys.executable, "-m", "pip", "list"], capture_output=True, text=True, timeout=120)
    if output.returncode != 0 or "duckdb" not in output.stdout:
        raise RuntimeError(output.stderr[-300:])
    return "duckdb listed"

def read_extract():
    import duckdb
    with duckdb.connect("/data/extract.duckdb", read_only=True) as db:
        return db.execute("SELECT count(*) FROM person").fetchone()[0]

def write_extract_with_duckdb():
    import duckdb
    with duckdb.connect("/data/extract.duckdb") as db:
        db.execute("CREATE TABLE stolen AS SELECT 1")
    return "written"

attempt("tcp_host_loopback", lambda: tcp("127.0.0.1", args["loopback_port"]))
attempt("tcp_host_address", lambda: tcp(args["host_address"], args["loopback_port"]))
attempt("tcp_test_host", lambda: tcp(args["test_host"], 8080))
attempt("udp_test_host", lambda: udp(args["test_host"], 9999, b"ping"))
attempt("dns_test_host", lambda: udp(args["test_host"], 53, bytes.fromhex(args["dns_query"])))
attempt("dns_resolver", lambda: socket.getaddrinfo("example.org", 443))
attempt("write_extract", lambda: open("/data/extract.duckdb", "r+b").close())
attempt("write_extract_duckdb", write_extract_with_duckdb)
attempt("replace_extract", lambda: os.rename("/data/extract.duckdb", "/data/x"))
attempt("read_hub_database", lambda: read(args["hub_database"]))
attempt("read_jupyterhub_database", lambda: read(args["jupyterhub_database"]))
attempt("read_keys", lambda: read(args["signing_key"]))
attempt("read_other_study", lambda: read(args["other_study_extract"]))
attempt("read_other_workspace", lambda: os.listdir(args["other_workspace"]))
attempt("read_host_etc", lambda: read("/etc/shadow"))
attempt("see_host_processes", host_processes)
attempt("mount", lambda: syscall(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
attempt("mount_command", lambda: subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], check=True, capture_output=True))
attempt("user_namespace", lambda: syscall(libc.unshare(0x10000000)))
attempt("user_namespace_command", lambda: subprocess.run(["unshare", "-U", "true"], check=True, capture_output=True))
attempt("raise_privileges", raise_privileges)
attempt("capabilities", capabilities)
attempt("read_extract", read_extract)
attempt("write_workspace", lambda: write("/home/jovyan/work/probe.txt", "from the bubble\n"))
attempt("write_shared", lambda: write("/home/jovyan/shared/probe.txt", "for the study\n"))
attempt("pip_list", pip_list)
results["uid_map"] = open("/proc/self/uid_map").read().split()
results["init_cmdline"] = open("/proc/1/cmdline", "rb").read().replace(b"\0", b" ").decode()[:200]
results["no_new_privs"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("NoNewPrivs")]
results["mounts"] = open("/proc/self/mountinfo").read()
print(json.dumps(results))
"""

FORBIDDEN = ["tcp_host_loopback", "tcp_host_address", "tcp_test_host", "udp_test_host", "dns_test_host",
             "dns_resolver", "write_extract", "write_extract_duckdb", "replace_extract", "read_hub_database",
             "read_jupyterhub_database", "read_keys", "read_other_study", "read_other_workspace", "read_host_etc",
             "see_host_processes", "mount", "mount_command", "user_namespace", "user_namespace_command",
             "raise_privileges", "capabilities"]
ALLOWED = ["read_extract", "write_workspace", "write_shared", "pip_list"]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class NamespacedTestHost:
    """A host in its own network namespace behind a veth pair, with TCP 8080, UDP echo 9999, DNS 53."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.namespace = f"bmtest-{tag}"
        self.outside, self.inside = f"bmv{tag}a", f"bmv{tag}b"
        third = secrets.randbelow(250) + 1
        self.host_address, self.address = f"10.213.{third}.1", f"10.213.{third}.2"
        self.servers: subprocess.Popen | None = None

    def start(self) -> None:
        ip("netns", "add", self.namespace)
        ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        ip("link", "set", self.inside, "netns", self.namespace)
        ip("addr", "add", f"{self.host_address}/30", "dev", self.outside)
        ip("link", "set", self.outside, "up")
        ip("netns", "exec", self.namespace, "ip", "addr", "add", f"{self.address}/30", "dev", self.inside)
        ip("netns", "exec", self.namespace, "ip", "link", "set", self.inside, "up")
        ip("netns", "exec", self.namespace, "ip", "link", "set", "lo", "up")
        self.servers = subprocess.Popen(["ip", "netns", "exec", self.namespace, sys.executable, "-c", TEST_HOST_SERVERS,
                                         self.address], stdout=subprocess.PIPE, text=True)
        assert self.servers.stdout is not None and self.servers.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.servers is not None:
            self.servers.kill()
            self.servers.wait()
        subprocess.run(["ip", "link", "del", self.outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)


class LoopbackListener:
    """A TCP service on the host, on 0.0.0.0 (so on loopback and on the veth address)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("0.0.0.0", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            connection.sendall(b"host secret service\n")
            connection.close()

    def close(self) -> None:
        self.server.close()


def sandbox_exec(hub: HubFixture, study: str, user: str, *command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([BUBBLE_MANAGER, "--home", str(hub.home), "sandbox", "exec", "--study", study, "--user", user,
                           "--reason", "isolation test suite", "--", *command],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def network():
    test_host, listener = NamespacedTestHost(), LoopbackListener()
    test_host.start()
    yield test_host, listener
    listener.close()
    test_host.stop()


@pytest.fixture(scope="module")
def probes(hub_home: HubFixture, network):
    test_host, listener = network
    bob_workspace = StudyPaths(hub_home.home, "alpha").workspace(BOB)
    bob_workspace.mkdir(parents=True, exist_ok=True)
    (bob_workspace / "notes.txt").write_text("bob's private notes\n")
    arguments = {
        "loopback_port": listener.port, "host_address": test_host.host_address, "test_host": test_host.address,
        "dns_query": DNS_QUERY.hex(),
        "hub_database": str(hub_home.home / "bubble-manager.sqlite"),
        "jupyterhub_database": str(hub_home.home / "jupyterhub.sqlite"),
        "signing_key": str(hub_home.home / "keys" / "hub-signing.key"),
        "other_study_extract": str(StudyPaths(hub_home.home, "beta").extract),
        "other_workspace": str(bob_workspace),
    }
    python = str(hub_home.bubble_env / "bin" / "python")
    completed = sandbox_exec(hub_home, "alpha", ALICE, python, "-c", PROBES, json.dumps(arguments))
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_test_host_answers_from_outside_the_sandbox(network):
    """Positive control: what the bubble cannot reach is reachable from the host."""
    test_host, listener = network
    with socket.create_connection((test_host.address, 8080), timeout=3) as connection:
        assert connection.recv(100).startswith(b"hello from the test host")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"ping", (test_host.address, 9999))
        assert sock.recvfrom(100)[0] == b"echo:ping"
        sock.sendto(DNS_QUERY, (test_host.address, 53))
        assert sock.recvfrom(512)[0][:2] == DNS_QUERY[:2]
    for address in ("127.0.0.1", test_host.host_address):
        with socket.create_connection((address, listener.port), timeout=3) as connection:
            assert connection.recv(100) == b"host secret service\n"


@pytest.mark.parametrize("attempt", FORBIDDEN)
def test_escape_attempt_fails(probes, attempt):
    assert probes[attempt]["ok"] is False, f"{attempt} succeeded inside the bubble: {probes[attempt]['detail']}"


@pytest.mark.parametrize("use", ALLOWED)
def test_allowed_use_works(probes, use):
    assert probes[use]["ok"] is True, f"{use} failed inside the bubble: {probes[use]['detail']}"


def test_the_network_fails_for_lack_of_a_route_not_of_a_firewall(probes):
    for attempt in ("tcp_test_host", "udp_test_host", "dns_test_host", "tcp_host_address"):
        assert "Network is unreachable" in probes[attempt]["detail"], probes[attempt]


def test_written_files_belong_to_the_member_and_the_study(hub_home: HubFixture, probes):
    ids = uids.lookup(hub_home.context.store, "alpha", ALICE)
    paths = StudyPaths(hub_home.home, "alpha")
    work = paths.workspace(ALICE) / "probe.txt"
    shared = paths.shared / "probe.txt"
    assert work.read_text() == "from the bubble\n"
    assert (work.stat().st_uid, work.stat().st_gid) == (ids.uid, ids.gid)
    assert shared.stat().st_gid == ids.gid and shared.stat().st_mode & 0o060 == 0o060, "members share shared/"
    assert ids.uid != 0 and ids.gid != 0


def test_the_sandbox_sees_no_host_paths_in_its_processes(probes):
    assert "['bwrap', 'python']" in probes["see_host_processes"]["detail"], probes["see_host_processes"]
    assert probes["init_cmdline"].startswith("/usr/bin/bwrap --args "), "bwrap's options (host paths) stay hidden"


def test_only_the_bubble_mounts_are_visible(hub_home: HubFixture, probes):
    mounts = probes["mounts"]
    assert str(hub_home.home / "keys") not in mounts and "bubble-manager.sqlite" not in mounts
    assert str(StudyPaths(hub_home.home, "beta").root) not in mounts
    assert re.search(r" /data/extract\.duckdb ro[, ]", mounts), "the extract must be mounted read-only"
    assert re.search(r" /usr ro[, ]", mounts)
    assert " / ro" in mounts or re.search(r" / ro[, ]", mounts), "the root must be read-only"


def test_uid_map_inside_and_the_host_uid_behind_it(hub_home: HubFixture, probes):
    ids = uids.lookup(hub_home.context.store, "alpha", ALICE)
    inside, outside, count = probes["uid_map"]
    assert (int(inside), int(count)) == (ids.uid, 1)
    # bwrap's nested user namespace (--disable-userns): seen from inside, the outer id is that of the
    # intermediate namespace; the host's view (below) shows the real, non-zero uid.
    assert probes["no_new_privs"] == ["1"]

    sleeper = subprocess.Popen([BUBBLE_MANAGER, "--home", str(hub_home.home), "sandbox", "exec", "--study", "alpha",
                                "--user", ALICE, "--reason", "host view of uid_map", "--", "sleep", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, found = time.monotonic() + 60, None
        while found is None and time.monotonic() < deadline:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if (entry / "cmdline").read_bytes() == b"sleep\x0060\x00":
                            found = entry
                    except OSError:
                        continue
            time.sleep(0.1)
        assert found is not None, "the sandboxed sleep never appeared"
        host_view = (found / "uid_map").read_text().split()
        status = (found / "status").read_text()
        assert host_view == [str(ids.uid), str(ids.uid), "1"], host_view
        assert re.search(rf"^Uid:\s+{ids.uid}\s+{ids.uid}\s+{ids.uid}\s+{ids.uid}$", status, re.M)
    finally:
        sleeper.terminate()
        sleeper.wait(timeout=30)


def test_sandbox_exec_is_audited_with_its_reason(hub_home: HubFixture, probes):
    entries = hub_home.context.audit.entries(action="sandbox.exec", study="alpha")
    assert any(e.detail["reason"] == "isolation test suite" and e.detail["member"] == ALICE for e in entries)
    assert all("command_sha256" in e.detail and "PROBES" not in json.dumps(e.detail) for e in entries)


def test_sandbox_exec_refuses_who_the_bubble_would_refuse(hub_home: HubFixture):
    completed = sandbox_exec(hub_home, "beta", ALICE, "true")
    assert completed.returncode == 2
    assert "you are not a member of study beta" in completed.stderr
    refused = hub_home.context.audit.entries(action="sandbox.refused", study="beta")
    assert refused and refused[-1].detail["rule"] == "not-member"


def test_sandbox_exec_needs_a_reason_and_a_command(hub_home: HubFixture):
    no_reason = subprocess.run([BUBBLE_MANAGER, "--home", str(hub_home.home), "sandbox", "exec", "--study", "alpha",
                                "--user", ALICE, "--reason", "  ", "--", "true"], capture_output=True, text=True)
    assert no_reason.returncode == 2 and "--reason must say why" in no_reason.stderr
    no_command = subprocess.run([BUBBLE_MANAGER, "--home", str(hub_home.home), "sandbox", "exec", "--study", "alpha",
                                 "--user", ALICE, "--reason", "x", "--"], capture_output=True, text=True)
    assert no_command.returncode == 2 and "no command given" in no_command.stderr


def test_sandbox_exec_is_for_root_only(hub_home: HubFixture, monkeypatch, capsys):
    from bubble_manager.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = main(["--home", str(hub_home.home), "sandbox", "exec", "--study", "alpha", "--user", ALICE, "--reason", "x",
                 "--", "true"])
    assert code == 2 and "sandbox commands need root" in capsys.readouterr().err


def test_sandbox_show_prints_the_bubble_s_command_line(hub_home: HubFixture):
    completed = subprocess.run([BUBBLE_MANAGER, "--home", str(hub_home.home), "--json", "sandbox", "show", "--study",
                                "alpha", "--user", ALICE], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    shown = json.loads(completed.stdout)
    ids = uids.lookup(hub_home.context.store, "alpha", ALICE)
    assert (shown["uid"], shown["gid"]) == (ids.uid, ids.gid)
    assert "--disable-userns" in shown["argv"] and shown["argv"][-1] == "--ServerApp.sock_mode=0600"
    assert "JUPYTERHUB_API_TOKEN" not in shown["environment"]
    assert shown["cgroup"]["memory_bytes"] == 10**9
