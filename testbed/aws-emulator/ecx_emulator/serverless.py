"""ElastiCache Serverless caches and their snapshots (moto has neither).

Implemented here (query protocol, XML in the 2015-02-02 namespace):
CreateServerlessCacheSnapshot, CopyServerlessCacheSnapshot,
ExportServerlessCacheSnapshot, DescribeServerlessCacheSnapshots,
DeleteServerlessCacheSnapshot, and ListTagsForResource / AddTagsToResource /
RemoveTagsFromResource for ``serverlesscachesnapshot`` ARNs.  The state and its
XML are in :mod:`serverless_model`, the seeding API in :mod:`serverless_control`.

State lives in ``STATE.serverless`` (reset with the rest), keyed by
(account, region).  Every mutation happens under ``STATE.lock``: the
dispatcher in :mod:`ecx_emulator.elasticache` takes it before calling a
handler here.  Status changes run through the shared job queue.
"""

from __future__ import annotations

import base64
import bisect
import re
from typing import Any, Callable

from . import s3perm
from .serverless_model import TYPES, Region, Snap, region_state, render
from .state import STATE, Job, now

ARN_RE = re.compile(r"^arn:aws[a-z-]*:elasticache:([a-z0-9-]+):(\d{12}):serverlesscachesnapshot:(.+)$")
MAX_NAME = 255  # API model: "Must be between 1 and 255 characters."
MAX_RESULTS = 50  # API model: "The default is 50. The Validation Constraints are a maximum of 50."
IN_FLIGHT = ("creating", "copying", "exporting", "restoring", "deleting")


# --------------------------------------------------------------------------
# errors


def _err(code: str, msg: str, status: int = 400) -> Exception:
    from .elasticache import EcError

    return EcError(code, msg, status)


def not_found(name: str) -> Exception:
    return _err("ServerlessCacheSnapshotNotFoundFault", f"Serverless cache snapshot {name} not found.", 404)


def invalid_state(name: str, status: str, doing: str) -> Exception:
    return _err(
        "InvalidServerlessCacheSnapshotStateFault",
        f"Serverless cache snapshot {name} cannot be {doing} while in state {status}.",
    )


def _check_name(name: str, what: str) -> None:
    if not (1 <= len(name) <= MAX_NAME):
        raise _err("InvalidParameterValue", f"The {what} must be between 1 and {MAX_NAME} characters.")


def _new_snapshot_slot(reg: Region, name: str) -> str:
    """The stored (lowercase) name, after the exists and quota checks."""
    stored = name.lower()  # API model: "This value is stored as a lowercase string."
    if stored in reg.snapshots:
        raise _err("ServerlessCacheSnapshotAlreadyExistsFault", f"Serverless cache snapshot {stored} already exists.")
    quota = STATE.config.serverless_snapshot_quota
    if quota is not None and len(reg.snapshots) >= quota:
        raise _err(
            "ServerlessCacheSnapshotQuotaExceededFault",
            "The request cannot be processed because it would exceed the user's serverless cache snapshot quota.",
        )
    return stored


# --------------------------------------------------------------------------
# actions (ctx is elasticache.Ctx; called with STATE.lock held)


