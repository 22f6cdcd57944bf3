"""CreateSnapshot of node-based caches, and the DescribeSnapshots filters and
seeded automatic snapshots the schedule feature reads, through the wire."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, COPY_DELAY, wait_for

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
UTC = dt.timezone.utc


def error_of(fn: Any, **kw: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as ei:
        fn(**kw)
    r = ei.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def status(ec: Any, name: str) -> str:
    return ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"]


def test_create_from_seeded_replication_group(emulator: Any, ec: Any) -> None:
    emulator.ctl("/caches", {"replication_group_id": "prod", "engine": "valkey", "node_group_ids": ["0001", "0005"]})
    r = ec.create_snapshot(
        ReplicationGroupId="prod",
        SnapshotName="Sched-Prod-20260101",
        Tags=[{"Key": "elasticache-export.io/schedule", "Value": "ns/nightly"}],
    )["Snapshot"]
    assert (r["SnapshotName"], r["SnapshotStatus"], r["SnapshotSource"]) == ("sched-prod-20260101", "creating", "manual")
    assert (r["ReplicationGroupId"], r["Engine"]) == ("prod", "valkey")
    assert [n["NodeGroupId"] for n in r["NodeSnapshots"]] == ["0001", "0005"]
    assert "CacheClusterId" not in r
    # it shows in the filtered listing at once, and becomes available via the job queue
    listed = ec.describe_snapshots(ReplicationGroupId="prod", SnapshotSource="user")["Snapshots"]
    assert [s["SnapshotName"] for s in listed] == ["sched-prod-20260101"]
    assert status(ec, "sched-prod-20260101") == "creating"
    assert wait_for(lambda: status(ec, "sched-prod-20260101") == "available", timeout=COPY_DELAY + 3)
    arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:sched-prod-20260101"
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [
        {"Key": "elasticache-export.io/schedule", "Value": "ns/nightly"}
    ]
    # it exports like any other snapshot once available
    calls = emulator.ctl("/calls?action=CreateSnapshot")
    assert [(c["status"], c["params"]["ReplicationGroupId"], c["params"]["SnapshotName"]) for c in calls] == [
        (200, "prod", "Sched-Prod-20260101")
    ]
    # and DeleteSnapshot removes it
    assert ec.delete_snapshot(SnapshotName="sched-prod-20260101")["Snapshot"]["SnapshotStatus"] == "deleting"
    assert ec.describe_snapshots(ReplicationGroupId="prod")["Snapshots"] == []


def test_create_from_cache_cluster(emulator: Any, ec: Any) -> None:
    emulator.ctl("/caches", {"cache_cluster_id": "single"})
    r = ec.create_snapshot(CacheClusterId="single", SnapshotName="one")["Snapshot"]
    assert (r["CacheClusterId"], r["SnapshotStatus"]) == ("single", "creating")
    assert [n["NodeGroupId"] for n in r["NodeSnapshots"]] == ["0001"]


def test_create_faults(emulator: Any, ec: Any) -> None:
    create = ec.create_snapshot
    assert error_of(create, ReplicationGroupId="nope", SnapshotName="s") == ("ReplicationGroupNotFoundFault", 404)
    assert error_of(create, CacheClusterId="nope", SnapshotName="s") == ("CacheClusterNotFound", 404)
    assert error_of(create, SnapshotName="s") == ("InvalidParameterValue", 400)
    assert error_of(create, ReplicationGroupId="a", CacheClusterId="b", SnapshotName="s") == (
        "InvalidParameterCombination",
        400,
    )
    emulator.ctl("/caches", {"replication_group_id": "prod", "node_groups": 3})
    emulator.seed("taken", replication_group_id="prod")
    assert error_of(create, ReplicationGroupId="prod", SnapshotName="Taken") == ("SnapshotAlreadyExistsFault", 400)
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert error_of(create, ReplicationGroupId="prod", SnapshotName="s", Tags=many) == (
        "TagQuotaPerResourceExceeded",
        400,
    )
    emulator.ctl("/config", {"snapshot_quota": 1})
    assert error_of(create, ReplicationGroupId="prod", SnapshotName="s") == ("SnapshotQuotaExceededFault", 400)
    emulator.ctl("/config", {"snapshot_quota": None})
    emulator.ctl("/caches/prod/status", {"status": "modifying"})
    assert error_of(create, ReplicationGroupId="prod", SnapshotName="s") == ("InvalidReplicationGroupState", 400)
    emulator.ctl("/caches", {"cache_cluster_id": "busy", "status": "snapshotting"})
    assert error_of(create, CacheClusterId="busy", SnapshotName="s") == ("InvalidCacheClusterState", 400)
    emulator.ctl("/caches", {"cache_cluster_id": "mc", "engine": "memcached"})
    assert error_of(create, CacheClusterId="mc", SnapshotName="s") == ("SnapshotFeatureNotSupportedFault", 400)
    # nothing but the seeded snapshot exists
    assert [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]] == ["taken"]
    # a throttled CreateSnapshot changes nothing and is logged
    emulator.ctl("/caches/prod/status", {"status": "available"})
    emulator.ctl("/faults", {"throttle_rate": 1.0, "actions": ["CreateSnapshot"]})
    assert error_of(create, ReplicationGroupId="prod", SnapshotName="s") == ("Throttling", 400)
    emulator.ctl("/faults", {})
    assert [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]] == ["taken"]
    codes = [c["error_code"] for c in emulator.ctl("/calls?action=CreateSnapshot")]
    assert codes[-1] == "Throttling" and len(codes) == 11


def test_create_from_moto_replication_group(emulator: Any, ec: Any) -> None:
    ec.create_replication_group(
        ReplicationGroupId="made",
        ReplicationGroupDescription="via moto",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumNodeGroups=2,
    )
    r = ec.create_snapshot(ReplicationGroupId="made", SnapshotName="m")["Snapshot"]
    assert (r["ReplicationGroupId"], r["SnapshotStatus"], len(r["NodeSnapshots"])) == ("made", "creating", 2)


def test_seeded_automatic_snapshots_newest_by_node_create_time(emulator: Any, ec: Any) -> None:
    """What a LatestAutomatic schedule reads: automatic snapshots of one cache,
    with explicit NodeSnapshots[].SnapshotCreateTime, among others."""
    for day in range(1, 4):
        emulator.seed(
            f"automatic.prod-2026-01-0{day}-03-00",
            replication_group_id="prod",
            node_groups=2,
            snapshot_source="automated",
            created=T0 + (day - 1) * 86400 + 3 * 3600,
        )
    emulator.seed("manual-prod", replication_group_id="prod", created=T0 + 10 * 86400)
    emulator.seed("automatic.other-2026-01-09-03-00", replication_group_id="other", snapshot_source="automated")
    emulator.seed("automatic.single-2026-01-09-03-00", cache_cluster_id="single", snapshot_source="automated")
    snaps = ec.describe_snapshots(ReplicationGroupId="prod", SnapshotSource="system")["Snapshots"]
    assert [s["SnapshotSource"] for s in snaps] == ["automated"] * 3
    times = {s["SnapshotName"]: {n["SnapshotCreateTime"] for n in s["NodeSnapshots"]} for s in snaps}
    assert times == {
        f"automatic.prod-2026-01-0{d}-03-00": {dt.datetime(2026, 1, d, 3, tzinfo=UTC)} for d in range(1, 4)
    }
    assert all("SnapshotCreateTime" not in s for s in snaps)  # no top-level create time
    names = [s["SnapshotName"] for s in ec.describe_snapshots(CacheClusterId="single", SnapshotSource="system")["Snapshots"]]
    assert names == ["automatic.single-2026-01-09-03-00"]
    assert [s["SnapshotName"] for s in ec.describe_snapshots(ReplicationGroupId="prod", SnapshotSource="user")["Snapshots"]] == [
        "manual-prod"
    ]


def test_filtered_paging_stays_intact(emulator: Any, ec: Any) -> None:
    for i in range(60):
        emulator.seed(
            f"s{i:02d}",
            replication_group_id="prod" if i % 2 else "other",
            snapshot_source="automated" if i % 4 == 1 else "manual",
        )
    pager = ec.get_paginator("describe_snapshots")
    got = [
        s["SnapshotName"]
        for page in pager.paginate(ReplicationGroupId="prod", SnapshotSource="system", PaginationConfig={"PageSize": 20})
        for s in page["Snapshots"]
    ]
    assert got == [f"s{i:02d}" for i in range(60) if i % 4 == 1]
    first = ec.describe_snapshots(ReplicationGroupId="prod", MaxRecords=20)
    assert len(first["Snapshots"]) == 20 and first.get("Marker")
    rest = ec.describe_snapshots(ReplicationGroupId="prod", MaxRecords=20, Marker=first["Marker"])
    assert [s["SnapshotName"] for s in first["Snapshots"] + rest["Snapshots"]] == [f"s{i:02d}" for i in range(60) if i % 2]
    assert "Marker" not in rest


def test_a_forced_action_error_answers_every_call_until_cleared(emulator: Any, ec: Any) -> None:
    """`action_errors`: CreateSnapshot answers AlreadyExists although no such snapshot exists."""
    emulator.ctl("/caches", {"replication_group_id": "prod", "engine": "valkey"})
    forced = {"CreateSnapshot": {"code": "SnapshotAlreadyExistsFault", "message": "Snapshot ghost already exists."}}
    emulator.ctl("/config", {"action_errors": forced})
    for _ in range(2):
        assert error_of(ec.create_snapshot, ReplicationGroupId="prod", SnapshotName="ghost") == ("SnapshotAlreadyExistsFault", 400)
    assert ec.describe_snapshots(ReplicationGroupId="prod")["Snapshots"] == []
    emulator.ctl("/config", {"action_errors": {}})
    assert ec.create_snapshot(ReplicationGroupId="prod", SnapshotName="ghost")["Snapshot"]["SnapshotName"] == "ghost"
