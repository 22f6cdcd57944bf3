"""Control API: health, call log, fault injection, config, reset."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_health(emulator: Any) -> None:
    with urllib.request.urlopen(f"{emulator.endpoint}/_emulator/health") as r:
        assert r.status == 200


def test_unknown_control_path_is_404(emulator: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(f"{emulator.endpoint}/_emulator/nope")
    assert ei.value.code == 404


def test_call_log_records_params_and_no_secrets(emulator: Any, ec: Any, s3: Any) -> None:
    emulator.seed("src")
    s3.create_bucket(Bucket="logged")
    s3.list_objects_v2(Bucket="logged")
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t1", Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ClientError):
        ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t2", TargetBucket="missing-bucket")
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="missing-bucket")
    calls = emulator.ctl("/calls")
    assert [c["seq"] for c in calls] == list(range(1, len(calls) + 1))
    summary = [(c["service"], c["action"], c["status"], c["error_code"]) for c in calls]
    assert summary == [
        ("s3", "CreateBucket", 200, None),
        ("s3", "ListObjectsV2", 200, None),
        ("elasticache", "CopySnapshot", 200, None),
        ("elasticache", "CopySnapshot", 400, "InvalidParameterValue"),
        ("s3", "HeadBucket", 404, "NotFound"),
    ]
    copy = calls[2]
    assert copy["params"]["SourceSnapshotName"] == "src"
    assert copy["params"]["TargetSnapshotName"] == "t1"
    assert copy["params"]["Tags.Tag.1.Key"] == "k"
    assert copy["region"] == "us-east-1"
    assert copy["access_key"] == "AKIAEXAMPLEUSER0001"
    assert isinstance(copy["time"], float)
    assert calls[3]["params"]["TargetBucket"] == "missing-bucket"
    assert calls[1]["params"]["Bucket"] == "logged"
    assert "test-secret-do-not-log" not in json.dumps(calls)
    # filters
    only = emulator.ctl("/calls?service=elasticache&action=CopySnapshot")
    assert len(only) == 2
    emulator.ctl("/calls", method="DELETE")
    assert emulator.ctl("/calls") == []


def test_s3_operation_names(emulator: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="names")
    s3.put_object(Bucket="names", Key="a/b.txt", Body=b"hi")
    s3.get_object(Bucket="names", Key="a/b.txt")
    s3.head_object(Bucket="names", Key="a/b.txt")
    s3.get_bucket_location(Bucket="names")
    s3.get_bucket_acl(Bucket="names")
    s3.put_bucket_policy(Bucket="names", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "us-east-1.elasticache-snapshot.amazonaws.com"}, "Action": "s3:*", "Resource": "arn:aws:s3:::names"}]}))
    s3.get_bucket_policy(Bucket="names")
    s3.delete_object(Bucket="names", Key="a/b.txt")
    s3.list_buckets()
    actions = [c["action"] for c in emulator.ctl("/calls?service=s3")]
    assert actions == [
        "CreateBucket",
        "PutObject",
        "GetObject",
        "HeadObject",
        "GetBucketLocation",
        "GetBucketAcl",
        "PutBucketPolicy",
        "GetBucketPolicy",
        "DeleteObject",
        "ListBuckets",
    ]
    put = emulator.ctl("/calls?action=PutObject")[0]
    assert put["params"]["Key"] == "a/b.txt"


def _run_faulted(emulator: Any, ec: Any, n: int) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(n):
        try:
            ec.describe_snapshots()
            out.append(None)
        except ClientError as e:
            out.append(e.response["Error"]["Code"])
    return out


def test_fault_injection_rate_and_determinism(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    cfg = {"throttle_rate": 0.3, "error_rate": 0.1, "latency_ms": 0, "seed": 42, "services": ["elasticache", "s3"], "actions": None}
    assert emulator.ctl("/faults", cfg)["throttle_rate"] == 0.3
    assert emulator.ctl("/faults")["seed"] == 42
    first = _run_faulted(emulator, ec, 300)
    throttles = first.count("Throttling")
    errors = first.count("InternalFailure")
    assert set(first) <= {None, "Throttling", "InternalFailure"}
    assert 0.22 * 300 <= throttles <= 0.38 * 300, throttles
    assert 0.05 * 300 <= errors <= 0.15 * 300, errors
    # same seed -> same sequence
    emulator.ctl("/faults", cfg)
    assert _run_faulted(emulator, ec, 300) == first
    # each faulted call is in the log with its error code and HTTP status
    calls = emulator.ctl("/calls?action=DescribeSnapshots")
    assert len(calls) == 600
    assert [c["error_code"] for c in calls[:300]] == first
    for c in calls:
        if c["error_code"] == "Throttling":
            assert c["status"] == 400
        elif c["error_code"] == "InternalFailure":
            assert c["status"] == 500
        else:
            assert c["status"] == 200
    emulator.ctl("/faults", {})
    assert _run_faulted(emulator, ec, 20) == [None] * 20


def test_faults_happen_before_state_changes(emulator: Any, ec: Any) -> None:
    emulator.seed("src")
    emulator.ctl("/faults", {"throttle_rate": 1.0, "seed": 1, "actions": ["CopySnapshot"]})
    with pytest.raises(ClientError) as ei:
        ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="never")
    assert ei.value.response["Error"] == {"Type": "Sender", "Code": "Throttling", "Message": "Rate exceeded"}
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # other actions are not faulted
    assert [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]] == ["src"]


def test_s3_faults(emulator: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="slow")
    emulator.ctl("/faults", {"throttle_rate": 1.0, "seed": 7, "services": ["s3"]})
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="slow")
    assert ei.value.response["Error"]["Code"] == "SlowDown"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    emulator.ctl("/faults", {"error_rate": 1.0, "seed": 7, "services": ["s3"]})
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="slow")
    assert ei.value.response["Error"]["Code"] == "InternalError"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    log = emulator.ctl("/calls?action=ListObjectsV2")
    assert [(c["status"], c["error_code"]) for c in log] == [(503, "SlowDown"), (500, "InternalError")]


def test_retrying_client_gets_through_throttling(emulator: Any) -> None:
    emulator.seed("src")
    ec = emulator.client("elasticache", retries=10)
    emulator.ctl("/faults", {"throttle_rate": 0.5, "seed": 3})
    for _ in range(5):
        assert ec.describe_snapshots()["Snapshots"]


def test_bad_control_input_is_400(emulator: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as ei:
        emulator.ctl("/faults", {"throttle_rate": 2})
    assert ei.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as ei:
        emulator.ctl("/config", {"bogus": 1})
    assert ei.value.code == 400


def test_config_and_snapshot_listing(emulator: Any, ec: Any) -> None:
    cfg = emulator.ctl("/config", {"copy_delay": 0.1, "snapshot_quota": 10})
    assert cfg["copy_delay"] == 0.1 and cfg["snapshot_quota"] == 10 and cfg["deny_copy_snapshot"] is False
    emulator.seed("s1", node_groups=2, replication_group_id="rg", tags={"a": "b"})
    with pytest.raises(urllib.error.HTTPError) as ei:
        emulator.seed("s1")
    assert ei.value.code == 409
    listed = emulator.ctl("/snapshots")
    assert [(s["name"], s["status"], s["node_group_ids"], s["tags"]) for s in listed] == [
        ("s1", "available", ["0001", "0002"], [{"Key": "a", "Value": "b"}])
    ]
    emulator.ctl("/snapshots/s1/status", {"status": "creating"})
    assert ec.describe_snapshots(SnapshotName="s1")["Snapshots"][0]["SnapshotStatus"] == "creating"


def test_reset_clears_everything(emulator: Any, ec: Any, s3: Any) -> None:
    emulator.seed("src")
    s3.create_bucket(Bucket="gone-after-reset")
    emulator.ctl("/config", {"copy_delay": 9})
    emulator.ctl("/faults", {"latency_ms": 1})
    emulator.ctl("/reset", {})
    assert ec.describe_snapshots()["Snapshots"] == []
    assert s3.list_buckets()["Buckets"] == []
    assert emulator.ctl("/config")["copy_delay"] == 0.4
    assert emulator.ctl("/faults")["latency_ms"] == 0
    assert [c["action"] for c in emulator.ctl("/calls")] == ["DescribeSnapshots", "ListBuckets"]


def test_call_log_records_the_sdk_attempt(emulator: Any) -> None:
    """An SDK's own retries of one call are told apart in the log (`amz-sdk-request`)."""
    emulator.seed("src")
    emulator.ctl("/faults", {"throttle_rate": 1.0, "error_rate": 0.0, "seed": 1, "services": ["elasticache"], "actions": None})
    retrying = emulator.client("elasticache", retries=3)
    with pytest.raises(ClientError):
        retrying.describe_snapshots(SnapshotName="src")
    emulator.ctl("/faults", {})
    assert [c["attempt"] for c in emulator.ctl("/calls?action=DescribeSnapshots")] == [1, 2, 3]


