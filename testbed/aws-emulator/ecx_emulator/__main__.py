"""python -m ecx_emulator --port PORT [--host 127.0.0.1] [--copy-delay S] [--export-delay S]"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ecx_emulator", description="moto S3 + ElastiCache with CopySnapshot/S3 export")
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--copy-delay", type=float, default=2.0, help="seconds a copied snapshot stays 'creating'")
    p.add_argument("--export-delay", type=float, default=2.0, help="seconds a source stays 'exporting'")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    args = p.parse_args(argv)

    # Unknown regions are fine; keep moto from trying anything remote.
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

    def _term(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)

    from .server import serve

    serve(args.host, args.port, args.copy_delay, args.export_delay, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
