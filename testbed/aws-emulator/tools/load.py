"""Load generator for the emulator: calls/s per operation as snapshots accumulate.

    .venv/bin/python testbed/aws-emulator/tools/load.py [--levels 1000,5000,10000,20000]
        [--threads 32] [--seconds 3] [--endpoint http://127.0.0.1:PORT]

Starts its own emulator (unless --endpoint is given), creates the bucket
``load-exports`` with the ElastiCache ACL grants, and at each level seeds
snapshots until the region holds that many, then runs, each for ``--seconds``
with ``--threads`` threads on kept-alive HTTP/1.1 connections:

* ``Copy``       CopySnapshot in-region (from one of ten shared sources; adds snapshots)
* ``Export``     CopySnapshot with TargetBucket (adds one S3 object)
* ``DescPage``   one page of a paginated, unfiltered DescribeSnapshots sweep
                 (MaxRecords=50, following Marker, restarting at the end)
* ``DescName``   DescribeSnapshots SnapshotName=...
* ``ListObj``    ListObjectsV2 prefix=<an export target key>
* ``BucketAcl``  GetBucketAcl
* ``Mixed``      the operator's mix: per export one CopySnapshot, two ListObjectsV2,
                 two bucket inspections and a share of the DescribeSnapshots sweep

The phases that add snapshots or objects (Copy, Export, Mixed) run last at each
level and stop after max(200, level / 5) calls, so a level still describes the
state the calls ran against (the printed counts are the ones before each phase).

and prints calls/s (and p50/p99 latency) per operation.  Requests carry an
unsigned SigV4-shaped Authorization header: neither moto nor the emulator
checks signatures, and skipping botocore keeps the client cheap.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

PKG_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PKG_DIR))

from ecx_emulator.spawn import spawn  # noqa: E402
REGION = "us-east-1"
BUCKET = "load-exports"
CANONICAL_ID = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353"
MUTATING = {"Copy", "Export", "Mixed"}
MARKER_RE = re.compile(r"<Marker>([^<]+)</Marker>")


def auth(service: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIALOADTEST00000001/20260101/{REGION}/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0000"
    )


class Conn:
    """One kept-alive HTTP/1.1 connection (reconnects if the server closes it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.c: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(3):
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.reconnects += 1
            try:
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close" or r.version == 10:
                    self.c.close()
                    self.c = None
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def ec(self, action: str, **params: Any) -> tuple[int, bytes]:
        body = urlencode({"Action": action, "Version": "2015-02-02", **params}).encode()
        return self.request(
            "POST",
            "/",
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "Authorization": auth("elasticache"),
                "X-Amz-Date": "20260101T000000Z",
            },
        )

    def s3(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        return self.request(method, path, body, {"Authorization": auth("s3"), "X-Amz-Date": "20260101T000000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})

    def ctl(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, out = self.request(method, "/_emulator" + path, data, {"Content-Type": "application/json"})
        return status, json.loads(out) if out else None


def start_emulator(copy_delay: float, export_delay: float) -> tuple[subprocess.Popen, str]:
    try:
        return spawn(copy_delay, export_delay)
    except RuntimeError as e:
        raise SystemExit(str(e)) from e


class Load:
    def __init__(self, host: str, port: int, threads: int) -> None:
        self.host, self.port, self.threads = host, port, threads
        self.conns = [Conn(host, port) for _ in range(threads)]
        self.main = Conn(host, port)
        self.seeded = 0  # src-exp-* snapshots
        self.copies = 0
        self.exports = 0
        self.counter = itertools.count()
        self.export_counter = itertools.count()
        self.lock = threading.Lock()
        self.sweep_marker: str | None = None
        self.errors: dict[str, int] = {}

    # ---- setup ----------------------------------------------------------
    def setup(self) -> None:
        c = self.main
        for i in range(10):
            c.ctl("POST", "/snapshots", {"name": f"src-copy-{i}", "region": REGION})
        st, _ = c.s3("PUT", f"/{BUCKET}")
        assert st == 200, st
        st, acl = c.s3("GET", f"/{BUCKET}?acl")
        owner = re.search(rb"<Owner>.*?</Owner>", acl, re.S)
        grants = "".join(
            f'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>{CANONICAL_ID}</ID></Grantee><Permission>{p}</Permission></Grant>'
            for p in ("FULL_CONTROL",)
        )
        existing = re.search(rb"<AccessControlList>(.*)</AccessControlList>", acl, re.S)
        body = (
            b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            + (owner.group(0) if owner else b"")
            + b"<AccessControlList>" + (existing.group(1) if existing else b"") + grants.encode() + b"</AccessControlList></AccessControlPolicy>"
        )
        st, out = c.s3("PUT", f"/{BUCKET}?acl", body)
        assert st == 200, (st, out)

    def seed_to(self, total: int) -> float:
        """Seed src-exp-* snapshots until the region holds ``total`` snapshots."""
        need = total - (10 + self.seeded + self.copies)
        if need <= 0:
            return 0.0
        start = self.seeded
        self.seeded += need
        names = iter(range(start, start + need))
        lock = threading.Lock()

        def work(conn: Conn) -> None:
            while True:
                with lock:
                    i = next(names, None)
                if i is None:
                    return
                st, _ = conn.ctl("POST", "/snapshots", {"name": f"src-exp-{i}", "region": REGION})
                assert st == 200, st

        t0 = time.time()
        ts = [threading.Thread(target=work, args=(c,)) for c in self.conns[:8]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.time() - t0

    # ---- operations --------------------------------------------------------
    def op_copy(self, conn: Conn) -> int:
        n = next(self.counter)
        st, _ = conn.ec("CopySnapshot", SourceSnapshotName=f"src-copy-{n % 10}", TargetSnapshotName=f"copy-{n}")
        if st == 200:
            with self.lock:
                self.copies += 1
        return st

    def op_export(self, conn: Conn) -> int:
        n = next(self.counter)
        # round-robin over the sources: a source stays exporting for the export delay
        src = f"src-exp-{next(self.export_counter) % self.seeded}"
        st, _ = conn.ec("CopySnapshot", SourceSnapshotName=src, TargetSnapshotName=f"exp-{n}", TargetBucket=BUCKET)
        if st == 200:
            with self.lock:
                self.exports += 1
        return st

    def op_desc_page(self, conn: Conn) -> int:
        with self.lock:
            marker = self.sweep_marker
        params = {"MaxRecords": "50"}
        if marker:
            params["Marker"] = marker
        st, body = conn.ec("DescribeSnapshots", **params)
        m = MARKER_RE.search(body.decode())
        with self.lock:
            # concurrent sweepers share one cursor; it only needs to move on
            self.sweep_marker = m.group(1) if m else None
        return st

    def op_desc_name(self, conn: Conn) -> int:
        st, _ = conn.ec("DescribeSnapshots", SnapshotName=f"src-exp-{random.randrange(self.seeded)}")
        return st

    def op_list(self, conn: Conn) -> int:
        n = random.randrange(max(1, next(self.counter)))
        st, _ = conn.s3("GET", f"/{BUCKET}?list-type=2&prefix=exp-{n}-0001.rdb")
        return st

    def op_acl(self, conn: Conn) -> int:
        st, _ = conn.s3("GET", f"/{BUCKET}?acl")
        return st

    def op_mixed(self, conn: Conn) -> int:
        # per export: 1 CopySnapshot, 2 ListObjectsV2 (exports only: 1 on average),
        # ~1 DescribeSnapshots page, ~1 bucket inspection
        r = random.random()
        if r < 0.25:
            return self.op_copy(conn) if random.random() < 0.5 else self.op_export(conn)
        if r < 0.50:
            return self.op_list(conn)
        if r < 0.75:
            return self.op_desc_page(conn)
        return self.op_acl(conn)

    def run(self, name: str, op: Callable[[Conn], int], seconds: float, max_calls: int | None = None) -> dict[str, Any]:
        lat: list[list[float]] = [[] for _ in self.conns]
        stop = time.time() + seconds
        errs = [0]
        budget = itertools.count()

        def work(i: int) -> None:
            conn = self.conns[i]
            while time.time() < stop:
                if max_calls is not None and next(budget) >= max_calls:
                    return
                t = time.perf_counter()
                st = op(conn)
                lat[i].append(time.perf_counter() - t)
                if st >= 400:
                    errs[0] += 1

        t0 = time.time()
        ts = [threading.Thread(target=work, args=(i,)) for i in range(self.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        el = time.time() - t0
        all_lat = sorted(x for lst in lat for x in lst)
        n = len(all_lat)
        return {
            "op": name,
            "calls": n,
            "rate": n / el,
            "p50_ms": 1000 * all_lat[n // 2] if n else 0,
            "p99_ms": 1000 * all_lat[min(n - 1, int(n * 0.99))] if n else 0,
            "errors": errs[0],
        }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--levels", default="1000,5000,10000,20000")
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--ops", default="Copy,Export,DescPage,DescName,ListObj,BucketAcl,Mixed")
    p.add_argument("--endpoint", default=None, help="use a running emulator (it is reset first)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args()

    proc = None
    if args.endpoint:
        endpoint = args.endpoint
    else:
        proc, endpoint = start_emulator(2.0, 2.0)
        print(f"emulator pid {proc.pid} at {endpoint}", flush=True)
    u = urlsplit(endpoint)
    load = Load(u.hostname or "127.0.0.1", u.port or 80, args.threads)
    results = []
    try:
        for _ in range(100):
            try:
                load.main.ctl("GET", "/health")
                break
            except OSError:
                time.sleep(0.05)
        load.main.ctl("POST", "/reset", {})
        load.setup()
        ops = {
            "Copy": load.op_copy,
            "Export": load.op_export,
            "DescPage": load.op_desc_page,
            "DescName": load.op_desc_name,
            "ListObj": load.op_list,
            "BucketAcl": load.op_acl,
            "Mixed": load.op_mixed,
        }
        # read-only operations first, then the ones that add snapshots/objects
        chosen = [o for o in args.ops.split(",") if o]
        chosen.sort(key=lambda o: o in MUTATING)
        print(f"{'snapshots':>9} {'objects':>7} {'op':>9} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
        for level in [int(x) for x in args.levels.split(",")]:
            took = load.seed_to(level)
            if took:
                print(f"# seeded up to {level} snapshots in {took:.1f} s", flush=True)
            for name in chosen:
                snaps = 10 + load.seeded + load.copies
                # cap what one phase adds, so the level still describes the state
                cap = max(200, level // 5) if name in MUTATING else None
                r = load.run(name, ops[name], args.seconds, cap)
                r.update(level=level, snapshots=snaps, objects=load.exports)
                results.append(r)
                print(
                    f"{snaps:>9} {load.exports:>7} {name:>9} {r['rate']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6}",
                    flush=True,
                )
        reconnects = sum(c.reconnects for c in load.conns)
        print(f"# TCP connections opened by the load threads: {reconnects}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
