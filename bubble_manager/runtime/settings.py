"""Site settings of local bubbles (traitlets, in the same config file as the rest).

    c.LocalBubbles.bubble_env = "/opt/bubble-manager/bubble-env"
    c.LocalBubbles.runtime_dir = "/run/bubble-manager"
    c.LocalBubbles.uid_min = 200000

Built from the same traitlets Config as `bubble_manager.config.BubbleManager`:
`LocalBubbles(config=settings.config)`; in the hub, from the hub's own config.
"""

from __future__ import annotations

import re
from pathlib import Path

from traitlets import Bool, Enum, Float, Integer, TraitError, Unicode, validate
from traitlets.config import Configurable

# Socket paths travel in `http+unix://` URLs whose host part is lowercased by URL parsers.
LOWERCASE_PATH = re.compile(r"^/[a-z0-9/._-]+$")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep room for the socket's own name


class LocalBubbles(Configurable):
    """Where local bubbles run from, which host ids they get, and the limits around them."""

    bubble_env = Unicode("/opt/bubble-manager/bubble-env",
                         help="The bubble environment: a virtualenv built from Debian's /usr/bin/python3 holding "
                              "JupyterLab, jupyterhub (singleuser), duckdb, pandas, matplotlib, acro and "
                              "bubble_manager.inbubble. Mounted read-only at the same path in every bubble, so "
                              "every bubble uid must be able to read it (`make bubble-env` builds it)."
                         ).tag(config=True)
    runtime_dir = Unicode("/run/bubble-manager",
                          help="Host folder for the hub's API socket (hub/hub.sock), each bubble's server socket "
                               "and its launcher's state and log (bubbles/u<uid>/). Lowercase, short (socket "
                               "paths are limited to about 100 bytes), root-owned.").tag(config=True)
    uid_min = Integer(200000, help="First host uid/gid handed to bubbles: one uid per study member and one gid "
                                   "per study, allocated once and recorded in the store (never reused).").tag(config=True)
    uid_max = Integer(299999, help="Last host uid/gid handed to bubbles (inclusive). Keep the range clear of "
                                   "/etc/passwd and /etc/group (ids found there are skipped).").tag(config=True)
    cgroups = Enum(["auto", "v1", "v2", "none"], "auto",
                   help="How memory, CPU and process limits are enforced: 'auto' detects cgroup v2 (unified) or "
                        "v1 (memory, cpu and pids controllers); 'none' runs without limits and is refused "
                        "unless require_limits is False.").tag(config=True)
    cgroup_root = Unicode("/sys/fs/cgroup", help="Where the cgroup file systems are mounted.").tag(config=True)
    cgroup_parent = Unicode("bubble-manager", help="Name of the parent cgroup under which each bubble gets its "
                                                   "own group.").tag(config=True)
    require_limits = Bool(True, help="Refuse to start a bubble when its memory, CPU and process limits cannot "
                                     "be enforced.").tag(config=True)
    pids_limit = Integer(512, help="Most processes and threads a bubble may run at once.").tag(config=True)
    stop_grace_seconds = Float(5.0, help="Seconds a bubble's processes get after SIGTERM before SIGKILL, at stop "
                                         "and at the study's end.").tag(config=True)
    hub_socket_name = Unicode("hub.sock", help="File name of the hub's API socket inside runtime_dir/hub/."
                              ).tag(config=True)
    python = Unicode(help="Python that runs the launcher, outside the sandbox (default: the hub's own "
                          "interpreter).").tag(config=True)

    @validate("runtime_dir")
    def _runtime_dir_is_socket_friendly(self, proposal):  # noqa: ANN001 - traitlets signature
        value = str(proposal["value"]).rstrip("/") or "/"
        if not LOWERCASE_PATH.match(value):
            raise TraitError(f"runtime_dir {value!r} must be an absolute path of lowercase letters, digits, "
                             "'/', '.', '_' and '-' (it travels in http+unix URLs, which lowercase it)")
        if len(value) + len("/bubbles/u0000000/sock/server.sock") > MAX_SOCKET_PATH:
            raise TraitError(f"runtime_dir {value!r} is too long for unix socket paths; use a shorter folder "
                             "such as /run/bubble-manager")
        return value

    @validate("uid_max")
    def _range_is_sane(self, proposal):  # noqa: ANN001
        value = proposal["value"]
        if value < self.uid_min or self.uid_min < 1000:
            raise TraitError(f"uid range {self.uid_min}-{value} is empty or overlaps system ids (below 1000)")
        return value

    @validate("bubble_env")
    def _absolute_env(self, proposal):  # noqa: ANN001
        value = str(proposal["value"])
        if not value.startswith("/") or value.startswith("/root"):
            raise TraitError(f"bubble_env {value!r} must be an absolute path that bubble uids can read "
                             "(not under /root, which is private to root)")
        return value.rstrip("/")

    @property
    def runtime_path(self) -> Path:
        return Path(self.runtime_dir)

    @property
    def hub_socket_dir(self) -> Path:
        return self.runtime_path / "hub"

    @property
    def hub_socket(self) -> Path:
        return self.hub_socket_dir / self.hub_socket_name

    @property
    def bubbles_dir(self) -> Path:
        return self.runtime_path / "bubbles"

    @property
    def proxy_api_socket(self) -> Path:
        """The proxy's API socket, in a root-only folder (never mounted in bubbles)."""
        return self.runtime_path / "proxy" / "api.sock"
