"""Golden manifests: what the builders render, reviewed once, compared on every run.

Regenerate deliberately, then review the diff: `BUBBLE_REGENERATE_GOLDEN=1 make test PYTEST_ARGS=tests/kube`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

GOLDEN = Path(__file__).parent / "golden"
SUPPORTED_KUBERNETES = ("1.30.0", "1.37.0")  # oldest supported, newest schemas kubernetes-validate ships


def assert_golden(name: str, manifest: dict) -> None:
    path = GOLDEN / f"{name}.yaml"
    text = yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False)
    if os.environ.get("BUBBLE_REGENERATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file {path} is missing; regenerate with BUBBLE_REGENERATE_GOLDEN=1 and review it"
    assert text == path.read_text(), (f"{name} differs from {path}; if the change is intended, regenerate with "
                                      "BUBBLE_REGENERATE_GOLDEN=1 and review the diff")


def validate_strict(manifest: dict) -> None:
    """kubernetes-validate --strict (bundled schemas, offline) for every supported Kubernetes version."""
    import kubernetes_validate
    import pytest
    from kubernetes_validate.utils import ValidationError

    name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
    for version in SUPPORTED_KUBERNETES:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except ValidationError as error:  # its default text prints the whole schema
            pytest.fail(f"{name} is not valid for Kubernetes {version}: {error.message} at {list(error.path)}")
