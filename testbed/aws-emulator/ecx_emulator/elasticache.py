"""ElastiCache snapshot actions moto lacks or gets wrong for our purposes.

Implemented here (query protocol, XML in the 2015-02-02 namespace):
DescribeSnapshots, CopySnapshot (in-region copy and S3 export), DeleteSnapshot,
and ListTagsForResource / AddTagsToResource / RemoveTagsFromResource for
snapshot ARNs.  Everything else goes to moto unchanged.

Snapshots are stored as moto ``Snapshot`` objects in moto's own backend, with a
few extra ``ecx_*`` attributes (node snapshots, creation time).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import operator
import re
import threading
import traceback
from typing import Any, Callable
from xml.sax.saxutils import escape

from moto.elasticache.models import ElastiCacheBackend, Snapshot, elasticache_backends

from . import nodesnap, s3perm, serverless
from .state import STATE, Job, now

NS = "http://elasticache.amazonaws.com/doc/2015-02-02/"
HANDLED_ACTIONS = {
    "DescribeSnapshots",
    "CopySnapshot",
    "DeleteSnapshot",
    "ListTagsForResource",
    "AddTagsToResource",
    "RemoveTagsFromResource",
}
SNAPSHOT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:elasticache:([a-z0-9-]+):(\d{12}):snapshot:(.+)$")
MAX_TAGS = 50


class EcError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def snapshot_not_found(name: str) -> EcError:
    return EcError("SnapshotNotFoundFault", f"Snapshot {name} not found.", 404)


def invalid_value(msg: str) -> EcError:
    return EcError("InvalidParameterValue", msg)


class SnapshotIndex(dict):  # type: ignore[type-arg]
    """moto's ``backend.snapshots`` (name -> Snapshot), plus its names kept
    sorted, so a DescribeSnapshots page costs O(page + log n), not a sort of
    every snapshot.  It is still the dict moto reads and writes; every way of
    changing it keeps ``sorted_names`` in step."""

    _mu = threading.Lock()  # shared by all instances (keeps them deep-copyable)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sorted_names: list[str] = sorted(dict.keys(self))

    def _drop_name(self, key: Any) -> None:
        names = self.sorted_names
        i = bisect.bisect_left(names, key)
        if i < len(names) and names[i] == key:
            del names[i]

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._mu:
            if not dict.__contains__(self, key):
                bisect.insort(self.sorted_names, key)
            dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        with self._mu:
            dict.__delitem__(self, key)
            self._drop_name(key)

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        with self._mu:
            if dict.__contains__(self, key):
                self._drop_name(key)
                return dict.pop(self, key)
        if default is SnapshotIndex._MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> Any:
        with self._mu:
            k, v = dict.popitem(self)
            self._drop_name(k)
            return k, v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._mu:
            if not dict.__contains__(self, key):
                bisect.insort(self.sorted_names, key)
            return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def clear(self) -> None:
        with self._mu:
            dict.clear(self)
            self.sorted_names = []

    def __ior__(self, other: Any) -> "SnapshotIndex":
        self.update(other)
        return self

    def names_after(self, after: str | None, chunk: int) -> list[str]:
        """Up to ``chunk`` names greater than ``after`` (all names if None), in order."""
        with self._mu:
            names = self.sorted_names
            i = 0 if after is None else bisect.bisect_right(names, after)
            return names[i:i + chunk]


_index_lock = threading.Lock()


def snapshots_of(backend: Any) -> SnapshotIndex:
    """``backend.snapshots``, made a :class:`SnapshotIndex` if it is not one yet."""
    snaps = backend.snapshots
    if type(snaps) is not SnapshotIndex:
        with _index_lock:
            snaps = backend.snapshots
            if type(snaps) is not SnapshotIndex:
                snaps = SnapshotIndex(snaps)
                backend.snapshots = snaps
    return snaps


_moto_backend_init = ElastiCacheBackend.__init__


def _indexed_backend_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _moto_backend_init(self, *args, **kwargs)
    self.snapshots = SnapshotIndex(self.snapshots)


# Every ElastiCache backend moto creates (also on reset) gets the index.
if not getattr(ElastiCacheBackend.__init__, "ecx_indexed", False):
    _indexed_backend_init.ecx_indexed = True  # type: ignore[attr-defined]
    ElastiCacheBackend.__init__ = _indexed_backend_init  # type: ignore[method-assign]


class Ctx:
    def __init__(self, account: str, region: str, access_key: str, request_id: str):
        self.account = account
        self.region = region
        self.access_key = access_key
        self.request_id = request_id

    @property
    def backend(self) -> Any:
        STATE.touched.add((self.account, self.region))
        backend = elasticache_backends[self.account][self.region]
        snapshots_of(backend)
        return backend


# --------------------------------------------------------------------------
# XML rendering


def iso(ts: Any) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        return ts
    if isinstance(ts, dt.datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.timezone.utc)
        ts = ts.timestamp()
    return (
        dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int((ts % 1) * 1000):03d}Z"
    )


def el(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def ensure_extras(snap: Any) -> None:
    """Give snapshots created by moto itself (CreateSnapshot) our extra fields."""
    if getattr(snap, "ecx_node_snapshots", None) is not None:
        return
    created = now()
    n = snap.num_node_groups or 1
    snap.ecx_create_time = created
    snap.ecx_node_snapshots = [
        {
            "node_group_id": f"{i:04d}",
            "cache_size": "5 MB",
            "snapshot_create_time": created,
            "cache_node_create_time": created,
        }
        for i in range(1, n + 1)
    ]
    if snap.num_node_groups is None and snap.replication_group_id:
        snap.num_node_groups = n


# Everything render_snapshot reads from a snapshot; the cached XML is reused
# while these are unchanged.
_RENDERED = operator.attrgetter(
    "snapshot_name", "replication_group_id", "replication_group_description", "cache_cluster_id",
    "snapshot_status", "snapshot_source", "cache_node_type", "engine", "engine_version",
    "num_cache_nodes", "preferred_availability_zone", "cache_cluster_create_time",
    "preferred_maintenance_window", "topic_arn", "port", "cache_parameter_group_name",
    "cache_subnet_group_name", "vpc_id", "auto_minor_version_upgrade", "snapshot_retention_limit",
    "snapshot_window", "num_node_groups", "automatic_failover", "kms_key_id", "arn",
    "ecx_node_snapshots",
)


def render_snapshot(snap: Any, show_node_group_config: bool = False) -> str:
    """The <Snapshot> element.  Sweeps render the same snapshots over and over,
    so the XML is cached on the snapshot and rebuilt only when a rendered field
    (usually the status) changed.  Node snapshot dicts are never changed in
    place (copies get their own list), so the list stands for its content."""
    ensure_extras(snap)
    sig = (_RENDERED(snap), len(snap.ecx_node_snapshots), getattr(snap, "ecx_data_tiering", "disabled"))
    cache = snap.__dict__.get("ecx_xml")
    if cache is None:
        cache = snap.__dict__["ecx_xml"] = {}
    hit = cache.get(show_node_group_config)
    if hit is not None and hit[0] == sig:
        return hit[1]
    xml = _render_snapshot(snap, show_node_group_config)
    cache[show_node_group_config] = (sig, xml)
    return xml


def _render_snapshot(snap: Any, show_node_group_config: bool) -> str:
    nodes = []
    for ns in snap.ecx_node_snapshots:
        ngc = ""
        if show_node_group_config:
            ngc = (
                "<NodeGroupConfiguration>"
                + el("NodeGroupId", ns["node_group_id"])
                + el("Slots", ns.get("slots"))
                + el("ReplicaCount", ns.get("replica_count", 0))
                + el("PrimaryAvailabilityZone", snap.preferred_availability_zone)
                + "</NodeGroupConfiguration>"
            )
        nodes.append(
            "<NodeSnapshot>"
            + el("CacheClusterId", ns.get("cache_cluster_id"))
            + el("NodeGroupId", ns["node_group_id"])
            + el("CacheNodeId", ns.get("cache_node_id"))
            + ngc
            + el("CacheSize", ns.get("cache_size"))
            + el("CacheNodeCreateTime", iso(ns.get("cache_node_create_time")))
            + el("SnapshotCreateTime", iso(ns.get("snapshot_create_time")))
            + "</NodeSnapshot>"
        )
    return (
        "<Snapshot>"
        + el("SnapshotName", snap.snapshot_name)
        + el("ReplicationGroupId", snap.replication_group_id)
        + el("ReplicationGroupDescription", snap.replication_group_description)
        + el("CacheClusterId", snap.cache_cluster_id)
        + el("SnapshotStatus", snap.snapshot_status)
        + el("SnapshotSource", snap.snapshot_source)
        + el("CacheNodeType", snap.cache_node_type)
        + el("Engine", snap.engine)
        + el("EngineVersion", snap.engine_version)
        + el("NumCacheNodes", snap.num_cache_nodes)
        + el("PreferredAvailabilityZone", snap.preferred_availability_zone)
        + el("CacheClusterCreateTime", iso(snap.cache_cluster_create_time))
        + el("PreferredMaintenanceWindow", snap.preferred_maintenance_window)
        + el("TopicArn", snap.topic_arn)
        + el("Port", snap.port)
        + el("CacheParameterGroupName", snap.cache_parameter_group_name)
        + el("CacheSubnetGroupName", snap.cache_subnet_group_name)
        + el("VpcId", snap.vpc_id)
        + el("AutoMinorVersionUpgrade", snap.auto_minor_version_upgrade)
        + el("SnapshotRetentionLimit", snap.snapshot_retention_limit)
        + el("SnapshotWindow", snap.snapshot_window)
        + el("NumNodeGroups", snap.num_node_groups)
        + el("AutomaticFailover", snap.automatic_failover)
        + "<NodeSnapshots>" + "".join(nodes) + "</NodeSnapshots>"
        + el("KmsKeyId", snap.kms_key_id)
        + el("ARN", snap.arn)
        + el("DataTiering", getattr(snap, "ecx_data_tiering", "disabled"))
        + "</Snapshot>"
    )


def snapshot_json(snap: Any, account: str, region: str) -> dict[str, Any]:
    ensure_extras(snap)
    return {
        "name": snap.snapshot_name,
        "account": account,
        "region": region,
        "arn": snap.arn,
        "status": snap.snapshot_status,
        "engine": snap.engine,
        "engine_version": snap.engine_version,
        "replication_group_id": snap.replication_group_id,
        "cache_cluster_id": snap.cache_cluster_id,
        "num_node_groups": snap.num_node_groups,
        "node_group_ids": [n["node_group_id"] for n in snap.ecx_node_snapshots],
        "kms_key_id": snap.kms_key_id,
        "snapshot_source": snap.snapshot_source,
        "created": getattr(snap, "ecx_create_time", None),
        "tags": elasticache_backends[account][region].tagging_service.list_tags_for_resource(snap.arn)["Tags"],
    }


def wrap(action: str, inner: str, request_id: str) -> str:
    return (
        f'<{action}Response xmlns="{NS}">'
        + (f"<{action}Result>{inner}</{action}Result>" if inner is not None else "")
        + f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        + f"</{action}Response>"
    )


def error_xml(code: str, message: str, request_id: str, sender: bool = True) -> str:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>{"Sender" if sender else "Receiver"}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )


# --------------------------------------------------------------------------
# creation / advancing


def make_snapshot(
    *,
    account: str,
    region: str,
    name: str,
    status: str = "available",
    engine: str = "redis",
    engine_version: str | None = None,
    node_groups: int = 1,
    replication_group_id: str | None = None,
    cache_cluster_id: str | None = None,
    kms_key_id: str | None = None,
    snapshot_source: str = "manual",
    cache_node_type: str = "cache.r7g.large",
    cache_size: str = "5 MB",
    created: float | None = None,
    node_group_ids: list[str] | None = None,
) -> Any:
    created = now() if created is None else created
    if node_group_ids:
        node_groups = len(node_group_ids)
    if engine_version is None:
        engine_version = "8.0.1" if engine == "valkey" else "7.1.0"
    snap = Snapshot(
        account_id=account,
        region_name=region,
        automatic_failover="enabled" if node_groups > 1 else "disabled",
        auto_minor_version_upgrade=True,
        cache_cluster_create_time=iso(created - 86400),
        cache_cluster_id=cache_cluster_id,
        cache_node_type=cache_node_type,
        cache_parameter_group_name=f"default.{engine}{engine_version.split('.')[0]}"
        + (".cluster.on" if node_groups > 1 else ""),
        cache_subnet_group_name="default",
        engine=engine,
        engine_version=engine_version,
        kms_key_id=kms_key_id,
        num_cache_nodes=None if replication_group_id else 1,
        num_node_groups=node_groups if replication_group_id else None,
        port=6379,
        preferred_availability_zone=None if replication_group_id else f"{region}a",
        preferred_maintenance_window="sun:05:00-sun:06:00",
        preferred_outpost_arn=None,
        replication_group_description=f"{replication_group_id} replication group" if replication_group_id else None,
        replication_group_id=replication_group_id,
        snapshot_name=name,
        snapshot_retention_limit=1,
        snapshot_source=snapshot_source,
        snapshot_status=status,
        snapshot_window="04:00-05:00",
        topic_arn=None,
        tags=[],
        vpc_id="vpc-0ecx0000000000001",
    )
    snap.ecx_create_time = created
    snap.ecx_node_snapshots = []
    for i in range(1, node_groups + 1):
        ng = node_group_ids[i - 1] if node_group_ids else f"{i:04d}"
        ns: dict[str, Any] = {
            "node_group_id": ng,
            "cache_size": cache_size,
            "snapshot_create_time": created,
            "cache_node_create_time": created - 86400,
            "replica_count": 1,
        }
        if node_groups > 1:
            lo = (16384 * (i - 1)) // node_groups
            hi = (16384 * i) // node_groups - 1
            ns["slots"] = f"{lo}-{hi}"
        if not replication_group_id:
            ns["cache_node_id"] = "0001"
        snap.ecx_node_snapshots.append(ns)
    return snap


def clone_snapshot(src: Any, name: str, account: str, region: str, kms_key_id: str | None) -> Any:
    ensure_extras(src)
    dst = Snapshot(
        account_id=account,
        region_name=region,
        automatic_failover=src.automatic_failover,
        auto_minor_version_upgrade=src.auto_minor_version_upgrade,
        cache_cluster_create_time=src.cache_cluster_create_time,
        cache_cluster_id=src.cache_cluster_id,
        cache_node_type=src.cache_node_type,
        cache_parameter_group_name=src.cache_parameter_group_name,
        cache_subnet_group_name=src.cache_subnet_group_name,
        engine=src.engine,
        engine_version=src.engine_version,
        kms_key_id=kms_key_id if kms_key_id else src.kms_key_id,
        num_cache_nodes=src.num_cache_nodes,
        num_node_groups=src.num_node_groups,
        port=src.port,
        preferred_availability_zone=src.preferred_availability_zone,
        preferred_maintenance_window=src.preferred_maintenance_window,
        preferred_outpost_arn=src.preferred_outpost_arn,
        replication_group_description=src.replication_group_description,
        replication_group_id=src.replication_group_id,
        snapshot_name=name,
        snapshot_retention_limit=src.snapshot_retention_limit,
        snapshot_source="manual",
        snapshot_status="creating",
        snapshot_window=src.snapshot_window,
        topic_arn=src.topic_arn,
        tags=[],
        vpc_id=src.vpc_id,
    )
    dst.ecx_create_time = now()
    dst.ecx_node_snapshots = [dict(n) for n in src.ecx_node_snapshots]
    return dst


def fake_rdb(target: str, node_group: str, snap: Any) -> bytes:
    return (
        b"REDIS0011"
        + f"\xfa\x09ecx-export\x0c{target}-{node_group} engine={snap.engine} source={snap.snapshot_name}".encode()
        + b"\xff"
    )


def advance(t: float | None = None) -> None:
    """Complete every pending copy/export whose time has come."""
    t = now() if t is None else t
    # Every request calls this: without the lock, and O(1) when nothing is due.
    first = STATE.jobs.next_due()
    if first is None or first > t:
        return
    with STATE.lock:
        for job in STATE.jobs.pop_due(t):
            backend = elasticache_backends[job.account][job.region]
            snap = backend.snapshots.get(job.snapshot_name)
            if job.kind == "copy":
                if snap is not None and snap.snapshot_status == "creating":
                    snap.snapshot_status = "available"
            elif job.kind == "export":
                if snap is not None:
                    failing = set(STATE.config.export_fail_node_groups)
                    for ng, key in zip([n["node_group_id"] for n in snap.ecx_node_snapshots], job.keys):
                        if ng not in failing:  # a node group whose upload fails writes nothing
                            s3perm.put_export_object(job.bucket or "", key, fake_rdb(job.target or "", ng, snap))
                    if snap.snapshot_status == "exporting":
                        snap.snapshot_status = "available"
            elif job.kind in serverless.JOB_KINDS:
                serverless.complete(job)


# --------------------------------------------------------------------------
# request parsing helpers


def parse_tags(params: dict[str, str], prefix: str = "Tags.Tag") -> list[dict[str, str]]:
    idx: dict[int, dict[str, str]] = {}
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(Key|Value)$")
    for k, v in params.items():
        m = pat.match(k)
        if m:
            idx.setdefault(int(m.group(1)), {})[m.group(2)] = v
    tags = []
    for i in sorted(idx):
        t = idx[i]
        if "Key" not in t:
            raise invalid_value("Tag keys must not be null.")
        tags.append({"Key": t["Key"], "Value": t.get("Value", "")})
    return tags


def validate_tags(existing: list[dict[str, str]], new: list[dict[str, str]]) -> None:
    for t in new:
        if t["Key"].lower().startswith("aws:"):
            raise invalid_value(
                f"Tag key {t['Key']} is not valid: tag keys must not start with the reserved prefix aws:."
            )
    keys = {t["Key"] for t in existing} | {t["Key"] for t in new}
    if len(keys) > MAX_TAGS:
        raise EcError(
            "TagQuotaPerResourceExceeded",
            f"The request cannot be processed because it would cause the resource to have more than the allowed number of tags. The maximum number of tags permitted on a resource is {MAX_TAGS}.",
        )


def lookup(backend: Any, name: str) -> Any | None:
    """Exact name first, then the lowercase form (CopySnapshot stores target
    names lowercased, per the API model)."""
    snap = backend.snapshots.get(name)
    if snap is None:
        snap = backend.snapshots.get(name.lower())
    return snap


def require(params: dict[str, str], name: str) -> str:
    v = params.get(name)
    if v is None or v == "":
        raise EcError("MissingParameter", f"The request must contain the parameter {name}.")
    return v


# --------------------------------------------------------------------------
# actions


def describe_snapshots(ctx: Ctx, p: dict[str, str]) -> str:
    backend = ctx.backend
    limit = STATE.config.max_records_limit
    max_records = 50
    if p.get("MaxRecords") not in (None, ""):
        try:
            max_records = int(p["MaxRecords"])
        except ValueError:
            raise invalid_value(f"Invalid value for MaxRecords: {p['MaxRecords']}")
        if not (20 <= max_records <= limit):
            raise invalid_value(f"The parameter MaxRecords must be between 20 and {limit}.")
    rg, cc = p.get("ReplicationGroupId"), p.get("CacheClusterId")
    if rg and cc:
        raise EcError(
            "InvalidParameterCombination",
            "Cannot specify both CacheClusterId and ReplicationGroupId.",
        )
    source = p.get("SnapshotSource")
    want_source = None
    if source:
        want_source = {"system": "automated", "user": "manual"}.get(source.lower(), source.lower())

    def wanted(s: Any) -> bool:
        if rg and s.replication_group_id != rg:
            return False
        if cc and s.cache_cluster_id != cc:
            return False
        if want_source and (s.snapshot_source or "manual") != want_source:
            return False
        return True

    name = p.get("SnapshotName")
    one = None
    if name:
        one = lookup(backend, name)
        if one is None:
            raise snapshot_not_found(name)

    after = None
    marker = p.get("Marker")
    if marker:
        try:
            after = base64.urlsafe_b64decode(marker.encode()).decode()
            if not after.startswith("ecx1:"):
                raise ValueError
            after = after[5:]
        except (ValueError, UnicodeDecodeError):
            raise invalid_value(f"Invalid marker: {marker}")

    index = snapshots_of(backend)
    page: list[Any] = []
    more = False
    if one is not None:
        if wanted(one) and (after is None or one.snapshot_name > after):
            page = [one]
    else:
        # Walk the sorted names from the marker on, until one match past the page.
        cursor = after
        while not more:
            names = index.names_after(cursor, max(64, 2 * max_records))
            if not names:
                break
            for n in names:
                s = index.get(n)
                if s is None or not wanted(s) or STATE.config.omitted(s.snapshot_name):
                    continue
                if len(page) == max_records:
                    more = True
                    break
                page.append(s)
            cursor = names[-1]
    show = p.get("ShowNodeGroupConfig", "").lower() == "true"
    nxt = base64.urlsafe_b64encode(f"ecx1:{page[-1].snapshot_name}".encode()).decode() if more else None

    def render() -> str:  # called by handle() after it released STATE.lock
        inner = "<Snapshots>" + "".join(render_snapshot(s, show) for s in page) + "</Snapshots>"
        if nxt is not None:
            inner = el("Marker", nxt) + inner
        return wrap("DescribeSnapshots", inner, ctx.request_id)

    return render  # type: ignore[return-value]


def copy_snapshot(ctx: Ctx, p: dict[str, str]) -> str:
    forced = STATE.config.copy_snapshot_error
    if forced is not None:
        raise EcError(forced["code"], forced["message"])
    source_name = require(p, "SourceSnapshotName")
    target = p.get("TargetSnapshotName")
    if target is None:
        raise EcError("MissingParameter", "The request must contain the parameter TargetSnapshotName.")
    bucket_name = p.get("TargetBucket") or None
    kms = p.get("KmsKeyId") or None
    if not (1 <= len(target) <= 1000):
        raise invalid_value("The TargetSnapshotName must be between 1 and 1000 characters.")
    if kms and bucket_name:
        raise EcError(
            "InvalidParameterCombination",
            "KmsKeyId cannot be specified together with TargetBucket: snapshots exported to Amazon S3 are not encrypted with a customer managed KMS key.",
        )
    tags = parse_tags(p)
    validate_tags([], tags)
    backend = ctx.backend
    src = lookup(backend, source_name)
    if src is None:
        raise snapshot_not_found(source_name)
    if src.snapshot_status != "available":
        raise EcError(
            "InvalidSnapshotState",
            f"Snapshot {source_name} is not in the available state (current state: {src.snapshot_status}).",
        )
    ensure_extras(src)

    if bucket_name is None:
        target_name = target.lower()  # API model: "This value is stored as a lowercase string."
        if target_name in backend.snapshots:
            raise EcError("SnapshotAlreadyExistsFault", f"Snapshot {target_name} already exists.")
        quota = STATE.config.snapshot_quota
        if quota is not None and len(backend.snapshots) >= quota:
            raise EcError(
                "SnapshotQuotaExceededFault",
                "The request cannot be processed because it would exceed the user's snapshot quota.",
            )
        dst = clone_snapshot(src, target_name, ctx.account, ctx.region, kms)
        backend.snapshots[target_name] = dst
        if tags:
            backend.tagging_service.tag_resource(dst.arn, tags)
        STATE.jobs.push(
            Job("copy", now() + STATE.config.copy_delay, ctx.account, ctx.region, target_name)
        )
        return wrap("CopySnapshot", render_snapshot(dst), ctx.request_id)

    keys = [f"{target}-{n['node_group_id']}.rdb" for n in src.ecx_node_snapshots]
    check_export_bucket(ctx, bucket_name, keys)
    src.snapshot_status = "exporting"
    STATE.jobs.push(
        Job(
            "export",
            now() + STATE.config.export_delay,
            ctx.account,
            ctx.region,
            src.snapshot_name,
            bucket=bucket_name,
            keys=keys,
            target=target,
        )
    )
    return wrap("CopySnapshot", render_snapshot(src), ctx.request_id)


def delete_snapshot(ctx: Ctx, p: dict[str, str]) -> str:
    name = require(p, "SnapshotName")
    backend = ctx.backend
    snap = lookup(backend, name)
    if snap is None:
        raise snapshot_not_found(name)
    name = snap.snapshot_name
    if snap.snapshot_status in ("creating", "exporting", "copying", "restoring"):
        raise EcError(
            "InvalidSnapshotState",
            f"Snapshot {name} cannot be deleted while in state {snap.snapshot_status}.",
        )
    snap.snapshot_status = "deleting"
    body = render_snapshot(snap)
    del backend.snapshots[name]
    backend.tagging_service.delete_all_tags_for_resource(snap.arn)
    return wrap("DeleteSnapshot", body, ctx.request_id)


def _snapshot_for_arn(ctx: Ctx, p: dict[str, str]) -> tuple[Any, str] | None:
    """The backend and ARN of the node-based snapshot that a tag action's ResourceName names;
    None for any other ARN (moto, or the serverless handlers, answer those)."""
    m = SNAPSHOT_ARN_RE.match(require(p, "ResourceName") or "")
    if not m:
        return None
    region, account, name = m.groups()
    backend = elasticache_backends[account][region]
    snap = lookup(backend, name)
    if snap is None:
        raise snapshot_not_found(name)
    return backend, snap.arn


def _tag_list(backend: Any, arn: str) -> str:
    tags = backend.tagging_service.list_tags_for_resource(arn)["Tags"]
    return (
        "<TagList>"
        + "".join(f"<Tag>{el('Key', t['Key'])}{el('Value', t.get('Value'))}</Tag>" for t in tags)
        + "</TagList>"
    )


def list_tags(ctx: Ctx, p: dict[str, str]) -> str | None:
    found = _snapshot_for_arn(ctx, p)
    if found is None:
        return None
    backend, arn = found
    return wrap("ListTagsForResource", _tag_list(backend, arn), ctx.request_id)


def add_tags(ctx: Ctx, p: dict[str, str]) -> str | None:
    found = _snapshot_for_arn(ctx, p)
    if found is None:
        return None
    backend, arn = found
    tags = parse_tags(p)
    existing = backend.tagging_service.list_tags_for_resource(arn)["Tags"]
    validate_tags(existing, tags)
    backend.tagging_service.tag_resource(arn, tags)
    return wrap("AddTagsToResource", _tag_list(backend, arn), ctx.request_id)


def remove_tags(ctx: Ctx, p: dict[str, str]) -> str | None:
    found = _snapshot_for_arn(ctx, p)
    if found is None:
        return None
    backend, arn = found
    keys = [v for k, v in sorted(p.items()) if re.match(r"^TagKeys\.member\.\d+$", k)]
    backend.tagging_service.untag_resource_using_names(arn, keys)
    return wrap("RemoveTagsFromResource", _tag_list(backend, arn), ctx.request_id)


# A handler returns the response XML, None (let moto answer), or a function
# that renders the XML and is called after STATE.lock is released.
HANDLERS: dict[str, Callable[[Ctx, dict[str, str]], Any]] = {
    "DescribeSnapshots": describe_snapshots,
    "CopySnapshot": copy_snapshot,
    "DeleteSnapshot": delete_snapshot,
    "ListTagsForResource": list_tags,
    "AddTagsToResource": add_tags,
    "RemoveTagsFromResource": remove_tags,
}


# Serverless snapshot actions, and tag actions on their ARNs (serverless.py).
serverless.install(HANDLERS, HANDLED_ACTIONS)
# CreateSnapshot of node-based caches (nodesnap.py).
nodesnap.install(HANDLERS, HANDLED_ACTIONS)


def handle(action: str, ctx: Ctx, params: dict[str, str]) -> tuple[int, str] | None:
    """Return (status, xml) or None to let moto handle the request."""
    handler = HANDLERS.get(action)
    if handler is None:
        return None
    advance()
    with STATE.lock:
        try:
            forced = STATE.config.action_errors.get(action)
            if forced is not None:
                raise EcError(forced["code"], forced["message"])
            body = handler(ctx, params)
        except EcError as e:
            return e.status, error_xml(e.code, e.message, ctx.request_id, e.sender)
        except Exception as e:  # a bug in the emulator: still answer in AWS shape
            traceback.print_exc()
            return 500, error_xml("InternalFailure", f"ecx-emulator internal error: {e!r}", ctx.request_id, False)
    if body is None:
        return None
    if callable(body):
        # rendering reads only the chosen snapshots; no need to hold the lock
        try:
            body = body()
        except Exception as e:  # a bug in the emulator: still answer in AWS shape
            traceback.print_exc()
            return 500, error_xml("InternalFailure", f"ecx-emulator internal error: {e!r}", ctx.request_id, False)
    return 200, body


def check_export_bucket(ctx: Any, bucket_name: str, keys: list[str]) -> None:
    """The documented S3 checks of an export, in their documented order (node-based and
    serverless exports alike): raises the first one that fails."""
    bucket = s3perm.find_bucket(bucket_name)
    if bucket is None:
        raise invalid_value(f"The S3 bucket {bucket_name} does not exist.")
    if bucket.region_name != ctx.region:
        raise invalid_value(f"The S3 bucket {bucket_name} is outside of the region.")
    owner = STATE.bucket_owners.get(bucket_name, bucket.account_id)
    if owner != ctx.account:
        raise invalid_value(f"The S3 bucket {bucket_name} is not owned by the authenticated user.")
    if STATE.config.deny_copy_snapshot or ctx.access_key in STATE.config.denied_access_keys:
        raise invalid_value(
            "The authenticated user does not have sufficient permissions to perform the desired activity."
        )
    missing = s3perm.missing_permission(bucket, ctx.region, keys[0])
    if missing:
        raise invalid_value(
            f"ElastiCache has not been granted {missing} permissions {bucket_name} on the S3 Bucket."
        )
    for key in keys:
        if s3perm.object_exists(bucket, key):
            raise invalid_value(f"The S3 bucket {bucket_name} already contains an object with key {key}.")
