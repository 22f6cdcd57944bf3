"""CopySnapshot with TargetBucket: the documented checks, in order, and a good export."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, ELASTICACHE_CANONICAL_ID, wait_for

MSG_MISSING = "The S3 bucket {b} does not exist."
MSG_REGION = "The S3 bucket {b} is outside of the region."
MSG_OWNER = "The S3 bucket {b} is not owned by the authenticated user."
MSG_DENIED = "The authenticated user does not have sufficient permissions to perform the desired activity."
MSG_READ = "ElastiCache has not been granted READ permissions {b} on the S3 Bucket."
MSG_WRITE = "ElastiCache has not been granted WRITE permissions {b} on the S3 Bucket."
MSG_READ_ACP = "ElastiCache has not been granted READ_ACP permissions {b} on the S3 Bucket."
MSG_KEY = "The S3 bucket {b} already contains an object with key {k}."

OTHER_ACCOUNT = "999999999999"
OTHER_KEY = "AKIAOTHERACCOUNT0001"


def make_bucket(emulator: Any, name: str, grants: tuple[str, ...] = ("READ", "WRITE", "READ_ACP"), region: str = "us-east-1", access_key: str | None = None) -> Any:
    kw = {"access_key": access_key} if access_key else {}
    s3 = emulator.client("s3", region=region, **kw)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if grants:
        acl = s3.get_bucket_acl(Bucket=name)
        extra = [
            {"Grantee": {"Type": "CanonicalUser", "ID": ELASTICACHE_CANONICAL_ID}, "Permission": p}
            for p in grants
        ]
        s3.put_bucket_acl(
            Bucket=name,
            AccessControlPolicy={"Owner": acl["Owner"], "Grants": acl["Grants"] + extra},
        )
    return s3


def export_error(ec: Any, bucket: str, target: str = "exp", source: str = "src") -> tuple[str, str, int]:
    with pytest.raises(ClientError) as ei:
        ec.copy_snapshot(SourceSnapshotName=source, TargetSnapshotName=target, TargetBucket=bucket)
    err = ei.value.response["Error"]
    return err["Code"], err["Message"], ei.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def src(emulator: Any) -> dict:
    return emulator.seed("src", node_groups=2, engine="valkey", replication_group_id="prod")


def test_missing_bucket(ec: Any, src: dict) -> None:
    assert export_error(ec, "no-such-bucket") == (
        "InvalidParameterValue",
        MSG_MISSING.format(b="no-such-bucket"),
        400,
    )


def test_bucket_in_other_region(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "eu-bucket", region="eu-west-1")
    assert export_error(ec, "eu-bucket") == ("InvalidParameterValue", MSG_REGION.format(b="eu-bucket"), 400)


def test_bucket_owned_by_other_account_via_credentials(emulator: Any, ec: Any, src: dict) -> None:
    emulator.ctl("/access-keys", {"access_key_id": OTHER_KEY, "account": OTHER_ACCOUNT})
    make_bucket(emulator, "theirs", access_key=OTHER_KEY)
    # moto really created it under the other account
    other_s3 = emulator.client("s3", access_key=OTHER_KEY)
    assert "theirs" in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
    assert export_error(ec, "theirs") == ("InvalidParameterValue", MSG_OWNER.format(b="theirs"), 400)
    # ... and the other account may export its own snapshot into it
    emulator.seed("their-src", account=OTHER_ACCOUNT)
    other_ec = emulator.client("elasticache", access_key=OTHER_KEY)
    r = other_ec.copy_snapshot(SourceSnapshotName="their-src", TargetSnapshotName="x", TargetBucket="theirs")
    assert r["Snapshot"]["SnapshotStatus"] == "exporting"
    assert r["Snapshot"]["ARN"] == f"arn:aws:elasticache:us-east-1:{OTHER_ACCOUNT}:snapshot:their-src"


def test_bucket_owned_by_other_account_via_override(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "overridden")
    emulator.ctl("/bucket-owner", {"bucket": "overridden", "account": OTHER_ACCOUNT})
    assert export_error(ec, "overridden") == ("InvalidParameterValue", MSG_OWNER.format(b="overridden"), 400)


def test_caller_denied_by_access_key(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "good")
    emulator.ctl("/config", {"denied_access_keys": ["AKIAEXAMPLEUSER0001"]})
    assert export_error(ec, "good") == ("InvalidParameterValue", MSG_DENIED, 400)
    other = emulator.client("elasticache", access_key="AKIAEXAMPLEUSER0002")
    assert other.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t", TargetBucket="good")


def test_caller_denied_by_switch(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "good")
    emulator.ctl("/config", {"deny_copy_snapshot": True})
    assert export_error(ec, "good") == ("InvalidParameterValue", MSG_DENIED, 400)


@pytest.mark.parametrize(
    "grants,msg",
    [
        ((), MSG_READ),
        (("WRITE", "READ_ACP"), MSG_READ),
        (("READ",), MSG_WRITE),
        (("READ", "READ_ACP"), MSG_WRITE),
        (("READ", "WRITE"), MSG_READ_ACP),
    ],
)
def test_acl_missing_permission(emulator: Any, ec: Any, src: dict, grants: tuple, msg: str) -> None:
    make_bucket(emulator, "acl-bucket", grants=grants)
    assert export_error(ec, "acl-bucket") == ("InvalidParameterValue", msg.format(b="acl-bucket"), 400)


def test_full_control_grant_is_enough(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "fc-bucket", grants=("FULL_CONTROL",))
    assert ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t", TargetBucket="fc-bucket")


def test_key_collision(emulator: Any, ec: Any, src: dict) -> None:
    s3 = make_bucket(emulator, "full")
    s3.put_object(Bucket="full", Key="exp-0001.rdb", Body=b"old")
    assert export_error(ec, "full", target="exp") == (
        "InvalidParameterValue",
        MSG_KEY.format(b="full", k="exp-0001.rdb"),
        400,
    )


def test_checks_run_in_documented_order(emulator: Any, ec: Any, src: dict) -> None:
    """Each bucket fails several checks; the earliest documented one wins."""
    emulator.ctl("/access-keys", {"access_key_id": OTHER_KEY, "account": OTHER_ACCOUNT})
    # other region + other account + no grants -> region
    make_bucket(emulator, "o-region", grants=(), region="eu-west-1", access_key=OTHER_KEY)
    assert export_error(ec, "o-region")[1] == MSG_REGION.format(b="o-region")
    # other account + no grants + denied -> owner
    make_bucket(emulator, "o-owner", grants=(), access_key=OTHER_KEY)
    emulator.ctl("/config", {"deny_copy_snapshot": True})
    assert export_error(ec, "o-owner")[1] == MSG_OWNER.format(b="o-owner")
    # denied + no grants + key collision -> denied
    s3 = make_bucket(emulator, "o-denied", grants=())
    s3.put_object(Bucket="o-denied", Key="exp-0001.rdb", Body=b"x")
    assert export_error(ec, "o-denied")[1] == MSG_DENIED
    emulator.ctl("/config", {"deny_copy_snapshot": False})
    # no grants + collision -> READ; then WRITE; then READ_ACP; then collision
    assert export_error(ec, "o-denied")[1] == MSG_READ.format(b="o-denied")
    for grants, msg in [
        (("READ",), MSG_WRITE.format(b="o-denied")),
        (("READ", "WRITE"), MSG_READ_ACP.format(b="o-denied")),
        (("READ", "WRITE", "READ_ACP"), MSG_KEY.format(b="o-denied", k="exp-0001.rdb")),
    ]:
        owner = s3.get_bucket_acl(Bucket="o-denied")["Owner"]
        s3.put_bucket_acl(
            Bucket="o-denied",
            AccessControlPolicy={
                "Owner": owner,
                "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"}]
                + [{"Grantee": {"Type": "CanonicalUser", "ID": ELASTICACHE_CANONICAL_ID}, "Permission": g} for g in grants],
            },
        )
        assert export_error(ec, "o-denied")[1] == msg
    # nothing was changed by any failed export
    assert ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "available"


def test_good_export_with_acl(emulator: Any, ec: Any, s3: Any, src: dict) -> None:
    make_bucket(emulator, "exports")
    r = ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="nightly", TargetBucket="exports")
    snap = r["Snapshot"]
    assert snap["SnapshotName"] == "src"  # the SOURCE snapshot is returned
    assert snap["SnapshotStatus"] == "exporting"
    assert ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "exporting"
    # a second export of the same source while exporting is refused
    with pytest.raises(ClientError) as ei:
        ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="again", TargetBucket="exports")
    assert ei.value.response["Error"]["Code"] == "InvalidSnapshotState"
    assert "Contents" not in s3.list_objects_v2(Bucket="exports")

    wait_for(lambda: ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "available")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"])
    assert keys == ["nightly-0001.rdb", "nightly-0002.rdb"]
    body = s3.get_object(Bucket="exports", Key="nightly-0002.rdb")["Body"].read()
    assert body.startswith(b"REDIS0011")
    # exporting again under the same name now collides
    assert export_error(ec, "exports", target="nightly")[1] == MSG_KEY.format(b="exports", k="nightly-0001.rdb")
    # the export did not create an ElastiCache snapshot
    names = [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]]
    assert names == ["src"]


def _policy(bucket: str, region: str, actions: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ElastiCacheExport",
                    "Effect": "Allow",
                    "Principal": {"Service": f"{region}.elasticache-snapshot.amazonaws.com"},
                    "Action": actions,
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def test_policy_granted_bucket_with_acls_disabled(emulator: Any, ec: Any, s3: Any, src: dict) -> None:
    # ACL grants exist but ACLs get disabled -> they no longer count
    make_bucket(emulator, "enforced")
    s3.put_bucket_ownership_controls(
        Bucket="enforced",
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    s3.put_public_access_block(
        Bucket="enforced",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    assert export_error(ec, "enforced")[1] == MSG_READ.format(b="enforced")

    # policy missing s3:GetBucketAcl -> READ_ACP
    s3.put_bucket_policy(
        Bucket="enforced",
        Policy=_policy("enforced", "us-east-1", ["s3:ListBucket", "s3:GetBucketLocation", "s3:PutObject"]),
    )
    assert export_error(ec, "enforced")[1] == MSG_READ_ACP.format(b="enforced")
    # policy for the wrong region's principal -> READ
    s3.put_bucket_policy(Bucket="enforced", Policy=_policy("enforced", "eu-west-1", ["s3:*"]))
    assert export_error(ec, "enforced")[1] == MSG_READ.format(b="enforced")

    s3.put_bucket_policy(
        Bucket="enforced",
        Policy=_policy(
            "enforced",
            "us-east-1",
            ["s3:ListBucket", "s3:GetBucketLocation", "s3:PutObject", "s3:GetBucketAcl"],
        ),
    )
    r = ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="pol", TargetBucket="enforced")
    assert r["Snapshot"]["SnapshotStatus"] == "exporting"
    wait_for(lambda: ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "available")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="enforced")["Contents"])
    assert keys == ["pol-0001.rdb", "pol-0002.rdb"]


def test_policy_s3_star_and_explicit_deny(emulator: Any, ec: Any, s3: Any, src: dict) -> None:
    make_bucket(emulator, "star", grants=())
    s3.put_bucket_policy(Bucket="star", Policy=_policy("star", "us-east-1", ["s3:*"]))
    assert ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="a", TargetBucket="star")
    wait_for(lambda: ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "available")
    doc = json.loads(_policy("star", "us-east-1", ["s3:*"]))
    doc["Statement"].append(
        {
            "Effect": "Deny",
            "Principal": {"Service": "us-east-1.elasticache-snapshot.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::star/*",
        }
    )
    s3.put_bucket_policy(Bucket="star", Policy=json.dumps(doc))
    assert export_error(ec, "star", target="b")[1] == MSG_WRITE.format(b="star")


def test_policy_conditions_on_elasticaches_tls_request(emulator: Any, ec: Any, s3: Any, src: dict) -> None:
    """ElastiCache's request is made over TLS: the TLS-only Deny does not apply to it, a Deny of
    TLS requests does, and an Allow on a key its request lacks grants nothing."""
    make_bucket(emulator, "tls", grants=())
    doc = json.loads(_policy("tls", "us-east-1", ["s3:*"]))
    tls_only = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::tls", "arn:aws:s3:::tls/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    doc["Statement"].append(tls_only)
    s3.put_bucket_policy(Bucket="tls", Policy=json.dumps(doc))
    assert ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="a", TargetBucket="tls")
    wait_for(lambda: ec.describe_snapshots(SnapshotName="src")["Snapshots"][0]["SnapshotStatus"] == "available")
    tls_only["Condition"] = {"Bool": {"aws:SecureTransport": ["true"]}}
    s3.put_bucket_policy(Bucket="tls", Policy=json.dumps(doc))
    assert export_error(ec, "tls", target="b")[1] == MSG_READ.format(b="tls")
    doc = json.loads(_policy("tls", "us-east-1", ["s3:*"]))
    doc["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceVpce": "vpce-1"}}
    s3.put_bucket_policy(Bucket="tls", Policy=json.dumps(doc))
    assert export_error(ec, "tls", target="c")[1] == MSG_READ.format(b="tls")


def test_export_in_other_region_uses_that_regions_principal(emulator: Any) -> None:
    emulator.seed("eu-src", region="eu-west-1", node_groups=1, cache_cluster_id="eu-cache")
    s3 = make_bucket(emulator, "eu-exports", grants=(), region="eu-west-1")
    s3.put_bucket_policy(Bucket="eu-exports", Policy=_policy("eu-exports", "eu-west-1", ["s3:*"]))
    ec = emulator.client("elasticache", region="eu-west-1")
    ec.copy_snapshot(SourceSnapshotName="eu-src", TargetSnapshotName="e", TargetBucket="eu-exports")
    wait_for(lambda: "Contents" in s3.list_objects_v2(Bucket="eu-exports"))
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="eu-exports")["Contents"]] == ["e-0001.rdb"]
    # the us-east-1 view does not see the eu-west-1 snapshot
    us = emulator.client("elasticache")
    with pytest.raises(ClientError) as ei:
        us.describe_snapshots(SnapshotName="eu-src")
    assert ei.value.response["Error"]["Code"] == "SnapshotNotFoundFault"


def test_kms_with_target_bucket_is_invalid_combination(emulator: Any, ec: Any, src: dict) -> None:
    make_bucket(emulator, "kms-bucket")
    with pytest.raises(ClientError) as ei:
        ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="k", TargetBucket="kms-bucket", KmsKeyId="alias/x")
    assert ei.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_export_account_is_default(emulator: Any, ec: Any, src: dict) -> None:
    assert src["arn"] == f"arn:aws:elasticache:us-east-1:{ACCOUNT}:snapshot:src"


def test_concurrent_exports_of_one_source(emulator: Any, src: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor

    make_bucket(emulator, "race-bucket")
    clients = [emulator.client("elasticache") for _ in range(8)]

    def attempt(i: int) -> str:
        try:
            clients[i].copy_snapshot(SourceSnapshotName="src", TargetSnapshotName=f"r{i}", TargetBucket="race-bucket")
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as pool:
        results = sorted(pool.map(attempt, range(8)))
    assert results == ["InvalidSnapshotState"] * 7 + ["ok"]
