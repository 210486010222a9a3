"""The bwrap command line and the generated /etc, from plain data (no bwrap run here)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

from bubble_manager.runtime.sandbox import (MANIFEST_TARGET, SandboxHost, base_environment, bwrap_argv, etc_files)
from bubble_manager.runtime.spec import BubbleSpec, Mount, Resources

UTC = dt.timezone.utc
HOST = SandboxHost(uid=200001, gid=200000, bubble_env=Path("/opt/env"), etc_dir=Path("/run/bm/bubbles/u200001/etc"),
                   socket_dir=Path("/run/bm/bubbles/u200001/sock"), hub_socket_dir=Path("/run/bm/hub"),
                   manifest=Path("/srv/bm/studies/alpha/manifest.json"), hostname="alpha")
SPEC = BubbleSpec(
    study="alpha", member="alice@example.org", uid=200001, expires_at=dt.datetime(2027, 6, 1, tzinfo=UTC),
    mounts=(Mount(Path("/srv/bm/studies/alpha/extract.duckdb"), PurePosixPath("/data/extract.duckdb"), True),
            Mount(Path("/srv/bm/studies/alpha/workspaces/alice"), PurePosixPath("/home/jovyan/work"), False),
            Mount(Path("/srv/bm/studies/alpha/shared"), PurePosixPath("/home/jovyan/shared"), False)),
    environment={"HOME": "/home/jovyan", "BUBBLE_STUDY": "alpha"}, resources=Resources(cpu=1, memory_bytes=2**30),
    labels={}, annotations={}, command=("/opt/env/bin/jupyterhub-singleuser",))
PRESENT = frozenset({"/bin", "/lib", "/lib64", "/sbin", "/etc/ld.so.cache"})


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, arg in enumerate(argv) if arg == option]


def test_namespaces_and_hardening_flags():
    argv = bwrap_argv(SPEC, HOST, host_paths_present=PRESENT)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--assert-userns-disabled", "--new-session",
                 "--die-with-parent"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == "200001" and argv[argv.index("--gid") + 1] == "200000"
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_the_root_is_a_tmpfs_mounted_first_and_made_read_only_last():
    argv = bwrap_argv(SPEC, HOST, host_paths_present=PRESENT)
    first_mount = min(i for i, arg in enumerate(argv) if arg in ("--tmpfs", "--bind", "--ro-bind", "--dir"))
    assert argv[first_mount:first_mount + 2] == ["--tmpfs", "/"]
    separator = argv.index("--")
    assert argv[separator - 4:separator] == ["--remount-ro", "/", "--chdir", "/home/jovyan"]
    assert argv[separator + 1:] == ["/opt/env/bin/jupyterhub-singleuser"]


def test_exactly_the_bubble_mounts_and_nothing_else_of_the_host():
    argv = bwrap_argv(SPEC, HOST, host_paths_present=PRESENT)
    read_only = dict((target, source) for source, target in pairs(argv, "--ro-bind"))
    writable = dict((target, source) for source, target in pairs(argv, "--bind"))
    assert read_only["/data/extract.duckdb"] == "/srv/bm/studies/alpha/extract.duckdb"
    assert read_only[str(MANIFEST_TARGET)] == "/srv/bm/studies/alpha/manifest.json"
    assert read_only["/usr"] == "/usr" and read_only["/opt/env"] == "/opt/env"
    assert read_only["/run/jupyterhub"] == "/run/bm/hub"
    assert writable == {"/home/jovyan/work": "/srv/bm/studies/alpha/workspaces/alice",
                        "/home/jovyan/shared": "/srv/bm/studies/alpha/shared",
                        "/run/bubble": "/run/bm/bubbles/u200001/sock"}
    host_sources = {source for source in read_only.values()} | set(writable.values())
    allowed = {"/usr", "/opt/env", "/etc/ld.so.cache", "/run/bm/hub", *(str(HOST.etc_dir / n) for n in etc_files(1, 1, "a", "a"))}
    assert {s for s in host_sources if not s.startswith("/srv/bm/studies/alpha/") and s != "/run/bm/bubbles/u200001/sock"} <= allowed
    assert "/etc/mime.types" not in read_only, "optional host files are mounted only when present"
    for private in ("/tmp", "/dev/shm", "/home/jovyan"):
        assert ("--tmpfs", private) in [(argv[i], argv[i + 1]) for i in range(len(argv) - 1)]


def test_the_extract_stays_read_only_even_if_a_spec_said_otherwise():
    argv = bwrap_argv(SPEC, HOST, host_paths_present=PRESENT)
    assert ("/srv/bm/studies/alpha/extract.duckdb", "/data/extract.duckdb") in pairs(argv, "--ro-bind")
    assert ("/srv/bm/studies/alpha/extract.duckdb", "/data/extract.duckdb") not in pairs(argv, "--bind")


def test_a_command_replaces_the_spec_command_for_sandbox_exec():
    argv = bwrap_argv(SPEC, HOST, ("python3", "-V"), host_paths_present=PRESENT)
    assert argv[argv.index("--") + 1:] == ["python3", "-V"]


def test_generated_etc_has_one_user_no_dns_and_loopback_only():
    files = etc_files(200001, 200000, "alpha", "alpha")
    assert "jovyan:x:200001:200000:" in files["passwd"]
    assert "study:x:200000:jovyan" in files["group"]
    assert "nameserver" not in files["resolv.conf"]
    assert files["nsswitch.conf"].count("dns") == 0
    assert files["hosts"].startswith("127.0.0.1\tlocalhost alpha")


def test_the_environment_carries_no_secret_and_points_at_the_bubble():
    env = base_environment(SPEC, Path("/opt/env"))
    assert env["PATH"].startswith("/opt/env/bin:") and env["HOME"] == "/home/jovyan"
    assert env["BUBBLE_MANIFEST"] == "/data/manifest.json" and env["BUBBLE_STUDY"] == "alpha"
    assert not any("TOKEN" in key for key in env)
