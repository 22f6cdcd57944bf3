"""CreateSnapshot for node-based caches, and the control API that seeds them.

A cache is either seeded with ``POST /_emulator/caches`` (kept here, in
``STATE.node_caches``) or made through moto's own CreateReplicationGroup /
CreateCacheCluster.  The snapshot is a moto ``Snapshot`` like every other one,
``creating`` until the shared job queue makes it ``available``.  Handlers run
with ``STATE.lock`` held (the dispatcher in :mod:`ecx_emulator.elasticache`).
"""

from __future__ import annotations

import re
from typing import Any

from .state import DEFAULT_ACCOUNT, DEFAULT_REGION, STATE, Job, now


def _caches(account: str, region: str) -> dict[str, dict[str, Any]]:
    return STATE.node_caches.setdefault((account, region), {})


def _find_cache(ctx: Any, rg: str | None, cc: str | None) -> dict[str, Any] | None:
    """The cache as a plain dict (seeded first, then moto's), or None."""
    key = f"rg:{rg}" if rg else f"cc:{cc}"
    seeded = _caches(ctx.account, ctx.region).get(key)
    if seeded is not None:
        return seeded
    backend = ctx.backend
    if rg and rg in backend.replication_groups:
        g = backend.replication_groups[rg]
        return {
            "replication_group_id": rg,
            "engine": g.engine or "redis",
            "engine_version": g.engine_version,
            "node_groups": max(1, len(g.node_groups)),
            "node_group_ids": [getattr(n, "node_group_id", None) or f"{i:04d}" for i, n in enumerate(g.node_groups, 1)],
            "status": g.status,
            "cache_node_type": g.cache_node_type,
        }
    if cc and cc in backend.cache_clusters:
        c = backend.cache_clusters[cc]
        return {
            "cache_cluster_id": cc,
            "engine": c.engine or "redis",
            "engine_version": c.engine_version,
            "node_groups": 1,
            "status": c.cache_cluster_status,
            "cache_node_type": c.cache_node_type,
        }
    return None


def create_snapshot(ctx: Any, p: dict[str, str]) -> str:
    from .elasticache import EcError, invalid_value, make_snapshot, parse_tags, render_snapshot, require, validate_tags, wrap

    name = require(p, "SnapshotName")
    rg, cc = p.get("ReplicationGroupId") or None, p.get("CacheClusterId") or None
    if rg and cc:
        raise EcError("InvalidParameterCombination", "Only one of CacheClusterId or ReplicationGroupId can be provided.")
    if not rg and not cc:
        raise invalid_value("One of CacheClusterId or ReplicationGroupId must be provided.")
    if len(name) > 255:
        raise invalid_value("The SnapshotName must be between 1 and 255 characters.")
    tags = parse_tags(p)
    validate_tags([], tags)
    cache = _find_cache(ctx, rg, cc)
    if cache is None:
        if rg:
            raise EcError("ReplicationGroupNotFoundFault", f"Replication group {rg} not found.", 404)
        raise EcError("CacheClusterNotFound", f"Cache cluster {cc} not found.", 404)
    if cache["status"] != "available":
        code, what = ("InvalidReplicationGroupState", f"Replication group {rg}") if rg else (
            "InvalidCacheClusterState",
            f"Cache cluster {cc}",
        )
        raise EcError(code, f"{what} is not in the available state (current state: {cache['status']}).")
    if str(cache["engine"]).lower() == "memcached":
        raise EcError("SnapshotFeatureNotSupportedFault", "Snapshots are not supported for Memcached clusters.")
    backend = ctx.backend
    stored = name.lower()  # API model: "This value is stored as a lowercase string."
    if stored in backend.snapshots:
        raise EcError("SnapshotAlreadyExistsFault", f"Snapshot {stored} already exists.")
    quota = STATE.config.snapshot_quota
    if quota is not None and len(backend.snapshots) >= quota:
        raise EcError(
            "SnapshotQuotaExceededFault",
            "The request cannot be processed because it would exceed the user's snapshot quota.",
        )
    snap = make_snapshot(
        account=ctx.account,
        region=ctx.region,
        name=stored,
        status="creating",
        engine=str(cache["engine"]),
        engine_version=cache.get("engine_version"),
        node_groups=int(cache["node_groups"]),
        replication_group_id=rg,
        cache_cluster_id=cc,
        kms_key_id=p.get("KmsKeyId") or None,
        snapshot_source="manual",
        cache_node_type=str(cache.get("cache_node_type") or "cache.r7g.large"),
    )
    ids = cache.get("node_group_ids")
    if ids:
        # the cache's own node group ids (they need not be 0001..n)
        snap.ecx_node_snapshots = [{**ns, "node_group_id": str(i)} for ns, i in zip(snap.ecx_node_snapshots, ids)]
    backend.snapshots[stored] = snap
    if tags:
        backend.tagging_service.tag_resource(snap.arn, tags)
    STATE.jobs.push(Job("copy", now() + STATE.config.copy_delay, ctx.account, ctx.region, stored))
    return wrap("CreateSnapshot", render_snapshot(snap), ctx.request_id)


HANDLERS = {"CreateSnapshot": create_snapshot}


def install(handlers: dict[str, Any], handled: set[str]) -> None:
    handlers.update(HANDLERS)
    handled.update(HANDLERS)


# --------------------------------------------------------------------------
# control API: /_emulator/caches


def control(method: str, sub: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    if sub != "/caches" and not sub.startswith("/caches/"):
        return None
    account = str(body.get("account") or DEFAULT_ACCOUNT)
    region = str(body.get("region") or DEFAULT_REGION)
    with STATE.lock:
        if sub == "/caches":
            if method != "POST":
                return 200, [
                    {**c, "account": a, "region": r} for (a, r), cs in sorted(STATE.node_caches.items()) for c in cs.values()
                ]
            rg, cc = body.get("replication_group_id"), body.get("cache_cluster_id")
            if bool(rg) == bool(cc):
                raise ValueError("give exactly one of replication_group_id and cache_cluster_id")
            key = f"rg:{rg}" if rg else f"cc:{cc}"
            caches = _caches(account, region)
            if key in caches:
                return 409, {"error": f"cache {rg or cc} already exists"}
            ids = [str(i) for i in body.get("node_group_ids") or []]
            node_groups = len(ids) if ids else int(body.get("node_groups") or 1)
            if not (1 <= node_groups <= 500):
                raise ValueError("node_groups must be within 1..500")
            if cc and node_groups != 1:
                raise ValueError("a cache cluster has one node group")
            cache = {
                "replication_group_id": rg,
                "cache_cluster_id": cc,
                "engine": str(body.get("engine") or "redis"),
                "engine_version": body.get("engine_version"),
                "node_groups": node_groups,
                "node_group_ids": ids or None,
                "status": str(body.get("status") or "available"),
                "cache_node_type": str(body.get("cache_node_type") or "cache.r7g.large"),
            }
            caches[key] = cache
            return 200, {**cache, "account": account, "region": region}
        m = re.match(r"^/caches/([^/]+)/status$", sub)
        if m and method == "POST":
            caches = _caches(account, region)
            cache = caches.get(f"rg:{m.group(1)}") or caches.get(f"cc:{m.group(1)}")
            if cache is None:
                return 404, {"error": f"cache {m.group(1)} not found"}
            cache["status"] = str(body["status"])
            return 200, {**cache, "account": account, "region": region}
    return 404, {"error": f"no such control endpoint: {method} /_emulator{sub}"}
