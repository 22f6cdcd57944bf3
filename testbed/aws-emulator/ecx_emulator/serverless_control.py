"""Control API for serverless caches and snapshots (``/_emulator/serverless-...``):
seeding, listing, and forcing a status, for tests and the demo."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .serverless_model import TYPES, Cache, Snap, region_state
from .state import DEFAULT_ACCOUNT, DEFAULT_REGION, STATE, now


def snap_json(s: Snap) -> dict[str, Any]:
    from .elasticache import iso

    return {
        "name": s.name,
        "account": s.account,
        "region": s.region,
        "arn": s.arn,
        "cache": s.cache_name,
        "engine": s.engine,
        "major_engine_version": s.major_engine_version,
        "status": s.status,
        "snapshot_type": s.snapshot_type,
        "created": s.create_time,
        "create_time": iso(s.create_time),
        "expiry_time": iso(s.expiry_time),
        "bytes_used": s.bytes_used,
        "kms_key_id": s.kms_key_id,
        "shards": s.shards,
        "export_keys_for": [f"{s.name}-{i:04d}.rdb" for i in range(1, s.shards + 1)],
        "tags": list(s.tags),
    }


def cache_json(c: Cache, account: str, region: str) -> dict[str, Any]:
    return {
        "name": c.name,
        "account": account,
        "region": region,
        "engine": c.engine,
        "major_engine_version": c.major_engine_version,
        "status": c.status,
        "shards": c.shards,
        "bytes_used": c.bytes_used,
        "snapshot_retention_limit": c.snapshot_retention_limit,
    }


def _ts(v: Any, default: float | None) -> float | None:
    """Epoch seconds, or an ISO 8601 string (``Z`` allowed)."""
    if v is None:
        return default
    if isinstance(v, (int, float)):
        return float(v)
    return dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()


def _tags(v: Any) -> list[dict[str, str]]:
    if not v:
        return []
    if isinstance(v, dict):
        return [{"Key": str(k), "Value": str(x)} for k, x in v.items()]
    return [{"Key": str(t["Key"]), "Value": str(t.get("Value", ""))} for t in v]


def control(method: str, sub: str, body: dict[str, Any]) -> tuple[int, Any] | None:
    """Handle ``/_emulator/serverless-...``; None when ``sub`` is not ours."""
    if not sub.startswith("/serverless-"):
        return None
    account = str(body.get("account") or DEFAULT_ACCOUNT)
    region = str(body.get("region") or DEFAULT_REGION)
    with STATE.lock:
        if sub == "/serverless-caches":
            if method == "POST":
                reg = region_state(account, region)
                name = str(body["name"])
                if name in reg.caches:
                    return 409, {"error": f"serverless cache {name} already exists"}
                engine = str(body.get("engine") or "valkey")
                shards = int(body.get("shards") or 1)
                if not (1 <= shards <= 500):
                    raise ValueError("shards must be within 1..500")
                cache = Cache(
                    name=name,
                    engine=engine,
                    major_engine_version=str(body.get("major_engine_version") or ("8" if engine == "valkey" else "7")),
                    status=str(body.get("status") or "available"),
                    shards=shards,
                    bytes_used=int(body.get("bytes_used") or 1048576),
                    snapshot_retention_limit=int(body.get("snapshot_retention_limit") or 1),
                )
                reg.caches[name] = cache
                return 200, cache_json(cache, account, region)
            return 200, [
                cache_json(c, a, r) for (a, r), reg in sorted(STATE.serverless.items()) for c in reg.caches.values()
            ]
        m = re.match(r"^/serverless-caches/([^/]+)/status$", sub)
        if m and method == "POST":
            cache = region_state(account, region).caches.get(m.group(1))
            if cache is None:
                return 404, {"error": f"serverless cache {m.group(1)} not found"}
            cache.status = str(body["status"])
            return 200, cache_json(cache, account, region)
        if sub == "/serverless-snapshots":
            if method == "POST":
                return seed_snapshot(account, region, body)
            return 200, [snap_json(s) for _, reg in sorted(STATE.serverless.items()) for s in reg.snapshots.values()]
        m = re.match(r"^/serverless-snapshots/([^/]+)/status$", sub)
        if m and method == "POST":
            snap = region_state(account, region).snapshots.get(m.group(1))
            if snap is None:
                return 404, {"error": f"serverless cache snapshot {m.group(1)} not found"}
            snap.status = str(body["status"])
            return 200, snap_json(snap)
    return 404, {"error": f"no such control endpoint: {method} /_emulator{sub}"}


def seed_snapshot(account: str, region: str, body: dict[str, Any]) -> tuple[int, Any]:
    reg = region_state(account, region)
    name = str(body["name"])
    if name in reg.snapshots:
        return 409, {"error": f"serverless cache snapshot {name} already exists"}
    cache_name = str(body["cache"])
    cache = reg.caches.get(cache_name)
    if cache is None:
        if body.get("create_cache", True) is False:
            return 404, {"error": f"serverless cache {cache_name} not found"}
        # seeding a snapshot seeds its cache too (settings from the body)
        cache = reg.caches[cache_name] = Cache(
            name=cache_name,
            engine=str(body.get("engine") or "valkey"),
            major_engine_version=str(
                body.get("major_engine_version") or ("8" if (body.get("engine") or "valkey") == "valkey" else "7")
            ),
            shards=int(body.get("shards") or 1),
            bytes_used=int(body.get("bytes_used") or 1048576),
        )
    stype = str(body.get("snapshot_type") or "manual").lower()
    if stype not in TYPES:
        raise ValueError("snapshot_type must be automated or manual")
    created = _ts(body.get("created"), now())
    assert created is not None
    default_expiry = created + cache.snapshot_retention_limit * 86400 if stype == "automated" else None
    shards = int(body.get("shards") or cache.shards)
    if not (1 <= shards <= 500):
        raise ValueError("shards must be within 1..500")
    snap = Snap(
        name=name,
        account=account,
        region=region,
        cache_name=cache.name,
        engine=str(body.get("engine") or cache.engine),
        major_engine_version=str(body.get("major_engine_version") or cache.major_engine_version),
        status=str(body.get("status") or "available"),
        snapshot_type=stype,
        create_time=created,
        expiry_time=_ts(body.get("expiry"), default_expiry),
        bytes_used=int(body.get("bytes_used") or cache.bytes_used),
        kms_key_id=body.get("kms_key_id"),
        shards=shards,
        tags=_tags(body.get("tags")),
    )
    reg.add(snap)
    return 200, snap_json(snap)
