"""Fixtures for the service: one real hub per test module, a store shared with it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bubble_manager.config import load_settings
from bubble_manager.operations import Context
from bubble_manager.signing import init_signing_key

from ..conftest import make_home_activatable
from .servicehub import ServiceHub, chp_path, free_port, request_document  # noqa: F401 - tests import it from here


class SmtpSink:
    """A real SMTP server on loopback that keeps every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                import email

                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def wait_for(self, predicate, timeout: float = 30):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages if predicate(m)]
            if found:
                return found
            time.sleep(0.2)
        return []


@pytest.fixture(scope="session")
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def service_home(tmp_path_factory, small_warehouse, smtp_sink) -> Path:
    home = tmp_path_factory.mktemp("service-home")
    (home / "warehouse").mkdir()
    (home / "bubble_manager_config.py").write_text(
        "c.ServiceSettings.smtp_host = '127.0.0.1'\n"
        f"c.ServiceSettings.smtp_port = {smtp_sink.port}\n"
        "c.ServiceSettings.email_domain = 'chu.example'\n")
    init_signing_key(home)
    Context.open(load_settings(home)).close()  # migrate before the service starts
    make_home_activatable(home, small_warehouse)
    return home


@pytest.fixture(scope="session")
def hub(tmp_path_factory, service_home):
    if chp_path() is None:
        pytest.skip("configurable-http-proxy is missing: `make test` installs it into node_modules (mk/runtime.mk)")
    hub = ServiceHub(tmp_path_factory.mktemp("hub"), service_home)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def tokens(hub) -> dict[str, str]:
    return {user: hub.token_for(user) for user in ("carol", "alice", "mallory", "sam", "tom", "adam", "nobody")}


@pytest.fixture
def store_context(service_home):
    context = Context.open(load_settings(service_home))
    yield context
    context.close()


class Api:
    """Calls the service's REST API with a user's token (or none)."""

    def __init__(self, hub: ServiceHub):
        self.hub = hub

    def call(self, method: str, path: str, token: str | None = None, body=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT") else None)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        request = urllib.request.Request(self.hub.service_url + "api/v1" + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text.decode(errors="replace")


@pytest.fixture(scope="session")
def api(hub) -> Api:
    return Api(hub)


