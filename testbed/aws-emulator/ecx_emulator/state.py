"""Emulator-side state: configuration, fault injection, call log, pending jobs.

Snapshots themselves live in moto's ElastiCache backend
(``elasticache_backends[account][region].snapshots``) as moto ``Snapshot``
objects; this module keeps only what moto has no notion of.  Every mutation of
snapshot state (ours or moto's) happens while holding ``STATE.lock``.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
MAX_CALLS = 100_000  # the call log keeps the newest this many entries


@dataclass
class Config:
    copy_delay: float = 2.0
    export_delay: float = 2.0
    snapshot_quota: int | None = None
    # ServerlessCacheSnapshotQuotaExceededFault past this many serverless snapshots
    serverless_snapshot_quota: int | None = None
    deny_copy_snapshot: bool = False
    denied_access_keys: list[str] = field(default_factory=list)
    # Real API model: DescribeSnapshots MaxRecords "minimum 20; maximum 50".
    max_records_limit: int = 50
    # Node group ids whose export object is never written (a failing shard upload).
    export_fail_node_groups: list[str] = field(default_factory=list)
    # An error CopySnapshot answers every call with, whatever the state ({"code", "message"}):
    # an AWS that keeps contradicting what DescribeSnapshots shows.
    copy_snapshot_error: dict[str, str] | None = None
    # An error any ElastiCache action answers every call with, by action name ({"code",
    # "message"}): e.g. CreateSnapshot answering AlreadyExists for a snapshot nobody finds.
    action_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    # Snapshot names (either kind) left out of the next N listings (a DescribeSnapshots or
    # DescribeServerlessCacheSnapshots without a name) that would show them: a listing that
    # misses a snapshot. A describe by name still finds it. Counts down to 0.
    omit_from_listings: dict[str, int] = field(default_factory=dict)

    def omitted(self, name: str) -> bool:
        """Whether a listing leaves `name` out (counts one omission)."""
        left = self.omit_from_listings.get(name, 0)
        if left <= 0:
            return False
        self.omit_from_listings[name] = left - 1
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "copy_delay": self.copy_delay,
            "export_delay": self.export_delay,
            "snapshot_quota": self.snapshot_quota,
            "serverless_snapshot_quota": self.serverless_snapshot_quota,
            "deny_copy_snapshot": self.deny_copy_snapshot,
            "denied_access_keys": list(self.denied_access_keys),
            "max_records_limit": self.max_records_limit,
            "export_fail_node_groups": list(self.export_fail_node_groups),
            "copy_snapshot_error": self.copy_snapshot_error,
            "action_errors": dict(self.action_errors),
            "omit_from_listings": dict(self.omit_from_listings),
        }

    def update(self, body: dict[str, Any]) -> None:
        known = set(self.to_json())
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        if "copy_delay" in body:
            self.copy_delay = float(body["copy_delay"])
        if "export_delay" in body:
            self.export_delay = float(body["export_delay"])
        if "snapshot_quota" in body:
            q = body["snapshot_quota"]
            self.snapshot_quota = None if q is None else int(q)
        if "serverless_snapshot_quota" in body:
            q = body["serverless_snapshot_quota"]
            self.serverless_snapshot_quota = None if q is None else int(q)
        if "deny_copy_snapshot" in body:
            self.deny_copy_snapshot = bool(body["deny_copy_snapshot"])
        if "denied_access_keys" in body:
            self.denied_access_keys = [str(k) for k in (body["denied_access_keys"] or [])]
        if "max_records_limit" in body:
            self.max_records_limit = int(body["max_records_limit"])
        if "export_fail_node_groups" in body:
            self.export_fail_node_groups = [str(i) for i in (body["export_fail_node_groups"] or [])]
        if "copy_snapshot_error" in body:
            e = body["copy_snapshot_error"]
            self.copy_snapshot_error = None if e is None else {"code": str(e["code"]), "message": str(e["message"])}
        if "omit_from_listings" in body:
            self.omit_from_listings = {str(n): int(c) for n, c in (body["omit_from_listings"] or {}).items()}
        if "action_errors" in body:
            errors = body["action_errors"] or {}
            self.action_errors = {str(a): {"code": str(e["code"]), "message": str(e["message"])} for a, e in errors.items()}


@dataclass
class Faults:
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None
    services: list[str] | None = None
    actions: list[str] | None = None
    rng: random.Random = field(default_factory=random.Random)

    def to_json(self) -> dict[str, Any]:
        return {
            "throttle_rate": self.throttle_rate,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
            "services": self.services,
            "actions": self.actions,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Faults":
        known = {"throttle_rate", "error_rate", "latency_ms", "seed", "services", "actions"}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        f = cls(
            throttle_rate=float(body.get("throttle_rate") or 0.0),
            error_rate=float(body.get("error_rate") or 0.0),
            latency_ms=float(body.get("latency_ms") or 0.0),
            seed=body.get("seed"),
            services=body.get("services"),
            actions=body.get("actions"),
        )
        if not (0.0 <= f.throttle_rate <= 1.0 and 0.0 <= f.error_rate <= 1.0):
            raise ValueError("rates must be within [0, 1]")
        if f.throttle_rate + f.error_rate > 1.0:
            raise ValueError("throttle_rate + error_rate must be <= 1")
        f.rng = random.Random(f.seed)
        return f

    def matches(self, service: str, action: str | None) -> bool:
        if self.services is not None and service not in self.services:
            return False
        if self.actions is not None and action not in self.actions:
            return False
        return True

    def active(self) -> bool:
        return self.throttle_rate > 0 or self.error_rate > 0 or self.latency_ms > 0

    def draw(self) -> str | None:
        """Return "throttle", "error" or None.  Caller holds the state lock."""
        if self.throttle_rate <= 0 and self.error_rate <= 0:
            return None
        r = self.rng.random()
        if r < self.throttle_rate:
            return "throttle"
        if r < self.throttle_rate + self.error_rate:
            return "error"
        return None


@dataclass
class Job:
    kind: str  # "copy" | "export" | serverless.JOB_KINDS
    due: float
    account: str
    region: str
    snapshot_name: str  # copy: the target; export: the source
    bucket: str | None = None
    keys: list[str] = field(default_factory=list)
    target: str | None = None


class CallLog:
    """The newest ``limit`` call records, in ``seq`` order.

    Appending is amortised O(1): old entries are dropped in batches rather than
    shifting the whole list on every call once the log is full.  ``seq`` values
    are consecutive (every record gets the next one), so ``since(seq)`` is a
    slice, not a scan or a sort.  Callers hold ``STATE.lock``.
    """

    def __init__(self, limit: int = MAX_CALLS) -> None:
        self.limit = limit
        self._items: list[dict[str, Any]] = []
        self._head = 0  # index of the oldest visible entry in _items

    def append(self, rec: dict[str, Any]) -> None:
        self._items.append(rec)
        if len(self._items) - self._head > self.limit:
            self._head = len(self._items) - self.limit
            if self._head >= max(1024, self.limit // 8):
                del self._items[: self._head]
                self._head = 0

    def clear(self) -> None:
        self._items = []
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Any:
        return iter(self._items[self._head:])

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Entries with ``seq`` greater than ``seq``, oldest first."""
        if len(self) == 0:
            return []
        first = self._items[self._head]["seq"]
        start = self._head + max(0, seq + 1 - first)
        return self._items[start:]


