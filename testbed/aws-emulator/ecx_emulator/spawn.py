"""Start the emulator as a child process on a free port, for the tests and tools/load.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parent.parent  # testbed/aws-emulator
READY_PREFIX = "ecx-emulator listening on "


def spawn(copy_delay: float, export_delay: float) -> tuple[subprocess.Popen, str]:
    """Start ``python -m ecx_emulator`` on port 0; return the process and its endpoint URL.

    The child's account is the emulator's default: an inherited ``MOTO_ACCOUNT_ID`` is dropped.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MOTO_ACCOUNT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecx_emulator", "--port", "0", "--copy-delay", str(copy_delay), "--export-delay", str(export_delay)],
        cwd=str(PKG_DIR),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        raise RuntimeError(f"unexpected first line from the emulator: {line!r}")
    return proc, line[len(READY_PREFIX) :]
