"""Build and run the emulator HTTP server."""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from . import elasticache as ec
from .app import EmulatorApp
from .state import STATE


class QuietHandler(MotoRequestHandler):
    """Moto's request handler without per-request access logging."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: D401
        pass


def build_app() -> EmulatorApp:
    return EmulatorApp(DomainDispatcherApplication(create_backend_app))


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
        request_handler=MotoRequestHandler if verbose else QuietHandler,
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
