"""A stand-in single-user server for the service tests: answers every request with 200.

The hub starts it as a named server; the tests of the service need running servers to list and
stop, not JupyterLab (the bubble tests in tests/runtime start real ones).
"""

import http.server
import os
import urllib.parse

url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port), Handler).serve_forever()
