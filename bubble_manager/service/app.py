"""The bubble-manager service: a tornado app that JupyterHub starts and authenticates (HubOAuth).

It serves the panel (server-rendered Jinja pages with the hub's look) and the JSON REST API
under `<service prefix>api/v1/`, with its OpenAPI document at `api/v1/openapi.json`.
JupyterHub passes the service its settings through the environment (JUPYTERHUB_SERVICE_PREFIX,
JUPYTERHUB_SERVICE_URL, JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN); `main()` reads them at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from traitlets import Integer, Unicode
from traitlets.config import Configurable

from ..config import load_settings
from ..operations import Context
from . import admin_api, notifications, openapi, pages, studies_api, transfer_api
from ..airlock import handlers as airlock_api, pages as airlock_pages

HERE = Path(__file__).parent
log = logging.getLogger("bubble_manager.service")


class ServiceSettings(Configurable):
    smtp_host = Unicode("", help="SMTP server for e-mail notifications; empty: notifications only in the panel."
                        ).tag(config=True)
    smtp_port = Integer(25, help="SMTP port.").tag(config=True)
    smtp_sender = Unicode("bubble-manager@localhost", help="From address of notification e-mails.").tag(config=True)
    email_domain = Unicode("", help="Domain appended to hub user names that are not e-mail addresses "
                                    "(e.g. 'chu-example.fr'); empty: only names with an @ get e-mail.").tag(config=True)
    steward_group = Unicode("stewards", help="Hub group whose members are told of new requests.").tag(config=True)
    expiring_within_days = Integer(14, help="The admin list flags bubbles whose study ends within this many days."
                                   ).tag(config=True)


def jinja_environment() -> Environment:
    return Environment(loader=FileSystemLoader([str(HERE / "templates"), str(HERE.parent / "airlock" / "templates")]),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def content_security_policy(hub_prefix: str) -> str:
    """Same-origin everything, plus the hub's origin for its stylesheet and logo."""
    parsed = urlparse(hub_prefix)
    hub_origin = f" {parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else ""
    return (f"default-src 'none'; style-src 'self'{hub_origin}; img-src 'self' data:{hub_origin}; "
            "script-src 'self'; form-action 'self'" + hub_origin + "; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


def make_app(context: Context, *, prefix: str = "/services/bubble-manager/", hub_prefix: str = "/hub/",
             hub_auth: HubOAuth | None = None, hub_api: Any = None, activate: Callable | None = None,
             cookie_secret: bytes | None = None) -> web.Application:
    """Build the application; `hub_api` talks to the hub (servers), `activate` builds extracts."""
    service_settings = ServiceSettings(config=context.settings.config)
    handlers: list = [(url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)]
    for module in (studies_api, admin_api, notifications, openapi, transfer_api, pages, airlock_api, airlock_pages):
        handlers += [(url_path_join(prefix, path.lstrip("/")) if path != "/" else prefix, handler)
                     for path, handler in module.default_handlers]
    settings = {
        "bm_context": context,
        "bm_prefix": prefix,
        "bm_hub_prefix": hub_prefix,
        "bm_hub_api": hub_api,
        "bm_activate": activate,
        "bm_service": service_settings,
        "bm_notifier": notifications.Notifier(context, service_settings),
        "bm_jinja": jinja_environment(),
        "cookie_secret": cookie_secret or secrets.token_bytes(32),
        "xsrf_cookies": True,
        "static_path": str(HERE / "static"),
        "static_url_prefix": url_path_join(prefix, "static/"),
        "login_url": url_path_join(hub_prefix, "login"),
        "bm_csp": content_security_policy(hub_prefix),
    }
    if hub_auth is not None:
        settings["hub_auth"] = hub_auth
    if hub_api is not None:
        settings["bm_stop_study_servers"] = lambda study: asyncio.ensure_future(hub_api.stop_study_servers(study))
    return web.Application(handlers, **settings)


def main() -> None:  # pragma: no cover - exercised through the real hub in the tests
    logging.basicConfig(level=logging.INFO, format="[bubble-manager %(levelname)s %(asctime)s] %(message)s")
    home = os.environ.get("BUBBLE_MANAGER_HOME", "var")
    settings = load_settings(home, os.environ.get("BUBBLE_MANAGER_CONFIG") or None)
    context = Context.open(settings)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/bubble-manager/")
    hub_prefix = url_path_join(os.environ.get("JUPYTERHUB_BASE_URL", "/"), "hub/")
    public_hub = os.environ.get("BUBBLE_HUB_URL", "").rstrip("/")
    if public_hub:  # the panel is on its own subdomain: the hub's pages are on the hub's host
        hub_prefix = public_hub + hub_prefix
    # HubOAuthenticated handlers use the singleton: configure that one (a 60 s cache, so a role the
    # identity provider removed stops working within a minute on pages already open)
    hub_auth = HubOAuth.instance(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    from .hub_client import HubClient

    hub_api = HubClient(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    activate = _activation()
    app = make_app(context, prefix=prefix, hub_prefix=hub_prefix, hub_auth=hub_auth, hub_api=hub_api,
                   activate=activate)
    server = HTTPServer(app, xheaders=True)
    url = os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")
    if url.startswith("http+unix://"):
        from urllib.parse import unquote

        path = unquote(url[len("http+unix://"):].split("/", 1)[0])
        server.add_socket(bind_unix_socket(path, mode=0o600))
        log.info("bubble-manager service listening on unix socket %s", path)
    else:
        parsed = urlparse(url)
        server.listen(parsed.port or 80, parsed.hostname or "127.0.0.1", family=socket.AF_INET)
        log.info("bubble-manager service listening on %s", url)
    try:
        from ..lifecycle_service import start_background_tasks
    except ImportError:
        log.info("no reconciler installed in this service")
    else:
        start_background_tasks(app, context)
    loop = asyncio.get_event_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    loop.run_forever()
    log.info("bubble-manager service stopping")
    server.stop()
    context.close()
    logging.shutdown()
    # HubAuth keeps an event loop running in a worker thread of its own; it would keep the process
    # alive after the hub asked it to stop. Everything of ours is closed: leave now.
    os._exit(0)


def _activation() -> Callable | None:
    try:
        from ..extract.activation import activate_with_extract
    except ImportError:
        return None
    return activate_with_extract


if __name__ == "__main__":  # `python -m bubble_manager.service.app`, as the hub config starts it
    main()
