"""API latency: our list and show endpoints next to the hub's own GET /hub/api/users, same run.

Sets up a real hub running the bubble-manager service, 1,000 studies in the store and 1,000 hub
users, then drives the endpoints from a second process in a bounded loop on loopback and prints
p50 and p99 latencies. Target: our p99 at most 2x the hub's.

    .venv/bin/python bench/api.py [--studies 1000] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bubble_manager.config import load_settings  # noqa: E402
from bubble_manager.operations import Context, StudyOperations  # noqa: E402
from bubble_manager.signing import init_signing_key  # noqa: E402
from bubble_manager.studies import Actor  # noqa: E402
from tests.service.conftest import request_document  # noqa: E402
from tests.service.servicehub import ServiceHub  # noqa: E402

DRIVER = r'''
import json, statistics, sys, time, urllib.request
url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
headers = {"Authorization": f"token {token}"}
def once():
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
        response.read()
    return time.perf_counter() - start
for _ in range(5):
    once()
samples = sorted(once() for _ in range(count))
print(json.dumps({"p50": samples[len(samples) // 2], "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}))
'''


def fill_store(home: Path, studies: int) -> list[str]:
    context = Context.open(load_settings(home))
    operations = StudyOperations(context)
    carol, sam = Actor("carol", frozenset({"researcher"})), Actor("sam", frozenset({"steward"}))
    slugs = []
    for number in range(studies):
        slug = f"bench-{number:05d}"
        operations.request(carol, request_document(slug))
        if number % 2:
            operations.submit(carol, slug)
            operations.approve(sam, slug, "ok")
        slugs.append(slug)
    context.close()
    return slugs


def measure(url: str, token: str, requests: int) -> dict:
    result = subprocess.run([sys.executable, "-c", DRIVER, url, token, str(requests)], capture_output=True,
                            text=True, timeout=3600, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bm-bench-api-") as folder:
        home = Path(folder) / "home"
        (home / "warehouse").mkdir(parents=True)
        init_signing_key(home)
        shutil.copy(REPO / "bubble_manager" / "data" / "demo_catalog.yaml", home / "warehouse" / "warehouse.catalog.yaml")
        print(f"filling the store with {args.studies} studies...", file=sys.stderr)
        slugs = fill_store(home, args.studies)
        hub = ServiceHub(Path(folder), home)
        hub.start()
        try:
            names = [f"user{n:05d}" for n in range(args.studies)]
            for start in range(0, len(names), 200):
                hub.hub_api("POST", "users", {"usernames": names[start:start + 200]})
            steward = hub.token_for("sam")
            figures = {
                "our list (steward sees all)": measure(hub.service_url + "api/v1/studies", steward, args.requests),
                "our show": measure(hub.service_url + f"api/v1/studies/{slugs[len(slugs) // 2]}", steward,
                                    args.requests),
                "hub GET /hub/api/users": measure(hub.url + "/hub/api/users", hub.admin_token, args.requests),
            }
        finally:
            hub.stop()
    base = figures["hub GET /hub/api/users"]
    print(f"{'endpoint':<32} {'p50 ms':>8} {'p99 ms':>8} {'p99 / hub p99':>14}")
    for name, figure in figures.items():
        print(f"{name:<32} {figure['p50'] * 1000:8.1f} {figure['p99'] * 1000:8.1f} {figure['p99'] / base['p99']:14.2f}")
    worst = max(figures[k]["p99"] for k in figures if k.startswith("our")) / base["p99"]
    print(f"worst ratio {worst:.2f} (target <= 2.0): {'OK' if worst <= 2.0 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
