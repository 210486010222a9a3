"""Spawn-time benchmark: a bwrap bubble vs a plain LocalProcessSpawner server, same run.

    .venv/bin/python bench/spawn.py [--rounds 7]

Starts two real hubs side by side (CHP, the same hub configuration, the same bubble environment's
jupyterhub-singleuser and JupyterLab): one with `LocalBubbleSpawner` (gate, extract check, uid
allocation, launcher, cgroup limits, bwrap sandbox, unix sockets), one with JupyterHub's plain
`LocalProcessSpawner` (same single-user server, on a TCP port of 127.0.0.1, as an unprivileged
user, no sandbox). Each round starts then stops one server on each hub, alternating which goes
first, so both see the same machine load. A spawn is timed from the API request to the server
being ready (the hub waits for the server's HTTP endpoint before it answers).

Prints the median spawn time of each and their ratio bubble / plain (target <= 1.15). Absolute
times are context only; run as root (bubbles switch to their own uids).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hubfixture import ALICE, HubFixture, create_study, hub_missing_reason  # noqa: E402

PLAIN_SPAWNER = '''
import os
from jupyterhub.spawner import LocalProcessSpawner


class PlainLocalProcessSpawner(LocalProcessSpawner):
    """JupyterHub's LocalProcessSpawner, run as nobody (hub users have no Unix account here)."""

    def make_preexec_fn(self, name):
        def preexec():
            os.setgid(65534)
            os.setgroups([])
            os.setuid(65534)
        return preexec

    def user_env(self, env):
        env.update(HOME={home!r}, USER="nobody", JUPYTER_RUNTIME_DIR={home!r} + "/runtime",
                   PATH={env_bin!r} + ":/usr/bin:/bin")
        return env


c.JupyterHub.spawner_class = PlainLocalProcessSpawner
c.Spawner.cmd = [{env_bin!r} + "/jupyterhub-singleuser"]
c.Spawner.notebook_dir = {home!r}
c.Spawner.default_url = "/lab"
c.Spawner.disable_user_config = True
'''


def timed_spawn(hub: HubFixture, server: str) -> float:
    started = time.perf_counter()
    response = hub.api("POST", f"/users/{ALICE}/servers/{server}", json={})
    if response.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: {response.status_code} {response.text}\n{hub.log_tail()}")
    hub.wait_ready(ALICE, server, timeout=120)
    return time.perf_counter() - started


def stop(hub: HubFixture, server: str) -> None:
    hub.api("DELETE", f"/users/{ALICE}/servers/{server}")
    deadline = time.monotonic() + 60
    while hub.server_model(ALICE, server) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="spawns of each kind (default 7)")
    args = parser.parse_args()
    reason = hub_missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    bubble_hub, plain_hub = HubFixture.create(), HubFixture.create()
    # The study's limits let the bubble use the whole machine, as the plain server may.
    create_study(bubble_hub.context, "bench", [ALICE], resources={"cpu": os.cpu_count() or 1, "memory": "4G"})
    plain_home = plain_hub.root / "plain-home"
    (plain_home / "runtime").mkdir(parents=True)
    os.chown(plain_home, 65534, 65534)
    os.chown(plain_home / "runtime", 65534, 65534)
    with open(plain_hub.root / "jupyterhub_config.py", "a") as config:
        config.write(PLAIN_SPAWNER.format(home=str(plain_home), env_bin=str(plain_hub.bubble_env / "bin")))
    for hub in (bubble_hub, plain_hub):
        with open(hub.root / "jupyterhub_config.py", "a") as config:
            config.write("c.JupyterHub.slow_spawn_timeout = 120\nc.JupyterHub.log_level = 'INFO'\n")
    times: dict[str, list[float]] = {"bubble": [], "plain": []}
    try:
        bubble_hub.start()
        plain_hub.start()
        servers = {"bubble": (bubble_hub, "bench"), "plain": (plain_hub, "bench")}
        for hub, server in servers.values():      # warm-up: caches, first imports, the hub's store connection
            timed_spawn(hub, server)
            stop(hub, server)
        for number in range(args.rounds):
            for kind in ("bubble", "plain") if number % 2 == 0 else ("plain", "bubble"):
                hub, server = servers[kind]
                times[kind].append(timed_spawn(hub, server))
                stop(hub, server)
    finally:
        problems = bubble_hub.close() + plain_hub.close()
    bubble, plain = statistics.median(times["bubble"]), statistics.median(times["plain"])
    print(f"spawn to ready, median of {args.rounds} (same run, interleaved):")
    print(f"  bubble (bwrap, cgroups, gate, unix sockets): {bubble:6.2f} s   "
          f"[{', '.join(f'{t:.2f}' for t in times['bubble'])}]")
    print(f"  plain LocalProcessSpawner:                   {plain:6.2f} s   "
          f"[{', '.join(f'{t:.2f}' for t in times['plain'])}]")
    ratio = bubble / plain
    print(f"ratio bubble / plain: {ratio:.3f} (target <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})")
    print(f"context: fastest of each, bubble / plain = {min(times['bubble']) / min(times['plain']):.3f} "
          f"(the least disturbed runs when other jobs share the machine)")
    if problems:
        print(f"warning: left behind: {problems}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
