"""bubble-manager's Jupyter server extension, running inside each bubble.

Enabled in the bubble environment (`etc/jupyter/jupyter_server_config.d/bubble-manager.json`). At
start it writes `STUDY.md` (read-only) in the home folder, which JupyterLab's file browser shows
beside `work/` and `shared/`, and it serves the same information at `<base_url>bubble/` (HTML)
and `<base_url>bubble/api/study` (JSON): the study, its end date, the extract's data dictionary
and the transforms applied. Installed into the bubble environment on its own (this package and
the top-level `bubble_manager/__init__.py`), with no other part of bubble-manager: it imports only
the standard library, tornado and jupyter_server.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from .study import load_study_info, study_html, study_markdown

STUDY_FILE = "STUDY.md"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "bubble_manager.inbubble"}]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def write_study_file(home: Path, info: dict[str, Any]) -> Path:
    target = home / STUDY_FILE
    temporary = home / f".{STUDY_FILE}.tmp"
    temporary.write_text(study_markdown(info, _now()), encoding="utf-8")
    os.chmod(temporary, 0o444)
    os.replace(temporary, target)
    return target


def _handlers(base_url: str) -> list[tuple[str, type, dict]]:
    from jupyter_server.base.handlers import APIHandler, JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    class StudyPageHandler(JupyterHandler):
        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(study_html(load_study_info(os.environ), _now()))

    class StudyApiHandler(APIHandler):
        @web.authenticated
        def get(self) -> None:
            info = load_study_info(os.environ)
            self.finish(json.dumps(info))

    return [(url_path_join(base_url, "bubble/?"), StudyPageHandler, {}),
            (url_path_join(base_url, "bubble/api/study"), StudyApiHandler, {})]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", _handlers(web_app.settings["base_url"]))
    info = load_study_info(os.environ)
    home = Path(os.environ.get("HOME", "/home/jovyan"))
    try:
        write_study_file(home, info)
    except OSError as error:
        serverapp.log.warning("bubble-manager: could not write %s: %s", home / STUDY_FILE, error)
    serverapp.log.info("bubble-manager: study %s, ends %s", info["study"], info["ends"])
