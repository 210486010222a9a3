"""Downloads from JupyterLab are off: `/files/`, `/view/` and `/nbconvert/` answer 403.

A server extension (enabled in the bubble environment's
`jupyter_server_config.d/bubble-manager-nodownload.json`) that, when it is linked, puts its
handlers in `ServerApp.extra_services`: they are loaded before jupyter_server's own and win over
them: the *Download* menu and `?download=1` links (which use `/files/`), the
file viewer, and *Export Notebook As* (`/nbconvert/`). Opening, editing and saving go through the
contents API (`/api/contents`) and keep working. Each refusal is logged to the server's log, which
the launcher keeps in the bubble's root-only log file. The way out is the airlock: see
`python -m bubble_manager.inbubble.airlock --help`.

A deterrent, not a wall: what JupyterLab shows and the file bodies its editor loads reach the
browser (docs/threat-model.md).
"""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler

MESSAGE = ("Downloads are disabled in this bubble. Results leave through the airlock: "
           "python -m bubble_manager.inbubble.airlock submit --help, then the bubble-manager panel.\n")


class DownloadRefused(JupyterHandler):
    """Every method refused, whoever asks (the reason is the same for all)."""

    def _refuse(self, *args: str) -> None:
        self.log.warning("bubble-manager: download refused: %s %s", self.request.method, self.request.path)
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(MESSAGE)

    get = post = put = head = delete = patch = _refuse

    def check_xsrf_cookie(self) -> None:
        """Refuse even without a token: there is nothing to protect, only a 403 to give."""


default_handlers = [
    (r"/files/(.*)", DownloadRefused),
    (r"/view/(.*)", DownloadRefused),
    (r"/nbconvert/(.*)", DownloadRefused),
]


MODULE = "bubble_manager.inbubble.nodownload"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": MODULE}]


def _link_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001 - jupyter_server's ServerApp
    """Runs before the web application is built: register the refusals ahead of the default services."""
    if MODULE not in serverapp.extra_services:
        serverapp.extra_services = [*serverapp.extra_services, MODULE]


def _load_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001
    serverapp.log.info("bubble-manager: downloads are disabled (/files/, /view/, /nbconvert/ answer 403)")
