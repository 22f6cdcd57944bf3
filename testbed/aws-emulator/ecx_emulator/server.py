"""Build and run the emulator HTTP server."""

from __future__ import annotations

import io
import sys
import threading
import time
import traceback
from typing import Any

from moto import backends as moto_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from . import elasticache as ec
from . import s3index
from .app import EmulatorApp
from .state import STATE

s3index.install()

_NO_BODY = {204, 304}


class KeepAliveHandler(MotoRequestHandler):
    """Moto's request handler (same environ, so moto sees the same requests),
    but with HTTP/1.1 keep-alive.

    Werkzeug's development server answers every request with
    ``Connection: close``, so each AWS call cost a new TCP connection and a new
    thread, and it then waits 10 ms for stray request bytes.  Here the request
    body is read in full (Content-Length or chunked) before the app runs, the
    response is buffered and always carries a Content-Length, and the
    connection stays open for the client's next request.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # seconds an idle kept-alive connection may stay open

    def run_wsgi(self) -> None:
        # BaseHTTPRequestHandler.parse_request already answered "Expect: 100-continue".
        self.environ = environ = self.make_environ()
        try:
            if environ.get("wsgi.input_terminated"):  # chunked request body
                body = environ["wsgi.input"].read()
            else:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = self.rfile.read(length) if length > 0 else b""
        except (ValueError, OSError):
            self.close_connection = True
            self.send_error(400, "Bad request body")
            return
        environ["wsgi.input"] = io.BytesIO(body)

        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if started and not exc_info:
                raise AssertionError("Headers already set")
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                for data in result:
                    if data:
                        chunks.append(data)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks = [b"Internal Server Error"]
        if not started:
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks = [b"Internal Server Error: the app did not start a response"]

        status, headers = started
        try:
            code_str, msg = status.split(None, 1)
        except ValueError:
            code_str, msg = status, ""
        code = int(code_str)
        head = environ["REQUEST_METHOD"] == "HEAD"
        payload = b"".join(chunks)
        self.send_response(code, msg)
        has_length = False
        for key, value in headers:
            lk = key.lower()
            if lk == "connection" or lk == "transfer-encoding":
                continue
            if lk == "content-length":
                has_length = True
            self.send_header(key, value)
        if not has_length and not head and code not in _NO_BODY and code >= 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # headers and body in one write
        self._headers_buffer.append(b"\r\n")
        if payload and not head and code not in _NO_BODY:
            self._headers_buffer.append(payload)
        self.flush_headers()


class QuietHandler(KeepAliveHandler):
    """Without per-request access logging."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: D401
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        # an idle kept-alive connection reaching `timeout` is routine, not an error
        if format.startswith("Request timed out"):
            return
        super().log_error(format, *args)


class Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, minus a directory listing of moto's package on every
    request (done while holding the dispatcher's global lock)."""

    _modules = frozenset(moto_backends.list_of_moto_modules())

    def get_backend_for_host(self, host: str | None) -> Any:
        # Same as moto's, with the module list computed once.
        if host is None:
            return None
        if host == "moto_api" or host in self._modules:
            return host
        for backend, pattern in self.backend_url_patterns:
            if pattern.match(f"http://{host}"):
                return backend
        return super().get_backend_for_host(host)  # moto's own "not found" handling


def build_app() -> EmulatorApp:
    return EmulatorApp(Dispatcher(create_backend_app))


def _ticker(stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            ec.advance()
        except Exception as e:  # pragma: no cover - keep ticking
            print(f"ecx-emulator: advance failed: {e!r}", flush=True)


def make(host: str, port: int, copy_delay: float, export_delay: float, verbose: bool = False) -> BaseWSGIServer:
    STATE.defaults = (copy_delay, export_delay)
    STATE.config.copy_delay = copy_delay
    STATE.config.export_delay = export_delay
    return make_server(
        host,
        port,
        build_app(),
        threaded=True,
        request_handler=KeepAliveHandler if verbose else QuietHandler,
    )


def serve(host: str, port: int, copy_delay: float, export_delay: float, verbose: bool = False) -> None:
    server = make(host, port, copy_delay, export_delay, verbose)
    stop = threading.Event()
    threading.Thread(target=_ticker, args=(stop,), daemon=True, name="ecx-ticker").start()
    actual_port = server.server_address[1]
    print(f"ecx-emulator listening on http://{host}:{actual_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        time.sleep(0)