class JobQueue:
    """Pending copies/exports, ordered by due time (a heap), so finding the
    jobs that are due costs O(due jobs * log pending), not O(pending)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._tie = itertools.count()

    def push(self, job: Job) -> None:
        heapq.heappush(self._heap, (job.due, next(self._tie), job))

    append = push

    def next_due(self) -> float | None:
        heap = self._heap
        return heap[0][0] if heap else None

    def pop_due(self, t: float) -> list[Job]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= t:
            out.append(heapq.heappop(heap)[2])
        return out

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Any:
        return iter([j for _, _, j in sorted(self._heap)])


class State:
    def __init__(self, copy_delay: float = 2.0, export_delay: float = 2.0) -> None:
        self.lock = threading.RLock()
        self.defaults = (copy_delay, export_delay)
        self.config = Config(copy_delay=copy_delay, export_delay=export_delay)
        self.faults = Faults()
        self.calls = CallLog()
        # Calls received and not answered yet (held by an injected latency), by id(rec): a test
        # can act while a request is in flight (kill the caller) instead of guessing when.
        self.in_flight: dict[int, dict[str, Any]] = {}
        self.seq = 0
        self.jobs = JobQueue()
        # bucket name -> account id (emulator-side ownership override)
        self.bucket_owners: dict[str, str] = {}
        # access key id -> account id
        self.access_keys: dict[str, str] = {}
        # (account, region) pairs that have been touched by our layer
        self.touched: set[tuple[str, str]] = set()
        # (account, region) -> serverless.Region
        self.serverless: dict[tuple[str, str], Any] = {}
        # (account, region) -> {"rg:<id>" | "cc:<id>": seeded node-based cache}
        self.node_caches: dict[tuple[str, str], dict[str, Any]] = {}

    def reset(self) -> None:
        with self.lock:
            copy_delay, export_delay = self.defaults
            self.config = Config(copy_delay=copy_delay, export_delay=export_delay)
            self.faults = Faults()
            self.calls = CallLog()
            self.in_flight = {}
            self.seq = 0
            self.jobs = JobQueue()
            self.bucket_owners = {}
            self.access_keys = {}
            self.touched = set()
            self.serverless = {}
            self.node_caches = {}

    def begin_call(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.in_flight[id(rec)] = rec

    def record_call(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.in_flight.pop(id(rec), None)
            self.seq += 1
            rec["seq"] = self.seq
            self.calls.append(rec)


STATE = State()


def now() -> float:
    return time.time()
