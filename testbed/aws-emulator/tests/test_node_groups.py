"""Node group ids: user-supplied and non-contiguous ids on seeded snapshots, DescribeSnapshots
with ShowNodeGroupConfig, exports that write one `<target>-<node group id>.rdb` per node group
with a real LastModified, and an export that fails to write some node groups' objects."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from conftest import wait_for
from test_export import make_bucket


def node_group_ids(snapshot: dict) -> list[str]:
    return [n["NodeGroupId"] for n in snapshot["NodeSnapshots"]]


def test_seeded_non_contiguous_ids_are_described_with_their_configuration(emulator: Any, ec: Any) -> None:
    seeded = emulator.seed("shrunk", node_group_ids=["0001", "0003"], replication_group_id="prod")
    assert seeded["node_group_ids"] == ["0001", "0003"]
    snap = ec.describe_snapshots(SnapshotName="shrunk", ShowNodeGroupConfig=True)["Snapshots"][0]
    assert snap["NumNodeGroups"] == 2
    assert node_group_ids(snap) == ["0001", "0003"]
    assert [n["NodeGroupConfiguration"]["NodeGroupId"] for n in snap["NodeSnapshots"]] == ["0001", "0003"]
    # Without ShowNodeGroupConfig the ids are still there, the configuration is not.
    plain = ec.describe_snapshots(SnapshotName="shrunk")["Snapshots"][0]
    assert node_group_ids(plain) == ["0001", "0003"]
    assert all("NodeGroupConfiguration" not in n for n in plain["NodeSnapshots"])


def test_node_group_ids_are_checked_like_the_api_model(emulator: Any) -> None:
    for bad in (["abcd"], ["00001"], [""], ["0001", "0001"], []):
        with pytest.raises(Exception):
            emulator.seed("bad", node_group_ids=bad)


def test_an_export_writes_one_object_per_node_group_id_with_a_real_last_modified(emulator: Any, ec: Any) -> None:
    emulator.seed("user-ids", node_group_ids=["7", "42", "0003"], replication_group_id="prod")
    s3 = make_bucket(emulator, "ids-bucket")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ec.copy_snapshot(SourceSnapshotName="user-ids", TargetSnapshotName="exp", TargetBucket="ids-bucket")
    listed = wait_for(lambda: s3.list_objects_v2(Bucket="ids-bucket").get("Contents"), timeout=10)
    after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    assert sorted(o["Key"] for o in listed) == ["exp-0003.rdb", "exp-42.rdb", "exp-7.rdb"]
    for o in listed:
        assert before <= o["LastModified"] <= after, (o["Key"], o["LastModified"], before, after)


def test_an_export_can_be_told_to_fail_some_node_groups(emulator: Any, ec: Any) -> None:
    emulator.seed("src3", node_groups=3, replication_group_id="prod")
    s3 = make_bucket(emulator, "partial-bucket")
    emulator.ctl("/config", {"export_fail_node_groups": ["0002"]})
    ec.copy_snapshot(SourceSnapshotName="src3", TargetSnapshotName="part", TargetBucket="partial-bucket")
    wait_for(lambda: ec.describe_snapshots(SnapshotName="src3")["Snapshots"][0]["SnapshotStatus"] == "available", timeout=10)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="partial-bucket").get("Contents", []))
    assert keys == ["part-0001.rdb", "part-0003.rdb"]
