"""The quarantine is never reachable from a bubble, and the parser's sandbox sees nothing of the host.

Probed from inside with `bubble-manager sandbox exec` (exactly the sandbox of the member's bubble)
and, as a second layer, from the host as the bubble's own uid; positive controls show the probes
can see what is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bubble_manager.airlock import quarantine
from bubble_manager.airlock.operations import AirlockOperations
from bubble_manager.airlock.sandbox import _limits, bwrap_parser_argv, python_roots, _host_paths_present
from bubble_manager.airlock.settings import AirlockSettings
from bubble_manager.runtime import uids
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.studies import Actor

pytestmark = [pytest.mark.bwrap, pytest.mark.slow]
BUBBLE_MANAGER = str(Path(sys.executable).parent / "bubble-manager")

PROBE = r"""
import json, os, sys
paths = json.loads(sys.argv[1])
found = {}
for name, path in paths.items():
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        found[name] = "read"
    except FileNotFoundError:
        found[name] = "absent"
    except PermissionError:
        found[name] = "denied"
    except OSError as error:
        found[name] = type(error).__name__
found["mounts_mention_airlock"] = "airlock" in open("/proc/self/mountinfo").read()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def hub_home():
    from tests.hubfixture import HubFixture, hub_for_module, hub_missing_reason

    yield from hub_for_module(hub_missing_reason(), HubFixture.create)


@pytest.fixture(scope="module")
def quarantined(hub_home):
    """An output request of alice's in study alpha, copied into the quarantine."""
    from tests.hubfixture import ALICE

    from .flows import write_outbox

    context = hub_home.context
    workspace = StudyPaths(context.home, "alpha").workspace(ALICE)
    workspace.mkdir(parents=True, exist_ok=True)
    write_outbox(context, "alpha", ALICE, "paper", {"t.csv": b"group,n\na,40\nb,55\n"}, counts={"t.csv": ["n"]})
    document = AirlockOperations(context).submit_output(Actor(ALICE, frozenset({"researcher"})), "alpha", "paper")
    return quarantine.file_path(context.home, "alpha", document["id"], "t.csv")


def sandbox_exec(hub, user: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([BUBBLE_MANAGER, "--home", str(hub.home), "sandbox", "exec", "--study", "alpha", "--user",
                           user, "--reason", "airlock isolation test", "--", *command],
                          capture_output=True, text=True, timeout=180)


def test_the_quarantine_is_not_reachable_from_the_bubble(hub_home, quarantined):
    from tests.hubfixture import ALICE

    assert quarantined.exists() and quarantined.read_bytes().startswith(b"group,n")  # positive control (host)
    paths = {"quarantined_copy": str(quarantined), "quarantine_root": str(quarantine.airlock_root(hub_home.home)),
             "own_outbox_file": "/home/jovyan/work/outbox/paper/t.csv"}
    python = str(hub_home.bubble_env / "bin" / "python")
    completed = sandbox_exec(hub_home, ALICE, python, "-c", PROBE, json.dumps(paths))
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found == {"quarantined_copy": "absent", "quarantine_root": "absent", "own_outbox_file": "read",
                     "mounts_mention_airlock": False}


def test_even_the_host_path_is_closed_to_the_bubble_uid(hub_home, quarantined):
    from tests.hubfixture import ALICE

    ids = uids.lookup(hub_home.context.store, "alpha", ALICE)
    assert ids is not None
    for folder in (quarantine.airlock_root(hub_home.home), quarantined.parent.parent.parent):
        assert folder.stat().st_uid == 0 and folder.stat().st_mode & 0o077 == 0
    bubble_python = str(hub_home.bubble_env / "bin" / "python")
    probe = subprocess.run([bubble_python, "-c", PROBE, json.dumps({"copy": str(quarantined)})],
                           user=ids.uid, group=ids.gid, extra_groups=[], capture_output=True, text=True, timeout=60)
    assert json.loads(probe.stdout)["copy"] == "denied", probe.stderr


PARSER_PROBE = r"""
import json, os, socket, sys, ctypes
paths = json.loads(sys.argv[1])
found = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
for name, path in paths.items():
    found[name] = os.path.exists(path)
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=3)
    found["loopback_of_host"] = "connected"
except OSError:
    found["loopback_of_host"] = "refused"
libc = ctypes.CDLL(None, use_errno=True)
found["new_user_namespace"] = libc.unshare(0x10000000) == 0
found["capabilities"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
try:
    open("/usr/probe", "w")
    found["write_usr"] = True
except OSError:
    found["write_usr"] = False
print(json.dumps(found))
"""


def test_the_parser_sandbox_sees_no_host_file_and_no_network(hub_home, quarantined):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    settings = AirlockSettings()
    argv = bwrap_parser_argv(python=sys.executable, roots=python_roots(), as_root=True, uid=settings.parser_uid,
                             host_paths_present=_host_paths_present())
    assert argv[-3:] == ["-I", "-m", "bubble_manager.airlock.parser_child"]
    paths = {"quarantine": str(quarantined), "keys": str(hub_home.home / "keys"),
             "store": str(hub_home.home / "bubble-manager.sqlite"), "workspaces": str(StudyPaths(
                 hub_home.home, "alpha").workspaces), "python": sys.executable}
    try:
        completed = subprocess.run(argv[:-3] + ["-I", "-c", PARSER_PROBE, json.dumps(paths), str(port)],
                                   capture_output=True, text=True, timeout=60,
                                   preexec_fn=_limits(settings, file_bytes=1 << 20, new_network=False))
    finally:
        listener.close()
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert found == {"uid": 65534, "gid": 65534, "groups": [], "quarantine": False, "keys": False, "store": False,
                     "workspaces": False, "python": True, "loopback_of_host": "refused", "new_user_namespace": False,
                     "capabilities": "0000000000000000", "write_usr": False}
    assert os.path.exists(paths["keys"])  # positive control: they are there on the host


def test_a_python_root_under_tmp_stays_visible_in_the_parser_sandbox(tmp_path):
    """A checkout (and its .venv) under /tmp: the sandbox's own /tmp must not hide it."""
    root = tmp_path / "python-root"
    root.mkdir(mode=0o755)
    (root / "probe.txt").write_text("visible\n")
    (root / "probe.txt").chmod(0o644)
    settings = AirlockSettings()
    argv = bwrap_parser_argv(python=sys.executable, roots=[*python_roots(), root], as_root=True,
                             uid=settings.parser_uid, host_paths_present=_host_paths_present())
    completed = subprocess.run(argv[:-3] + ["-I", "-c", "import sys; print(open(sys.argv[1]).read().strip())",
                                            str(root / "probe.txt")], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "visible"
