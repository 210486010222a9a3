"""The hub and bubble Dockerfiles (they cannot be built here): they parse, pin their base image by version,
run as a non-root user, and install what the package and the local bubble environment need."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.kube
ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"hub": ROOT / "images" / "hub" / "Dockerfile", "bubble": ROOT / "images" / "bubble" / "Dockerfile"}
BUBBLE_ENV = ROOT / "hub_config" / "bubble-env"
HUB_EXTRAS = ("kube", "oauth", "postgres", "lifecycle", "airlock")
PINNED_BASE = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+[a-z0-9.-]*(@sha256:[0-9a-f]{64})?$")


def parsed(name: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=IMAGES[name].open("rb"))
    assert parser.structure, f"{IMAGES[name]} did not parse"
    return parser


def instructions(name: str, kind: str) -> list[str]:
    return [item["value"] for item in parsed(name).structure if item["instruction"] == kind]


def pins(path: Path) -> dict[str, Requirement]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def pinned_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"{requirement} is not pinned with =="
    return specifier.version


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_base_images_are_pinned_by_version(name):
    for base in instructions(name, "FROM"):
        image = base.split(" AS ")[0].strip()
        assert PINNED_BASE.match(image), f"{name}: base image {image} is not pinned to a full version"
        assert ":latest" not in image


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_images_run_as_a_non_root_user(name):
    users = instructions(name, "USER")
    assert users, f"{name} never leaves root"
    last = users[-1].split(":")
    assert last[0] not in ("root", "0") and last[0].isdigit() and int(last[0]) >= 1000
    final_user_index = max(i for i, item in enumerate(parsed(name).structure) if item["instruction"] == "USER")
    later = [item for item in parsed(name).structure[final_user_index + 1:] if item["instruction"] == "RUN"]
    assert not later, f"{name} runs commands after switching user; keep installs above USER"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_copied_sources_exist(name):
    for value in instructions(name, "COPY"):
        sources = [part for part in value.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{name}: COPY source {source} does not exist in the repository"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_pip_itself_is_pinned(name):
    runs = " ".join(instructions(name, "RUN"))
    assert re.search(r"pip install pip==\d+\.\d+", runs)
    for command in re.findall(r"pip install ([^&\\]+)", runs):
        assert "--requirement" in command or "==" in command or "--no-deps" in command, command


def test_the_hub_image_pins_every_requirement_of_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [Requirement(r) for r in project["dependencies"]]
    for extra in HUB_EXTRAS:
        needed += [Requirement(r) for r in project["optional-dependencies"][extra]]
    hub_pins = pins(ROOT / "images" / "hub" / "requirements.txt")
    for requirement in needed:
        pin = hub_pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"images/hub/requirements.txt has no pin for {requirement}"
        assert requirement.specifier.contains(pinned_version(pin), prereleases=True), \
            f"the hub pin {pin} does not satisfy pyproject's {requirement}"
        assert requirement.extras <= pin.extras, f"{pin} lacks the extras of {requirement}"
    runs = " ".join(instructions("hub", "RUN"))
    assert f'".[{",".join(HUB_EXTRAS)}]"' in runs and "pip check" in runs


def test_the_hub_image_installs_everything_the_package_imports():
    """The hub image runs the hub and the service (panel, reconciler, airlock): each third-party module
    bubble_manager imports (but the in-bubble extension's) is pinned, or required by a pin."""
    import ast
    import importlib.metadata
    import inspect
    import sys

    distributions = importlib.metadata.packages_distributions()
    for distribution in importlib.metadata.distributions():  # compiled top-level modules (_duckdb), which
        for file in distribution.files or []:                # Python 3.11's packages_distributions() skips
            if len(file.parts) == 1 and inspect.getmodulename(file.name) and file.suffix in (".so", ".pyd"):
                distributions.setdefault(inspect.getmodulename(file.name), []).append(distribution.metadata["Name"])
    hub_pins = set(pins(ROOT / "images" / "hub" / "requirements.txt"))
    installed, todo = set(), list(hub_pins)
    while todo:  # the pins and what they require (no extras), as pip installs them
        name = todo.pop()
        if name in installed:
            continue
        installed.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    missing = {}
    for path in (ROOT / "bubble_manager").rglob("*.py"):
        if "inbubble" in path.parts:
            continue  # runs in the bubble image (test_the_bubble_image_carries_the_in_bubble_extension...)
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "bubble_manager":
                    continue
                names = {canonicalize_name(d) for d in distributions.get(top, [top])}
                if not names & installed:
                    missing.setdefault(top, path.relative_to(ROOT).as_posix())
    assert not missing, f"the hub image lacks what these modules import: {missing}"


def test_the_hub_image_ships_what_the_chart_runs():
    cmd = " ".join(instructions("hub", "CMD"))
    assert "jupyterhub" in cmd and "/etc/bubble-manager/config/jupyterhub_config.py" in cmd
    assert "BUBBLE_MANAGER_HOME=/srv/bubble-manager" in " ".join(instructions("hub", "ENV"))
    assert (ROOT / "bubble_manager" / "service" / "__main__.py").exists()  # python -m bubble_manager.service


def test_the_bubble_image_installs_the_local_bubble_environment():
    copies = " ".join(instructions("bubble", "COPY"))
    runs = " ".join(instructions("bubble", "RUN"))
    assert "hub_config/bubble-env/requirements.txt" in copies and "hub_config/bubble-env/constraints.txt" in copies
    assert "--requirement /opt/bubble-env/requirements.txt" in runs and "--constraint /opt/bubble-env/constraints.txt" in runs
    requirements = pins(BUBBLE_ENV / "requirements.txt")
    for package in ("jupyterlab", "jupyterhub", "duckdb", "pandas", "acro"):
        assert package in requirements, f"the bubble environment lacks {package}"
        pinned_version(requirements[package])
    constraints = pins(BUBBLE_ENV / "constraints.txt")
    assert all(pinned_version(c) for c in constraints.values())


def test_the_bubble_image_matches_the_hub_where_it_must():
    """jupyterhub-singleuser speaks to the hub of the same major version; the extract is DuckDB's format."""
    bubble = pins(BUBBLE_ENV / "requirements.txt")
    hub = pins(ROOT / "images" / "hub" / "requirements.txt")
    assert pinned_version(bubble["jupyterhub"]).split(".")[0] == pinned_version(hub["jupyterhub"]).split(".")[0]
    assert pinned_version(bubble["duckdb"]) == pinned_version(hub["duckdb"])


def test_the_bubble_image_carries_the_in_bubble_extension_and_its_settings():
    copies = " ".join(instructions("bubble", "COPY"))
    assert "bubble_manager/inbubble" in copies and "bubble_manager/__init__.py" in copies
    assert "jupyter_server_config.d" in copies and "labconfig" in copies  # extension on, downloads off
    runs = " ".join(instructions("bubble", "RUN"))
    assert "import bubble_manager.inbubble" in runs
    env = " ".join(instructions("bubble", "ENV"))
    assert "HOME=/home/jovyan" in env
    assert instructions("bubble", "USER")[-1] == "1000:100"
    assert instructions("bubble", "WORKDIR")[-1] == "/home/jovyan/work"


def test_the_bubble_image_carries_the_study_job_commands_and_what_they_import():
    """The extract-fill and collect Jobs run `python -m bubble_manager.runtime.kube_fill|kube_collect` there."""
    from bubble_manager.runtime.kube_activation import FILL_COMMAND
    from bubble_manager.runtime.kube_snapshot import COLLECT_COMMAND

    copies = " ".join(instructions("bubble", "COPY"))
    runs = " ".join(instructions("bubble", "RUN"))
    assert "bubble_manager/runtime/__init__.py" in copies
    for command in (FILL_COMMAND, COLLECT_COMMAND):
        module = command[-1]
        assert command[:2] == ("python", "-m") and module.startswith("bubble_manager.runtime.")
        assert module.replace(".", "/") + ".py" in copies and module in runs
    assert (ROOT / "bubble_manager" / "runtime" / "__init__.py").read_text().strip() == ""  # imports nothing
    constraints = pins(BUBBLE_ENV / "constraints.txt")
    assert "cryptography" in constraints  # what kube_fill needs beyond the standard library
    env = " ".join(instructions("bubble", "ENV"))
    assert "PATH=/opt/bubble/bin:" in env  # `python` is the bubble environment's