def create_snapshot(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import parse_tags, require, validate_tags, wrap

    name = require(p, "ServerlessCacheSnapshotName")
    cache_name = require(p, "ServerlessCacheName")
    _check_name(name, "ServerlessCacheSnapshotName")
    tags = parse_tags(p)
    validate_tags([], tags)
    reg = region_state(ctx.account, ctx.region)
    cache = reg.caches.get(cache_name)
    if cache is None:
        raise _err("ServerlessCacheNotFoundFault", f"Serverless cache {cache_name} not found.", 404)
    if cache.status != "available":
        raise _err(
            "InvalidServerlessCacheStateFault",
            f"Serverless cache {cache_name} is not in the available state (current state: {cache.status}).",
        )
    stored = _new_snapshot_slot(reg, name)
    snap = Snap(
        name=stored,
        account=ctx.account,
        region=ctx.region,
        cache_name=cache.name,
        engine=cache.engine,
        major_engine_version=cache.major_engine_version,
        status="creating",
        snapshot_type="manual",
        create_time=now(),
        expiry_time=None,
        bytes_used=cache.bytes_used,
        kms_key_id=p.get("KmsKeyId") or None,
        shards=cache.shards,
        tags=tags,
    )
    reg.add(snap)
    STATE.jobs.push(Job("sls-ready", now() + STATE.config.copy_delay, ctx.account, ctx.region, stored))
    return wrap("CreateServerlessCacheSnapshot", render(snap), ctx.request_id)


def copy_snapshot(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import parse_tags, require, validate_tags, wrap

    source = require(p, "SourceServerlessCacheSnapshotName")
    target = require(p, "TargetServerlessCacheSnapshotName")
    _check_name(target, "TargetServerlessCacheSnapshotName")
    tags = parse_tags(p)
    validate_tags([], tags)
    reg = region_state(ctx.account, ctx.region)
    src = reg.lookup(source)
    if src is None:
        raise not_found(source)
    if src.status != "available":
        raise invalid_state(src.name, src.status, "copied")
    stored = _new_snapshot_slot(reg, target)
    dst = Snap(
        name=stored,
        account=ctx.account,
        region=ctx.region,
        cache_name=src.cache_name,
        engine=src.engine,
        major_engine_version=src.major_engine_version,
        status="copying",
        snapshot_type="manual",
        create_time=src.create_time,  # the data set is the source's
        expiry_time=None,
        bytes_used=src.bytes_used,
        kms_key_id=p.get("KmsKeyId") or src.kms_key_id,
        shards=src.shards,
        tags=tags,
    )
    reg.add(dst)
    STATE.jobs.push(Job("sls-ready", now() + STATE.config.copy_delay, ctx.account, ctx.region, stored))
    return wrap("CopyServerlessCacheSnapshot", render(dst), ctx.request_id)


def export_keys(snap: Snap) -> list[str]:
    return [f"{snap.name}-{i:04d}.rdb" for i in range(1, snap.shards + 1)]


def export_snapshot(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import check_export_bucket, require, wrap

    name = require(p, "ServerlessCacheSnapshotName")
    bucket_name = require(p, "S3BucketName")
    reg = region_state(ctx.account, ctx.region)
    snap = reg.lookup(name)
    if snap is None:
        raise not_found(name)
    if snap.status != "available":
        raise invalid_state(snap.name, snap.status, "exported")
    # The documented bucket checks of a node-based export, in the same order.
    keys = export_keys(snap)
    check_export_bucket(ctx, bucket_name, keys)
    snap.status = "exporting"
    STATE.jobs.push(
        Job(
            "sls-export",
            now() + STATE.config.export_delay,
            ctx.account,
            ctx.region,
            snap.name,
            bucket=bucket_name,
            keys=keys,
        )
    )
    return wrap("ExportServerlessCacheSnapshot", render(snap), ctx.request_id)


def delete_snapshot(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import require, wrap

    name = require(p, "ServerlessCacheSnapshotName")
    reg = region_state(ctx.account, ctx.region)
    snap = reg.lookup(name)
    if snap is None:
        raise not_found(name)
    if snap.status in IN_FLIGHT:
        raise invalid_state(snap.name, snap.status, "deleted")
    snap.status = "deleting"
    reg.remove(snap.name)
    return wrap("DeleteServerlessCacheSnapshot", render(snap), ctx.request_id)


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(f"ecxs1:{name}".encode()).decode()


def _after(token: str) -> str:
    from .elasticache import invalid_value

    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid_value(f"Invalid NextToken: {token}")
    if not raw.startswith("ecxs1:"):
        raise invalid_value(f"Invalid NextToken: {token}")
    return raw[6:]


def describe_snapshots(ctx: Any, p: dict[str, str]) -> Any:
    from .elasticache import el, invalid_value, wrap

    max_results = MAX_RESULTS
    if p.get("MaxResults") not in (None, ""):
        try:
            max_results = int(p["MaxResults"])
        except ValueError:
            raise invalid_value(f"Invalid value for MaxResults: {p['MaxResults']}")
        if not (1 <= max_results <= MAX_RESULTS):
            raise invalid_value(f"The parameter MaxResults must be between 1 and {MAX_RESULTS}.")
    want_type = p.get("SnapshotType") or None
    if want_type is not None:
        want_type = want_type.lower()
        if want_type not in TYPES:
            raise invalid_value(f"Invalid value for SnapshotType: {p['SnapshotType']}. Valid values are automated, manual.")
    reg = region_state(ctx.account, ctx.region)
    cache_name = p.get("ServerlessCacheName") or None
    if cache_name is not None and cache_name not in reg.caches:
        raise _err("ServerlessCacheNotFoundFault", f"Serverless cache {cache_name} not found.", 404)
    after = _after(p["NextToken"]) if p.get("NextToken") else None

    def wanted(s: Snap) -> bool:
        if cache_name is not None and s.cache_name != cache_name:
            return False
        if want_type is not None and s.snapshot_type != want_type:
            return False
        return True

    page: list[Snap] = []
    more = False
    name = p.get("ServerlessCacheSnapshotName") or None
    if name is not None:
        one = reg.lookup(name)
        if one is None:
            raise not_found(name)
        if wanted(one) and (after is None or one.name > after):
            page = [one]
    else:
        i = 0 if after is None else bisect.bisect_right(reg.names, after)
        names = reg.names
        while i < len(names):
            s = reg.snapshots[names[i]]
            i += 1
            if not wanted(s) or STATE.config.omitted(s.name):
                continue
            if len(page) == max_results:
                more = True
                break
            page.append(s)
    xml = "<ServerlessCacheSnapshots>" + "".join(render(s) for s in page) + "</ServerlessCacheSnapshots>"
    if more:
        xml = el("NextToken", _token(page[-1].name)) + xml
    return wrap("DescribeServerlessCacheSnapshots", xml, ctx.request_id)


# ---- tags on serverless snapshot ARNs -------------------------------------


def _snap_for_arn(arn: str) -> Snap | None:
    m = ARN_RE.match(arn or "")
    if not m:
        return None
    region, account, name = m.groups()
    snap = region_state(account, region).lookup(name)
    if snap is None:
        raise not_found(name)
    return snap


def is_serverless_arn(arn: str | None) -> bool:
    return bool(ARN_RE.match(arn or ""))


def _tag_list(snap: Snap) -> str:
    from .elasticache import el

    return (
        "<TagList>"
        + "".join(f"<Tag>{el('Key', t['Key'])}{el('Value', t.get('Value'))}</Tag>" for t in snap.tags)
        + "</TagList>"
    )


def list_tags(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import require, wrap

    snap = _snap_for_arn(require(p, "ResourceName"))
    assert snap is not None
    return wrap("ListTagsForResource", _tag_list(snap), ctx.request_id)


def add_tags(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import parse_tags, require, validate_tags, wrap

    snap = _snap_for_arn(require(p, "ResourceName"))
    assert snap is not None
    tags = parse_tags(p)
    validate_tags(snap.tags, tags)
    merged = {t["Key"]: t for t in snap.tags}
    for t in tags:
        merged[t["Key"]] = t
    snap.tags = list(merged.values())
    return wrap("AddTagsToResource", _tag_list(snap), ctx.request_id)


def remove_tags(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import require, wrap

    snap = _snap_for_arn(require(p, "ResourceName"))
    assert snap is not None
    keys = {v for k, v in p.items() if re.match(r"^TagKeys\.member\.\d+$", k)}
    snap.tags = [t for t in snap.tags if t["Key"] not in keys]
    return wrap("RemoveTagsFromResource", _tag_list(snap), ctx.request_id)


HANDLERS: dict[str, Callable[[Any, dict[str, str]], Any]] = {
    "CreateServerlessCacheSnapshot": create_snapshot,
    "CopyServerlessCacheSnapshot": copy_snapshot,
    "ExportServerlessCacheSnapshot": export_snapshot,
    "DescribeServerlessCacheSnapshots": describe_snapshots,
    "DeleteServerlessCacheSnapshot": delete_snapshot,
}
TAG_HANDLERS: dict[str, Callable[[Any, dict[str, str]], Any]] = {
    "ListTagsForResource": list_tags,
    "AddTagsToResource": add_tags,
    "RemoveTagsFromResource": remove_tags,
}


def install(handlers: dict[str, Callable[..., Any]], handled: set[str]) -> None:
    """Register the serverless actions with the ElastiCache dispatcher, and
    route the tag actions here when the ARN is a serverless snapshot's."""
    handlers.update(HANDLERS)
    handled.update(HANDLERS)
    for action, ours in TAG_HANDLERS.items():
        theirs = handlers.get(action)

        def route(ctx: Any, p: dict[str, str], ours: Any = ours, theirs: Any = theirs) -> Any:
            if is_serverless_arn(p.get("ResourceName")):
                return ours(ctx, p)
            return theirs(ctx, p) if theirs else None

        handlers[action] = route
        handled.add(action)


# --------------------------------------------------------------------------
# job completion (called by elasticache.advance with STATE.lock held)


def _fake_rdb(snap: Snap, key: str) -> bytes:
    return (
        b"REDIS0011"
        + f"\xfa\x09ecx-export\x0c{key} engine={snap.engine} serverless={snap.cache_name} source={snap.name}".encode()
        + b"\xff"
    )


def complete(job: Job) -> None:
    snap = region_state(job.account, job.region).snapshots.get(job.snapshot_name)
    if snap is None:
        return
    if job.kind == "sls-ready":
        if snap.status in ("creating", "copying"):
            snap.status = "available"
    elif job.kind == "sls-export":
        for key in job.keys:
            s3perm.put_export_object(job.bucket or "", key, _fake_rdb(snap, key))
        if snap.status == "exporting":
            snap.status = "available"


JOB_KINDS = ("sls-ready", "sls-export")
