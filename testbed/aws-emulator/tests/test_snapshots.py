"""In-region CopySnapshot, DescribeSnapshots, DeleteSnapshot, tags."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, COPY_DELAY, wait_for


def err(call: Any, **kw: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as ei:
        call(**kw)
    r = ei.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_describe_seeded_snapshot_shape(emulator: Any, ec: Any) -> None:
    emulator.seed("prod-2026-11-01", node_groups=3, engine="valkey", replication_group_id="prod", kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k1")
    s = ec.describe_snapshots(SnapshotName="prod-2026-11-01")["Snapshots"][0]
    assert s["SnapshotName"] == "prod-2026-11-01"
    assert s["SnapshotStatus"] == "available"
    assert s["ARN"] == f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:prod-2026-11-01"
    assert s["Engine"] == "valkey"
    assert s["ReplicationGroupId"] == "prod"
    assert s["NumNodeGroups"] == 3
    assert s["KmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k1"
    assert [n["NodeGroupId"] for n in s["NodeSnapshots"]] == ["0001", "0002", "0003"]
    for n in s["NodeSnapshots"]:
        assert n["CacheSize"]
        assert n["SnapshotCreateTime"]
        assert "NodeGroupConfiguration" not in n
    s = ec.describe_snapshots(SnapshotName="prod-2026-11-01", ShowNodeGroupConfig=True)["Snapshots"][0]
    assert s["NodeSnapshots"][0]["NodeGroupConfiguration"]["NodeGroupId"] == "0001"
    assert s["NodeSnapshots"][0]["NodeGroupConfiguration"]["Slots"] == "0-5460"


def test_in_region_copy_creating_then_available_keeps_tags_and_kms(emulator: Any, ec: Any) -> None:
    emulator.seed("src", node_groups=2, replication_group_id="prod", kms_key_id="key-src")
    r = ec.copy_snapshot(
        SourceSnapshotName="src",
        TargetSnapshotName="copy-1",
        KmsKeyId="key-target",
        Tags=[{"Key": "team", "Value": "cache"}, {"Key": "env", "Value": "prod"}],
    )
    snap = r["Snapshot"]
    assert snap["SnapshotName"] == "copy-1"
    assert snap["SnapshotStatus"] == "creating"
    assert snap["KmsKeyId"] == "key-target"
    assert snap["NumNodeGroups"] == 2
    arn = snap["ARN"]
    assert arn == f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:copy-1"
    assert ec.describe_snapshots(SnapshotName="copy-1")["Snapshots"][0]["SnapshotStatus"] == "creating"
    # can't delete while creating
    assert err(ec.delete_snapshot, SnapshotName="copy-1")[0] == "InvalidSnapshotState"
    # can't copy from it while creating
    assert err(ec.copy_snapshot, SourceSnapshotName="copy-1", TargetSnapshotName="x")[0] == "InvalidSnapshotState"
    # (an upper bound on real time only against a hang: the copy takes COPY_DELAY)
    wait_for(lambda: ec.describe_snapshots(SnapshotName="copy-1")["Snapshots"][0]["SnapshotStatus"] == "available", timeout=COPY_DELAY + 10)
    s = ec.describe_snapshots(SnapshotName="copy-1")["Snapshots"][0]
    assert s["KmsKeyId"] == "key-target"
    tags = {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]}
    assert tags == {"team": "cache", "env": "prod"}
    ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "owner", "Value": "ops"}])
    tags = {t["Key"]: t["Value"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]}
    assert tags == {"team": "cache", "env": "prod", "owner": "ops"}
    ec.remove_tags_from_resource(ResourceName=arn, TagKeys=["team"])
    assert {t["Key"] for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]} == {"env", "owner"}


def test_copy_without_kms_inherits_source_key(emulator: Any, ec: Any) -> None:
    emulator.seed("src", kms_key_id="key-src", cache_cluster_id="c1")
    assert ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="c")["Snapshot"]["KmsKeyId"] == "key-src"


def test_copy_target_already_exists(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    emulator.seed("taken")
    assert err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="taken")[0] == "SnapshotAlreadyExistsFault"
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="fresh")
    code, _, status = err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="fresh")
    assert (code, status) == ("SnapshotAlreadyExistsFault", 400)


def test_snapshot_not_found(emulator: Any, ec: Any) -> None:
    assert err(ec.describe_snapshots, SnapshotName="ghost") == ("SnapshotNotFoundFault", "Snapshot ghost not found.", 404)
    assert err(ec.copy_snapshot, SourceSnapshotName="ghost", TargetSnapshotName="t")[::2] == ("SnapshotNotFoundFault", 404)
    assert err(ec.delete_snapshot, SnapshotName="ghost")[::2] == ("SnapshotNotFoundFault", 404)
    with pytest.raises(ec.exceptions.SnapshotNotFoundFault):
        ec.describe_snapshots(SnapshotName="ghost")


def test_source_not_available(emulator: Any, ec: Any) -> None:
    emulator.seed("busy", status="creating")
    assert err(ec.copy_snapshot, SourceSnapshotName="busy", TargetSnapshotName="t")[0] == "InvalidSnapshotState"
    with pytest.raises(ec.exceptions.InvalidSnapshotStateFault):
        ec.copy_snapshot(SourceSnapshotName="busy", TargetSnapshotName="t")


def test_tag_validation(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="t", Tags=tags)[0] == "TagQuotaPerResourceExceeded"
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t50", Tags=tags[:50])
    arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:t50"
    assert err(ec.add_tags_to_resource, ResourceName=arn, Tags=[{"Key": "one-more", "Value": "x"}])[0] == "TagQuotaPerResourceExceeded"
    code, msg, status = err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="t2", Tags=[{"Key": "aws:reserved", "Value": "x"}])
    assert (code, status) == ("InvalidParameterValue", 400)
    assert "aws:" in msg


def test_target_name_length(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    assert err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="x" * 1001)[0] == "InvalidParameterValue"
    assert ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="y" * 1000)


def test_snapshot_quota(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    emulator.ctl("/config", {"snapshot_quota": 2})
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="one")
    assert err(ec.copy_snapshot, SourceSnapshotName="src", TargetSnapshotName="two")[0] == "SnapshotQuotaExceededFault"


def test_delete_snapshot(emulator: Any, ec: Any) -> None:
    emulator.seed("old", tags={"a": "b"})
    r = ec.delete_snapshot(SnapshotName="old")
    assert r["Snapshot"]["SnapshotName"] == "old"
    assert r["Snapshot"]["SnapshotStatus"] == "deleting"
    assert err(ec.describe_snapshots, SnapshotName="old")[0] == "SnapshotNotFoundFault"
    assert ec.describe_snapshots()["Snapshots"] == []


def test_pagination_45_snapshots(emulator: Any, ec: Any) -> None:
    for i in range(45):
        emulator.seed(f"snap-{i:03d}", replication_group_id="rg")
    pages = []
    marker = None
    while True:
        kw = {"MaxRecords": 20}
        if marker:
            kw["Marker"] = marker
        r = ec.describe_snapshots(**kw)
        pages.append([s["SnapshotName"] for s in r["Snapshots"]])
        marker = r.get("Marker")
        if not marker:
            break
    assert [len(p) for p in pages] == [20, 20, 5]
    flat = [n for p in pages for n in p]
    assert flat == [f"snap-{i:03d}" for i in range(45)]
    # default page size 50 -> one page, no marker
    r = ec.describe_snapshots()
    assert len(r["Snapshots"]) == 45 and "Marker" not in r
    # boto3's paginator drives Marker itself
    paged = ec.get_paginator("describe_snapshots").paginate(PaginationConfig={"PageSize": 20})
    assert sum(len(p["Snapshots"]) for p in paged) == 45
    # bounds
    for bad in (19, 101, 0):
        assert err(ec.describe_snapshots, MaxRecords=bad)[0] == "InvalidParameterValue"
    assert err(ec.describe_snapshots, Marker="garbage!")[0] == "InvalidParameterValue"


def test_max_records_limit_follows_api_model(emulator: Any, ec: Any) -> None:
    # API model: "Constraints: minimum 20; maximum 50." (configurable)
    assert err(ec.describe_snapshots, MaxRecords=51)[0] == "InvalidParameterValue"
    ec.describe_snapshots(MaxRecords=50)
    emulator.ctl("/config", {"max_records_limit": 100})
    ec.describe_snapshots(MaxRecords=100)


def test_describe_filters(emulator: Any, ec: Any) -> None:
    emulator.seed("a1", replication_group_id="rg-a")
    emulator.seed("a2", replication_group_id="rg-a", snapshot_source="automated")
    emulator.seed("b1", replication_group_id="rg-b")
    emulator.seed("c1", cache_cluster_id="cluster-c")

    def names(**kw: Any) -> list[str]:
        return sorted(s["SnapshotName"] for s in ec.describe_snapshots(**kw)["Snapshots"])

    assert names(ReplicationGroupId="rg-a") == ["a1", "a2"]
    assert names(CacheClusterId="cluster-c") == ["c1"]
    assert names(SnapshotSource="system") == ["a2"]
    assert names(SnapshotSource="user") == ["a1", "b1", "c1"]
    assert names(ReplicationGroupId="rg-a", SnapshotSource="manual") == ["a1"]
    assert names(SnapshotName="b1", ReplicationGroupId="rg-a") == []


def test_regions_are_separate(emulator: Any) -> None:
    emulator.seed("west", region="us-west-2")
    west = emulator.client("elasticache", region="us-west-2")
    east = emulator.client("elasticache", region="us-east-1")
    assert [s["SnapshotName"] for s in west.describe_snapshots()["Snapshots"]] == ["west"]
    assert east.describe_snapshots()["Snapshots"] == []
    s = west.describe_snapshots()["Snapshots"][0]
    assert s["ARN"] == f"arn:aws:elasticache:us-west-2:{ACCOUNT}:snapshot:west"


def test_moto_actions_still_work(emulator: Any, ec: Any) -> None:
    """Actions we don't handle fall through to moto."""
    ec.create_cache_cluster(CacheClusterId="plain", Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1)
    assert [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]] == ["plain"]
    ec.create_snapshot(CacheClusterId="plain", SnapshotName="moto-made")
    s = ec.describe_snapshots(SnapshotName="moto-made")["Snapshots"][0]
    assert s["CacheClusterId"] == "plain"
    assert [n["NodeGroupId"] for n in s["NodeSnapshots"]] == ["0001"]
    # CreateSnapshot is ours (test_create_snapshot.py): creating, then available
    assert s["SnapshotStatus"] == "creating"
    wait_for(lambda: ec.describe_snapshots(SnapshotName="moto-made")["Snapshots"][0]["SnapshotStatus"] == "available")
    r = ec.copy_snapshot(SourceSnapshotName="moto-made", TargetSnapshotName="moto-copy")
    assert r["Snapshot"]["SnapshotStatus"] == "creating"


def test_concurrent_copies_to_one_target(emulator: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    emulator.seed("src")
    clients = [emulator.client("elasticache") for _ in range(8)]

    def attempt(c: Any) -> str:
        try:
            c.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="race")
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as pool:
        results = sorted(pool.map(attempt, clients))
    assert results == ["SnapshotAlreadyExistsFault"] * 7 + ["ok"]


def test_background_ticker_completes_copy_without_requests(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="quiet")
    # the control listing does not advance state itself: the ticker does (waited for, not timed)
    status = lambda: {s["name"]: s["status"] for s in emulator.ctl("/snapshots")}  # noqa: E731
    wait_for(lambda: status() == {"src": "available", "quiet": "available"}, timeout=COPY_DELAY + 10)
