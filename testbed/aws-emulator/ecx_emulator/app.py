"""WSGI middleware in front of moto's server app.

* ``/_emulator/...``  JSON control API for tests (never faulted, never logged)
* ``/moto-api/...``   passed to moto untouched
* everything else     logged in the call log, subject to fault injection, then
                      ElastiCache snapshot actions are answered by
                      :mod:`ecx_emulator.elasticache`; all the rest goes to moto.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from moto.elasticache.models import elasticache_backends

from . import elasticache as ec
from . import nodesnap, s3names, serverless_control
from .state import DEFAULT_ACCOUNT, DEFAULT_REGION, STATE, Faults, now

CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
CODE_RE = re.compile(rb"<Code>([^<]+)</Code>")
DROP_PARAMS = {"X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential", "Signature"}
StartResponse = Callable[..., Any]


def _json_response(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(
        f"{status} {_reason(status)}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _reason(status: int) -> str:
    return {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        409: "Conflict",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Status")


def _xml_response(start_response: StartResponse, status: int, xml: str, request_id: str, s3: bool = False, head: bool = False) -> list[bytes]:
    data = xml.encode()
    headers = [
        ("Content-Type", "application/xml" if s3 else "text/xml"),
        ("x-amzn-RequestId", request_id),
    ]
    if s3:
        headers.append(("x-amz-request-id", request_id))
    if head:
        data = b""
    headers.append(("Content-Length", str(len(data))))
    start_response(f"{status} {_reason(status)}", headers)
    return [data]


ATTEMPT_RE = re.compile(r"attempt=(\d+)")


def sdk_attempt(header: str) -> int:
    """The attempt number an AWS SDK puts in `amz-sdk-request` (1 when absent)."""
    m = ATTEMPT_RE.search(header)
    return int(m.group(1)) if m else 1


def resolve_account(environ: dict[str, Any], access_key: str | None) -> str:
    """The caller's account, the way moto itself decides it (env, header, IAM
    keys, default) plus the emulator's own access-key -> account map."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if access_key and access_key in STATE.access_keys:
        return STATE.access_keys[access_key]
    if access_key:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key)
    return DEFAULT_ACCOUNT


