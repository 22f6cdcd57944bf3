"""Start one emulator process for the test session; reset it before each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

PKG_DIR = Path(__file__).resolve().parent.parent  # testbed/aws-emulator
COPY_DELAY = 0.4
EXPORT_DELAY = 0.4
ACCOUNT = "123456789012"
ELASTICACHE_CANONICAL_ID = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353"


class Emulator:
    def __init__(self, endpoint: str, proc: subprocess.Popen) -> None:
        self.endpoint = endpoint
        self.proc = proc

    def ctl(self, path: str, body: Any = None, method: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.endpoint}/_emulator{path}",
            data=data,
            method=method or ("POST" if body is not None else "GET"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def seed(self, name: str, **kw: Any) -> dict:
        return self.ctl("/snapshots", {"name": name, **kw})

    def client(self, service: str, region: str = "us-east-1", access_key: str = "AKIAEXAMPLEUSER0001", retries: int = 1, **cfg: Any) -> Any:
        config = Config(
            retries={"total_max_attempts": retries, "mode": "standard"},
            s3={"addressing_style": "path"},
            **cfg,
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key="test-secret-do-not-log",
            config=config,
        )


@pytest.fixture(scope="session")
def emulator() -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MOTO_ACCOUNT_ID", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecx_emulator",
            "--port",
            "0",
            "--copy-delay",
            str(COPY_DELAY),
            "--export-delay",
            str(EXPORT_DELAY),
        ],
        cwd=str(PKG_DIR),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "ecx-emulator listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise RuntimeError(f"unexpected first line from emulator: {line!r}")
    emu = Emulator(line[len(prefix):], proc)
    deadline = time.time() + 10
    while True:
        try:
            emu.ctl("/health")
            break
        except (urllib.error.URLError, ConnectionError):
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    yield emu
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(autouse=True)
def reset(emulator: Emulator) -> None:
    emulator.ctl("/reset", {})


@pytest.fixture
def ec(emulator: Emulator) -> Any:
    return emulator.client("elasticache")


@pytest.fixture
def s3(emulator: Emulator) -> Any:
    return emulator.client("s3")


def wait_for(pred: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
