"""ElastiCache Serverless snapshots through the wire: shapes, states, paging,
filters, faults, tags, the call log, and exports into S3 with each S3 error."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, COPY_DELAY, EXPORT_DELAY, wait_for
from test_export import (
    MSG_DENIED,
    MSG_KEY,
    MSG_MISSING,
    MSG_OWNER,
    MSG_READ,
    MSG_READ_ACP,
    MSG_REGION,
    MSG_WRITE,
    OTHER_ACCOUNT,
    OTHER_KEY,
    make_bucket,
)

ARN_PREFIX = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:serverlesscachesnapshot:"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def seed_cache(emulator: Any, name: str = "sls", **kw: Any) -> dict:
    return emulator.ctl("/serverless-caches", {"name": name, **kw})


def seed_snap(emulator: Any, name: str, cache: str = "sls", **kw: Any) -> dict:
    return emulator.ctl("/serverless-snapshots", {"name": name, "cache": cache, **kw})


def error_of(fn: Any, **kw: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as ei:
        fn(**kw)
    r = ei.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def describe_one(ec: Any, name: str) -> dict:
    return ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName=name)["ServerlessCacheSnapshots"][0]


def test_seeded_snapshot_shape(emulator: Any, ec: Any) -> None:
    seed_cache(emulator, engine="valkey", major_engine_version="8", bytes_used=4096, snapshot_retention_limit=3)
    seed_snap(emulator, "auto-1", snapshot_type="automated", created=T0, kms_key_id="kms-1")
    s = describe_one(ec, "auto-1")
    assert s == {
        "ServerlessCacheSnapshotName": "auto-1",
        "ARN": ARN_PREFIX + "auto-1",
        "KmsKeyId": "kms-1",
        "SnapshotType": "automated",
        "Status": "available",
        "CreateTime": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "ExpiryTime": dt.datetime(2026, 1, 4, tzinfo=dt.timezone.utc),
        "BytesUsedForCache": "4096",
        "ServerlessCacheConfiguration": {
            "ServerlessCacheName": "sls",
            "Engine": "valkey",
            "MajorEngineVersion": "8",
        },
    }
    # ISO create times are accepted too; manual snapshots do not expire
    seed_snap(emulator, "man-1", created="2026-02-03T04:05:06Z")
    m = describe_one(ec, "man-1")
    assert m["CreateTime"] == dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    assert "ExpiryTime" not in m and m["SnapshotType"] == "manual"


def test_create_creating_then_available(emulator: Any, ec: Any) -> None:
    seed_cache(emulator, bytes_used=777)
    r = ec.create_serverless_cache_snapshot(
        ServerlessCacheSnapshotName="Nightly-1",
        ServerlessCacheName="sls",
        KmsKeyId="kms-x",
        Tags=[{"Key": "owner", "Value": "ecx"}],
    )["ServerlessCacheSnapshot"]
    assert (r["ServerlessCacheSnapshotName"], r["Status"], r["SnapshotType"]) == ("nightly-1", "creating", "manual")
    assert r["BytesUsedForCache"] == "777" and r["KmsKeyId"] == "kms-x"
    assert r["ServerlessCacheConfiguration"]["ServerlessCacheName"] == "sls"
    assert wait_for(lambda: describe_one(ec, "nightly-1")["Status"] == "available", timeout=COPY_DELAY + 3)
    assert ec.list_tags_for_resource(ResourceName=ARN_PREFIX + "nightly-1")["TagList"] == [
        {"Key": "owner", "Value": "ecx"}
    ]


def test_create_faults(emulator: Any, ec: Any) -> None:
    create = ec.create_serverless_cache_snapshot
    assert error_of(create, ServerlessCacheSnapshotName="x", ServerlessCacheName="nope") == (
        "ServerlessCacheNotFoundFault",
        404,
    )
    seed_cache(emulator)
    seed_snap(emulator, "taken")
    assert error_of(create, ServerlessCacheSnapshotName="TAKEN", ServerlessCacheName="sls") == (
        "ServerlessCacheSnapshotAlreadyExistsFault",
        400,
    )
    assert error_of(create, ServerlessCacheSnapshotName="x" * 256, ServerlessCacheName="sls") == (
        "InvalidParameterValue",
        400,
    )
    assert error_of(
        create, ServerlessCacheSnapshotName="x", ServerlessCacheName="sls", Tags=[{"Key": "aws:x", "Value": "1"}]
    ) == ("InvalidParameterValue", 400)
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert error_of(create, ServerlessCacheSnapshotName="x", ServerlessCacheName="sls", Tags=many) == (
        "TagQuotaPerResourceExceeded",
        400,
    )
    emulator.ctl("/config", {"serverless_snapshot_quota": 1})
    assert error_of(create, ServerlessCacheSnapshotName="x", ServerlessCacheName="sls") == (
        "ServerlessCacheSnapshotQuotaExceededFault",
        400,
    )
    emulator.ctl("/config", {"serverless_snapshot_quota": None})
    emulator.ctl("/serverless-caches/sls/status", {"status": "modifying"})
    assert error_of(create, ServerlessCacheSnapshotName="x", ServerlessCacheName="sls") == (
        "InvalidServerlessCacheStateFault",
        400,
    )
    # nothing was made by a refused request
    assert [s["name"] for s in emulator.ctl("/serverless-snapshots")] == ["taken"]


def test_copy_states_tags_kms_and_faults(emulator: Any, ec: Any) -> None:
    seed_cache(emulator)
    seed_snap(emulator, "src", snapshot_type="automated", created=T0, kms_key_id="src-key")
    copy = ec.copy_serverless_cache_snapshot
    r = copy(
        SourceServerlessCacheSnapshotName="src",
        TargetServerlessCacheSnapshotName="Copy-A",
        Tags=[{"Key": "elasticache-export.io/owner", "Value": "ns/obj"}],
    )["ServerlessCacheSnapshot"]
    assert (r["ServerlessCacheSnapshotName"], r["Status"], r["SnapshotType"]) == ("copy-a", "copying", "manual")
    assert r["KmsKeyId"] == "src-key"  # inherited when the request names none
    assert r["ARN"] == ARN_PREFIX + "copy-a"
    assert error_of(copy, SourceServerlessCacheSnapshotName="src", TargetServerlessCacheSnapshotName="copy-a") == (
        "ServerlessCacheSnapshotAlreadyExistsFault",
        400,
    )
    # a copy in flight can be neither copied nor deleted
    assert error_of(copy, SourceServerlessCacheSnapshotName="copy-a", TargetServerlessCacheSnapshotName="b") == (
        "InvalidServerlessCacheSnapshotStateFault",
        400,
    )
    assert error_of(ec.delete_serverless_cache_snapshot, ServerlessCacheSnapshotName="copy-a") == (
        "InvalidServerlessCacheSnapshotStateFault",
        400,
    )
    assert wait_for(lambda: describe_one(ec, "copy-a")["Status"] == "available", timeout=COPY_DELAY + 3)
    assert ec.list_tags_for_resource(ResourceName=ARN_PREFIX + "copy-a")["TagList"] == [
        {"Key": "elasticache-export.io/owner", "Value": "ns/obj"}
    ]
    k = copy(SourceServerlessCacheSnapshotName="src", TargetServerlessCacheSnapshotName="k", KmsKeyId="mine")
    assert k["ServerlessCacheSnapshot"]["KmsKeyId"] == "mine"
    assert error_of(copy, SourceServerlessCacheSnapshotName="gone", TargetServerlessCacheSnapshotName="z") == (
        "ServerlessCacheSnapshotNotFoundFault",
        404,
    )
    emulator.ctl("/config", {"serverless_snapshot_quota": 3})
    assert error_of(copy, SourceServerlessCacheSnapshotName="src", TargetServerlessCacheSnapshotName="z") == (
        "ServerlessCacheSnapshotQuotaExceededFault",
        400,
    )


def test_delete(emulator: Any, ec: Any) -> None:
    seed_snap(emulator, "old", tags={"a": "b"})
    r = ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName="old")["ServerlessCacheSnapshot"]
    assert (r["ServerlessCacheSnapshotName"], r["Status"]) == ("old", "deleting")
    assert error_of(ec.describe_serverless_cache_snapshots, ServerlessCacheSnapshotName="old") == (
        "ServerlessCacheSnapshotNotFoundFault",
        404,
    )
    assert error_of(ec.delete_serverless_cache_snapshot, ServerlessCacheSnapshotName="old") == (
        "ServerlessCacheSnapshotNotFoundFault",
        404,
    )
    assert error_of(ec.list_tags_for_resource, ResourceName=ARN_PREFIX + "old") == (
        "ServerlessCacheSnapshotNotFoundFault",
        404,
    )


def test_paging_45_snapshots_and_filters(emulator: Any, ec: Any) -> None:
    seed_cache(emulator, "a")
    seed_cache(emulator, "b")
    for i in range(45):
        seed_snap(emulator, f"s{i:02d}", cache="a" if i % 3 else "b", snapshot_type="automated" if i % 2 else "manual")
    names: list[str] = []
    token = None
    pages = 0
    while True:
        kw = {"MaxResults": 20}
        if token:
            kw["NextToken"] = token
        r = ec.describe_serverless_cache_snapshots(**kw)
        names += [s["ServerlessCacheSnapshotName"] for s in r["ServerlessCacheSnapshots"]]
        pages += 1
        token = r.get("NextToken")
        if not token:
            break
    assert pages == 3 and names == [f"s{i:02d}" for i in range(45)]
    # the SDK paginator walks the same pages; filters combine
    pager = ec.get_paginator("describe_serverless_cache_snapshots")
    got = [
        s["ServerlessCacheSnapshotName"]
        for page in pager.paginate(ServerlessCacheName="b", SnapshotType="automated", PaginationConfig={"PageSize": 2})
        for s in page["ServerlessCacheSnapshots"]
    ]
    assert got == [f"s{i:02d}" for i in range(45) if i % 3 == 0 and i % 2]
    assert len(ec.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"]) == 45  # default 50
    one = ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName="s01", SnapshotType="manual")
    assert one["ServerlessCacheSnapshots"] == []  # s01 is automated
    bad = ec.describe_serverless_cache_snapshots
    assert error_of(bad, MaxResults=51) == ("InvalidParameterValue", 400)
    assert error_of(bad, SnapshotType="weekly") == ("InvalidParameterValue", 400)
    assert error_of(bad, NextToken="garbage!") == ("InvalidParameterValue", 400)
    assert error_of(bad, ServerlessCacheName="nope") == ("ServerlessCacheNotFoundFault", 404)
    # node-based snapshots are a separate namespace
    assert ec.describe_snapshots()["Snapshots"] == []


def test_regions_and_accounts_are_separate(emulator: Any) -> None:
    seed_snap(emulator, "here")
    seed_snap(emulator, "there", region="eu-west-1")
    eu = emulator.client("elasticache", region="eu-west-1")
    assert [s["ServerlessCacheSnapshotName"] for s in eu.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"]] == ["there"]
    assert eu.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"][0]["ARN"].startswith(
        "arn:aws:elasticache:eu-west-1:"
    )


def test_tags_on_serverless_arns_and_node_arns_still_work(emulator: Any, ec: Any) -> None:
    seed_snap(emulator, "t", tags=[{"Key": "a", "Value": "1"}])
    arn = ARN_PREFIX + "t"
    ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}])
    assert sorted((t["Key"], t["Value"]) for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]) == [
        ("a", "3"),
        ("b", "2"),
    ]
    ec.remove_tags_from_resource(ResourceName=arn, TagKeys=["a"])
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "b", "Value": "2"}]
    emulator.seed("node", tags={"n": "1"})
    node_arn = f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:node"
    assert ec.list_tags_for_resource(ResourceName=node_arn)["TagList"] == [{"Key": "n", "Value": "1"}]


def test_call_log_and_fault_injection(emulator: Any, ec: Any) -> None:
    seed_cache(emulator)
    emulator.ctl(
        "/faults", {"throttle_rate": 1.0, "actions": ["CreateServerlessCacheSnapshot"], "seed": 1}
    )
    assert error_of(ec.create_serverless_cache_snapshot, ServerlessCacheSnapshotName="f", ServerlessCacheName="sls") == (
        "Throttling",
        400,
    )
    assert emulator.ctl("/serverless-snapshots") == []  # faults come before any state change
    emulator.ctl("/faults", {"error_rate": 1.0, "actions": ["DescribeServerlessCacheSnapshots"]})
    assert error_of(ec.describe_serverless_cache_snapshots) == ("InternalFailure", 500)
    emulator.ctl("/faults", {})
    ec.create_serverless_cache_snapshot(ServerlessCacheSnapshotName="f", ServerlessCacheName="sls")
    calls = emulator.ctl("/calls?service=elasticache")
    assert [(c["action"], c["status"], c["error_code"]) for c in calls] == [
        ("CreateServerlessCacheSnapshot", 400, "Throttling"),
        ("DescribeServerlessCacheSnapshots", 500, "InternalFailure"),
        ("CreateServerlessCacheSnapshot", 200, None),
    ]
    assert calls[-1]["params"]["ServerlessCacheSnapshotName"] == "f"
    assert calls[-1]["params"]["ServerlessCacheName"] == "sls"


def test_control_status_and_reset(emulator: Any, ec: Any) -> None:
    seed_snap(emulator, "x")
    assert emulator.ctl("/serverless-snapshots/x/status", {"status": "creating"})["status"] == "creating"
    assert describe_one(ec, "x")["Status"] == "creating"
    with pytest.raises(Exception) as ei:
        seed_snap(emulator, "x")
    assert "409" in str(ei.value)
    emulator.ctl("/reset", {})
    assert emulator.ctl("/serverless-snapshots") == [] and emulator.ctl("/serverless-caches") == []


# ---- export -----------------------------------------------------------------


def export_error(ec: Any, bucket: str, name: str = "src") -> tuple[str, str, int]:
    with pytest.raises(ClientError) as ei:
        ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName=name, S3BucketName=bucket)
    r = ei.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def src(emulator: Any) -> dict:
    seed_cache(emulator, "prod", engine="valkey", shards=2)
    return seed_snap(emulator, "src", cache="prod")


def test_export_writes_one_object_per_shard(emulator: Any, ec: Any, s3: Any, src: dict) -> None:
    make_bucket(emulator, "exports")
    r = ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName="src", S3BucketName="exports")
    snap = r["ServerlessCacheSnapshot"]
    assert (snap["ServerlessCacheSnapshotName"], snap["Status"]) == ("src", "exporting")
    # a second export or a copy while exporting is refused; nothing written yet
    assert export_error(ec, "exports")[0] == "InvalidServerlessCacheSnapshotStateFault"
    assert s3.list_objects_v2(Bucket="exports").get("Contents", []) == []
    assert wait_for(lambda: describe_one(ec, "src")["Status"] == "available", timeout=EXPORT_DELAY + 3)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]]
    assert keys == ["src-0001.rdb", "src-0002.rdb"]
    body = s3.get_object(Bucket="exports", Key="src-0001.rdb")["Body"].read()
    assert body.startswith(b"REDIS0011") and b"serverless=prod" in body
    # exporting the same snapshot again into the same bucket collides on the key
    assert export_error(ec, "exports") == ("InvalidParameterValue", MSG_KEY.format(b="exports", k="src-0001.rdb"), 400)
    calls = emulator.ctl("/calls?action=ExportServerlessCacheSnapshot")
    assert [(c["status"], c["error_code"]) for c in calls] == [
        (200, None),
        (400, "InvalidServerlessCacheSnapshotStateFault"),
        (400, "InvalidParameterValue"),
    ]
    assert calls[0]["params"]["S3BucketName"] == "exports"


def test_export_not_found_and_not_available(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "exports")
    assert export_error(ec, "exports", name="nope")[0::2] == ("ServerlessCacheSnapshotNotFoundFault", 404)
    emulator.ctl("/serverless-snapshots/src/status", {"status": "creating"})
    assert export_error(ec, "exports")[0::2] == ("InvalidServerlessCacheSnapshotStateFault", 400)


def test_export_s3_errors_in_documented_order(emulator: Any, ec: Any, src: dict) -> None:
    def expect(bucket: str, msg: str) -> None:
        assert export_error(ec, bucket) == ("InvalidParameterValue", msg.format(b=bucket), 400)

    expect("no-such-bucket", MSG_MISSING)
    make_bucket(emulator, "eu-bucket", region="eu-west-1")
    expect("eu-bucket", MSG_REGION)
    emulator.ctl("/access-keys", {"access_key_id": OTHER_KEY, "account": OTHER_ACCOUNT})
    make_bucket(emulator, "theirs", access_key=OTHER_KEY)
    expect("theirs", MSG_OWNER)
    make_bucket(emulator, "mine")
    emulator.ctl("/config", {"deny_copy_snapshot": True})
    assert export_error(ec, "mine") == ("InvalidParameterValue", MSG_DENIED, 400)
    emulator.ctl("/config", {"deny_copy_snapshot": False})
    make_bucket(emulator, "no-read", grants=("WRITE", "READ_ACP"))
    expect("no-read", MSG_READ)
    make_bucket(emulator, "no-write", grants=("READ", "READ_ACP"))
    expect("no-write", MSG_WRITE)
    make_bucket(emulator, "no-acp", grants=("READ", "WRITE"))
    expect("no-acp", MSG_READ_ACP)
    s3 = make_bucket(emulator, "occupied")
    s3.put_object(Bucket="occupied", Key="src-0002.rdb", Body=b"x")
    assert export_error(ec, "occupied") == (
        "InvalidParameterValue",
        MSG_KEY.format(b="occupied", k="src-0002.rdb"),
        400,
    )
    # none of these changed the snapshot
    assert describe_one(ec, "src")["Status"] == "available"


def test_export_via_bucket_policy(emulator: Any, ec: Any, src: dict) -> None:
    s3 = make_bucket(emulator, "by-policy", grants=())
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "us-east-1.elasticache-snapshot.amazonaws.com"},
                "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:PutObject", "s3:GetBucketAcl"],
                "Resource": ["arn:aws:s3:::by-policy", "arn:aws:s3:::by-policy/*"],
            }
        ],
    }
    s3.put_bucket_policy(Bucket="by-policy", Policy=json.dumps(policy))
    ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName="src", S3BucketName="by-policy")
    time.sleep(EXPORT_DELAY + 0.3)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="by-policy")["Contents"]] == ["src-0001.rdb", "src-0002.rdb"]


def test_background_ticker_completes_create_and_export(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "quiet")
    ec.create_serverless_cache_snapshot(ServerlessCacheSnapshotName="fresh", ServerlessCacheName="prod")
    ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName="src", S3BucketName="quiet")
    # the control listing does not advance state itself: the ticker does (waited for, not timed)
    done = {"src": "available", "fresh": "available"}
    wait_for(lambda: {s["name"]: s["status"] for s in emulator.ctl("/serverless-snapshots")} == done, timeout=max(COPY_DELAY, EXPORT_DELAY) + 10)


def test_a_listing_can_miss_a_serverless_snapshot(emulator: Any, ec: Any) -> None:
    """`omit_from_listings` applies to DescribeServerlessCacheSnapshots listings too."""
    seed_cache(emulator)
    seed_snap(emulator, "kept")
    seed_snap(emulator, "missed")
    emulator.ctl("/config", {"omit_from_listings": {"missed": 1}})
    names = lambda: [s["ServerlessCacheSnapshotName"] for s in ec.describe_serverless_cache_snapshots()["ServerlessCacheSnapshots"]]  # noqa: E731
    assert names() == ["kept"]
    one = ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName="missed")["ServerlessCacheSnapshots"]
    assert [s["ServerlessCacheSnapshotName"] for s in one] == ["missed"]
    assert names() == ["kept", "missed"]
