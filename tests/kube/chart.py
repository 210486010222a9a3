"""Running the real helm binary (installed by `make test` through mk/kube.mk) on the chart."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "bubble-manager"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
CHECKOV = TOOLS / "checkov-venv" / "bin" / "checkov"
RELEASE, NAMESPACE = "bm", "bubble-manager"
VALUE_SETS = {"default": None, **{path.stem: path for path in EXAMPLES}}


def require(tool: Path) -> Path:
    if not tool.exists():
        pytest.skip(f"{tool.relative_to(ROOT)} is missing: `make test` installs it (target kube-tools in mk/kube.mk)")
    return tool


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELM_CACHE_HOME": str(TOOLS / "helm" / "cache"),
           "HELM_CONFIG_HOME": str(TOOLS / "helm" / "config"), "HELM_DATA_HOME": str(TOOLS / "helm" / "data")}
    result = subprocess.run([str(require(HELM)), *args], capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def template_args(values: Path | None, *extra: str, namespace: str = NAMESPACE) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    if values is not None:
        args += ["--values", str(values)]
    return args + list(extra)


@functools.lru_cache(maxsize=None)
def rendered_text(name: str) -> str:
    return helm(*template_args(VALUE_SETS[name])).stdout


def rendered(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered_text(name)) if doc]


def find(docs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]


def hub_values(docs: list[dict]) -> dict:
    """The settings the chart hands the hub config (values.json in its ConfigMap)."""
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"))
    return json.loads(config["data"]["values.json"])
