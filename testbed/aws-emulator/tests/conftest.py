"""Start one emulator process for the test session; reset it before each test."""

from __future__ import annotations

import json
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
sys.path.insert(0, str(PKG_DIR))

from ecx_emulator.spawn import spawn  # noqa: E402

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
    proc, endpoint = spawn(COPY_DELAY, EXPORT_DELAY)
    emu = Emulator(endpoint, proc)
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
