"""The serverless caches and snapshots the emulator keeps, and their XML.

Kept in ``STATE.serverless`` as one :class:`Region` per (account, region);
callers hold ``STATE.lock``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from . import s3perm
from .state import STATE

TYPES = ("automated", "manual")


@dataclass
class Cache:
    name: str
    engine: str = "valkey"
    major_engine_version: str = "8"
    status: str = "available"
    shards: int = 1
    bytes_used: int = 1048576
    snapshot_retention_limit: int = 1  # days an automatic snapshot is kept


@dataclass
class Snap:
    name: str
    account: str
    region: str
    cache_name: str
    engine: str
    major_engine_version: str
    status: str
    snapshot_type: str  # "automated" | "manual"
    create_time: float
    expiry_time: float | None
    bytes_used: int
    kms_key_id: str | None
    shards: int
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def arn(self) -> str:
        part = s3perm.partition_of(self.region)
        return f"arn:{part}:elasticache:{self.region}:{self.account}:serverlesscachesnapshot:{self.name}"


class Region:
    """The serverless caches and snapshots of one account in one region; the
    snapshot names are kept sorted so a Describe page is O(page + log n)."""

    def __init__(self) -> None:
        self.caches: dict[str, Cache] = {}
        self.snapshots: dict[str, Snap] = {}
        self.names: list[str] = []

    def add(self, snap: Snap) -> None:
        if snap.name not in self.snapshots:
            bisect.insort(self.names, snap.name)
        self.snapshots[snap.name] = snap

    def remove(self, name: str) -> None:
        self.snapshots.pop(name, None)
        i = bisect.bisect_left(self.names, name)
        if i < len(self.names) and self.names[i] == name:
            del self.names[i]

    def lookup(self, name: str) -> Snap | None:
        """Exact name, then lowercase (target names are stored lowercased)."""
        return self.snapshots.get(name) or self.snapshots.get(name.lower())


def region_state(account: str, region: str) -> Region:
    reg = STATE.serverless.get((account, region))
    if reg is None:
        reg = STATE.serverless[(account, region)] = Region()
    return reg


# --------------------------------------------------------------------------
# rendering


def render(s: Snap) -> str:
    from .elasticache import el, iso

    return (
        "<ServerlessCacheSnapshot>"
        + el("ServerlessCacheSnapshotName", s.name)
        + el("ARN", s.arn)
        + el("KmsKeyId", s.kms_key_id)
        + el("SnapshotType", s.snapshot_type)
        + el("Status", s.status)
        + el("CreateTime", iso(s.create_time))
        + el("ExpiryTime", iso(s.expiry_time))
        + el("BytesUsedForCache", str(s.bytes_used))
        + "<ServerlessCacheConfiguration>"
        + el("ServerlessCacheName", s.cache_name)
        + el("Engine", s.engine)
        + el("MajorEngineVersion", s.major_engine_version)
        + "</ServerlessCacheConfiguration>"
        + "</ServerlessCacheSnapshot>"
    )
