"""What ElastiCache checks on the target bucket before an export.

Everything is read from moto's in-process S3 backend, so buckets, ACLs,
policies and ownership controls are whatever the client set up through the
real S3 API on the emulator endpoint.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from moto.s3.models import s3_backends

# Canonical user ids of the ElastiCache service, per partition (AWS docs,
# "Step 2: Grant ElastiCache Access to Your Amazon S3 Bucket").
CANONICAL_IDS = {
    "aws-cn": "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83",
    "aws-us-gov": "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6",
    "aws": "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353",
}

# permission name -> (ACL permissions that satisfy it, policy actions all required)
PERMISSIONS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("READ", ("READ", "FULL_CONTROL"), ("s3:ListBucket", "s3:GetBucketLocation")),
    ("WRITE", ("WRITE", "FULL_CONTROL"), ("s3:PutObject",)),
    ("READ_ACP", ("READ_ACP", "FULL_CONTROL"), ("s3:GetBucketAcl",)),
]

OBJECT_ACTIONS = {"s3:PutObject"}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def canonical_id_for(region: str) -> str:
    return CANONICAL_IDS[partition_of(region)]


def service_principal_for(region: str) -> str:
    return f"{region}.elasticache-snapshot.amazonaws.com"


def find_bucket(name: str) -> Any | None:
    """The moto FakeBucket named ``name`` in any account, or None."""
    loc = s3_backends.bucket_accounts.get(name)
    if loc is None:
        return None
    partition, account_id = loc
    try:
        return s3_backends[account_id][partition].buckets.get(name)
    except KeyError:
        return None


def acls_disabled(bucket: Any) -> bool:
    rule = getattr(bucket, "ownership_rule", None) or {}
    # moto stores {"ObjectOwnership": "..."} (possibly nested in "Rules")
    text = str(rule)
    return "BucketOwnerEnforced" in text


def acl_grants(bucket: Any, region: str, acl_perms: tuple[str, ...]) -> bool:
    if acls_disabled(bucket):
        return False
    acl = getattr(bucket, "acl", None)
    if acl is None:
        return False
    cid = canonical_id_for(region)
    for grant in acl.grants:
        perms = grant.permissions if isinstance(grant.permissions, list) else [grant.permissions]
        if not any(p in acl_perms for p in perms):
            continue
        for grantee in grant.grantees:
            if getattr(grantee, "id", "") == cid:
                return True
    return False


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        if service in _as_list(principal.get("Service")):
            return True
        if "*" in _as_list(principal.get("AWS")):
            return True
    return False


def _action_matches(patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in patterns)


def _resource_matches(patterns: list[str], arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, str(p)) for p in patterns)


def _policy_statements(bucket: Any) -> list[dict[str, Any]]:
    raw = getattr(bucket, "policy", None)
    if not raw:
        return []
    try:
        doc = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        return []
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]


# The request context of ElastiCache's export requests, as far as the emulator models it: they
# are made over TLS; any other condition key is absent.
ELASTICACHE_REQUEST_CONTEXT = {"aws:securetransport": "true"}


def _condition_holds(condition: Any) -> bool:
    """IAM's Condition logic against ELASTICACHE_REQUEST_CONTEXT: operators and keys ANDed,
    values ORed; an absent key fails a positive operator and satisfies a negated one, an
    ``...IfExists`` one, and ``Null: true``."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        return False
    for operator, keys in condition.items():
        if not isinstance(keys, dict):
            return False
        op = str(operator).split(":")[-1]
        for key, values in keys.items():
            wanted = [str(v).lower() for v in _as_list(values)]
            present = ELASTICACHE_REQUEST_CONTEXT.get(str(key).lower())
            if op == "Null":
                holds = ("true" if present is None else "false") in wanted
            elif present is None:
                holds = op.endswith("IfExists") or "Not" in op
            elif op.removesuffix("IfExists") in ("Bool", "StringEquals", "StringEqualsIgnoreCase"):
                holds = present in wanted
            elif op.removesuffix("IfExists") in ("StringNotEquals", "StringNotEqualsIgnoreCase"):
                holds = present not in wanted
            else:
                holds = False
            if not holds:
                return False
    return True


def policy_allows(bucket: Any, region: str, action: str, object_key: str) -> bool:
    """Whether the bucket policy lets the ElastiCache snapshot service principal
    of ``region`` perform ``action``.  A statement counts when its Condition holds
    for ElastiCache's request (over TLS); an explicit Deny that matches wins."""
    service = service_principal_for(region)
    part = partition_of(region)
    bucket_arn = f"arn:{part}:s3:::{bucket.name}"
    arn = f"{bucket_arn}/{object_key}" if action in OBJECT_ACTIONS else bucket_arn
    allowed = False
    for st in _policy_statements(bucket):
        if not _principal_matches(st.get("Principal"), service):
            continue
        if not _action_matches(_as_list(st.get("Action")), action):
            continue
        if not _resource_matches(_as_list(st.get("Resource")), arn):
            continue
        if not _condition_holds(st.get("Condition")):
            continue
        effect = str(st.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


def missing_permission(bucket: Any, region: str, object_key: str) -> str | None:
    """First of READ, WRITE, READ_ACP that ElastiCache has not been granted."""
    for name, acl_perms, actions in PERMISSIONS:
        if acl_grants(bucket, region, acl_perms):
            continue
        if all(policy_allows(bucket, region, a, object_key) for a in actions):
            continue
        return name
    return None


def object_exists(bucket: Any, key: str) -> bool:
    try:
        return key in bucket.keys
    except Exception:  # pragma: no cover - defensive
        return False


def put_export_object(bucket_name: str, key: str, data: bytes) -> bool:
    bucket = find_bucket(bucket_name)
    if bucket is None:
        return False
    backend = s3_backends[bucket.account_id][bucket.partition]
    backend.put_object(bucket_name, key, data)
    return True