class EmulatorApp:
    def __init__(self, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self.moto_app = moto_app

    # ------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/_emulator" or path.startswith("/_emulator/"):
            try:
                return self.control(environ, start_response, path[len("/_emulator"):] or "/")
            except (ValueError, TypeError, KeyError) as e:
                return _json_response(start_response, 400, {"error": f"{type(e).__name__}: {e}"})
        if path.startswith("/moto-api"):
            return self.moto_app(environ, start_response)
        return self.aws(environ, start_response, path)

    # ------------------------------------------------------------------
    def aws(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        started = now()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = CREDENTIAL_RE.search(auth) or CREDENTIAL_RE.search(
            "Credential=" + query.get("X-Amz-Credential", "")
        )
        access_key, region, service = (m.group(1), m.group(3), m.group(4).lower()) if m else (None, None, None)

        form: dict[str, str] = {}
        ctype = environ.get("CONTENT_TYPE", "") or ""
        if ctype.startswith("application/x-www-form-urlencoded") and service != "s3":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            raw = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(raw)
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

        params: dict[str, Any] = {k: v for k, v in {**query, **form}.items() if k not in DROP_PARAMS and not k.startswith("X-Amz-")}
        if service is None:
            if "Action" in params:
                service = "elasticache" if params.get("Version") == "2015-02-02" else "unknown"
            else:
                service = "s3"
        region = region or DEFAULT_REGION

        if service == "s3":
            headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
            action, bucket, key = s3names.s3_operation(method, path, environ.get("HTTP_HOST", ""), query, headers)
            if bucket:
                params["Bucket"] = bucket
            if key:
                params["Key"] = key
        else:
            action = params.get("Action") or environ.get("HTTP_X_AMZ_TARGET") or f"{method} {path}"

        account = resolve_account(environ, access_key)
        if access_key and access_key in STATE.access_keys and not environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
            # let moto act as that account too (S3 bucket ownership etc.)
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = STATE.access_keys[access_key]

        request_id = str(uuid.uuid4())
        rec: dict[str, Any] = {
            "seq": 0,
            "time": started,
            "service": service,
            "action": action,
            "params": params,
            "region": region,
            "status": None,
            "error_code": None,
            "access_key": access_key,
            "account": account,
            # The SDK's own retry of one call, from `amz-sdk-request: attempt=N; max=M`: the
            # call log tells the SDK's retries from the caller's.
            "attempt": sdk_attempt(environ.get("HTTP_AMZ_SDK_REQUEST", "")),
        }

        STATE.begin_call(rec)
        ec.advance()

        # ---- fault injection (before any state change) ----
        outcome = None
        latency = 0.0
        with STATE.lock:
            faults: Faults = STATE.faults
            if faults.active() and faults.matches(service, action):
                latency = faults.latency_ms / 1000.0
                outcome = faults.draw()
        if latency > 0:
            time.sleep(latency)
        if outcome is not None:
            return self.fault(start_response, rec, service, outcome, request_id, method == "HEAD")

        # ---- our ElastiCache layer ----
        if service == "elasticache" and action in ec.HANDLED_ACTIONS:
            ctx = ec.Ctx(account, region, access_key or "", request_id)
            res = ec.handle(action, ctx, {k: v for k, v in {**query, **form}.items()})
            if res is not None:
                status, xml = res
                rec["status"] = status
                if status >= 400:
                    cm = CODE_RE.search(xml.encode())
                    rec["error_code"] = cm.group(1).decode() if cm else None
                STATE.record_call(rec)
                return _xml_response(start_response, status, xml, request_id)

        # ---- moto ----
        return self.passthrough(environ, start_response, rec, method == "HEAD")

    # ------------------------------------------------------------------
    def fault(self, start_response: StartResponse, rec: dict[str, Any], service: str, outcome: str, request_id: str, head: bool) -> list[bytes]:
        if service == "s3":
            if outcome == "throttle":
                status, code, msg = 503, "SlowDown", "Please reduce your request rate."
            else:
                status, code, msg = 500, "InternalError", "We encountered an internal error. Please try again."
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{msg}</Message>"
                f"<RequestId>{request_id}</RequestId><HostId>ecx-emulator</HostId></Error>"
            )
            rec["status"], rec["error_code"] = status, code
            STATE.record_call(rec)
            return _xml_response(start_response, status, xml, request_id, s3=True, head=head)
        if outcome == "throttle":
            status, code, msg, sender = 400, "Throttling", "Rate exceeded", True
        else:
            status, code, msg, sender = 500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.", False
        rec["status"], rec["error_code"] = status, code
        STATE.record_call(rec)
        return _xml_response(start_response, status, ec.error_xml(code, msg, request_id, sender), request_id)

    # ------------------------------------------------------------------
    def passthrough(self, environ: dict[str, Any], start_response: StartResponse, rec: dict[str, Any], head: bool) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split()[0])
            captured["code"] = code
            if code < 400:
                rec["status"] = code
                STATE.record_call(rec)
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.moto_app(environ, sr)
        if "status" not in captured:
            if "code" not in captured:  # app returned before start_response; rare
                rec["status"] = None
                STATE.record_call(rec)
            return result
        try:
            body = b"".join(captured.get("written", [])) + b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        code = captured["code"]
        rec["status"] = code
        cm = CODE_RE.search(body)
        if cm:
            rec["error_code"] = cm.group(1).decode()
        elif head or not body:
            rec["error_code"] = {404: "NotFound", 403: "Forbidden", 400: "BadRequest"}.get(code, str(code))
        STATE.record_call(rec)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]

    # ------------------------------------------------------------------
    def control(self, environ: dict[str, Any], start_response: StartResponse, sub: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        body: dict[str, Any] = {}
        if method in ("POST", "PUT", "PATCH"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            raw = environ["wsgi.input"].read(length) if length > 0 else b""
            if raw.strip():
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("JSON body must be an object")
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        sub = sub.rstrip("/") or "/"
        ok = lambda data, status=200: _json_response(start_response, status, data)  # noqa: E731

        if sub == "/health":
            return ok({"status": "ok"})

        if sub == "/calls/in-flight":
            with STATE.lock:
                pending = sorted(STATE.in_flight.values(), key=lambda c: c["time"])
            if query.get("action"):
                pending = [c for c in pending if c["action"] == query["action"]]
            return ok(pending)

        if sub == "/calls":
            if method == "DELETE":
                with STATE.lock:
                    STATE.calls.clear()
                return ok({"cleared": True})
            since = int(query["since_seq"]) if query.get("since_seq") else 0
            with STATE.lock:
                calls = STATE.calls.since(since)  # already in seq order
            if query.get("service"):
                calls = [c for c in calls if c["service"] == query["service"]]
            if query.get("action"):
                calls = [c for c in calls if c["action"] == query["action"]]
            return ok(calls)

        if sub == "/faults":
            if method == "POST":
                f = Faults.from_json(body)
                with STATE.lock:
                    STATE.faults = f
            with STATE.lock:
                return ok(STATE.faults.to_json())

        if sub == "/config":
            if method == "POST":
                with STATE.lock:
                    STATE.config.update(body)
            with STATE.lock:
                return ok(STATE.config.to_json())

        if sub == "/bucket-owner":
            if method == "POST":
                with STATE.lock:
                    if body.get("account") is None:
                        STATE.bucket_owners.pop(str(body["bucket"]), None)
                    else:
                        STATE.bucket_owners[str(body["bucket"])] = str(body["account"])
            with STATE.lock:
                return ok(dict(STATE.bucket_owners))

        if sub == "/access-keys":
            if method == "POST":
                with STATE.lock:
                    STATE.access_keys[str(body["access_key_id"])] = str(body["account"])
            with STATE.lock:
                return ok(dict(STATE.access_keys))

        if sub == "/reset":
            from moto.moto_api._internal.models import moto_api_backend

            with STATE.lock:
                moto_api_backend.reset()
                STATE.reset()
            return ok({"reset": True})

        res = serverless_control.control(method, sub, body) or nodesnap.control(method, sub, body)
        if res is not None:
            return ok(res[1], res[0])

        if sub == "/snapshots":
            # no advance() here on purpose: the background ticker must do it
            if method == "POST":
                return self.seed_snapshot(start_response, body)
            out = []
            with STATE.lock:
                for account in list(elasticache_backends.keys()):
                    for region in list(elasticache_backends[account].keys()):
                        backend = elasticache_backends[account][region]
                        for snap in list(backend.snapshots.values()):
                            out.append(ec.snapshot_json(snap, account, region))
            return ok(out)

        m = re.match(r"^/snapshots/([^/]+)/status$", sub)
        if m and method == "POST":
            account = str(body.get("account") or DEFAULT_ACCOUNT)
            region = str(body.get("region") or DEFAULT_REGION)
            with STATE.lock:
                snap = elasticache_backends[account][region].snapshots.get(m.group(1))
                if snap is None:
                    return ok({"error": f"snapshot {m.group(1)} not found"}, 404)
                snap.snapshot_status = str(body["status"])
                return ok(ec.snapshot_json(snap, account, region))

        return ok({"error": f"no such control endpoint: {method} /_emulator{sub}"}, 404)

    def seed_snapshot(self, start_response: StartResponse, body: dict[str, Any]) -> list[bytes]:
        account = str(body.get("account") or DEFAULT_ACCOUNT)
        region = str(body.get("region") or DEFAULT_REGION)
        name = str(body["name"])
        node_groups = int(body.get("node_groups") or 1)
        if node_groups < 1 or node_groups > 500:
            raise ValueError("node_groups must be within 1..500")
        # User-supplied node group ids (the API model: 1 to 4 digits), e.g. non-contiguous ones
        # left after removing shards; default 0001, 0002, ...
        ids = body.get("node_group_ids")
        if ids is not None:
            ids = [str(i) for i in ids]
            if not 1 <= len(ids) <= 500 or len(set(ids)) != len(ids):
                raise ValueError("node_group_ids must hold 1..500 distinct ids")
            if not all(re.fullmatch(r"\d{1,4}", i) for i in ids):
                raise ValueError("each node group id must be 1 to 4 digits")
            node_groups = len(ids)
        tags = body.get("tags") or []
        if isinstance(tags, dict):
            tags = [{"Key": k, "Value": v} for k, v in tags.items()]
        with STATE.lock:
            STATE.touched.add((account, region))
            backend = elasticache_backends[account][region]
            if name in backend.snapshots:
                return _json_response(start_response, 409, {"error": f"snapshot {name} already exists"})
            snap = ec.make_snapshot(
                account=account,
                region=region,
                name=name,
                status=str(body.get("status") or "available"),
                engine=str(body.get("engine") or "redis"),
                engine_version=body.get("engine_version"),
                node_groups=node_groups,
                replication_group_id=body.get("replication_group_id"),
                cache_cluster_id=body.get("cache_cluster_id"),
                kms_key_id=body.get("kms_key_id"),
                snapshot_source=str(body.get("snapshot_source") or "manual"),
                cache_node_type=str(body.get("cache_node_type") or "cache.r7g.large"),
                cache_size=str(body.get("cache_size") or "5 MB"),
                created=body.get("created"),
                node_group_ids=ids,
            )
            backend.snapshots[name] = snap
            if tags:
                backend.tagging_service.tag_resource(snap.arn, tags)
            return _json_response(start_response, 200, ec.snapshot_json(snap, account, region))