def test_a_call_held_by_latency_is_listed_in_flight_until_answered(emulator: Any, ec: Any) -> None:
    """`/calls/in-flight`: a test can act while a request is in flight instead of guessing when."""
    import threading

    emulator.seed("src")
    emulator.ctl("/faults", {"throttle_rate": 0.0, "error_rate": 0.0, "latency_ms": 1500, "seed": 1, "services": None, "actions": ["DescribeSnapshots"]})
    t = threading.Thread(target=lambda: ec.describe_snapshots(SnapshotName="src"))
    t.start()
    for _ in range(100):
        pending = emulator.ctl("/calls/in-flight?action=DescribeSnapshots")
        if pending:
            break
        threading.Event().wait(0.02)
    assert [c["params"]["SnapshotName"] for c in pending] == ["src"]
    assert emulator.ctl("/calls?action=DescribeSnapshots") == [], "not answered yet"
    t.join()
    emulator.ctl("/faults", {})
    assert emulator.ctl("/calls/in-flight") == []
    assert len(emulator.ctl("/calls?action=DescribeSnapshots")) == 1


def test_a_listing_can_miss_a_snapshot_that_a_describe_by_name_finds(emulator: Any, ec: Any) -> None:
    """`omit_from_listings`: the next N listings leave the snapshot out; by name it is found."""
    emulator.seed("kept")
    emulator.seed("missed")
    emulator.ctl("/config", {"omit_from_listings": {"missed": 2}})
    for _ in range(2):
        assert [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]] == ["kept"]
        assert ec.describe_snapshots(SnapshotName="missed")["Snapshots"][0]["SnapshotName"] == "missed"
    assert [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]] == ["kept", "missed"]
    assert emulator.ctl("/config")["omit_from_listings"] == {"missed": 0}
